"""Gaussian-process building blocks: safe Cholesky, masked marginal likelihood, optax fitting.

All functions are pure, ``jit``-able and ``vmap``-able, with static shapes: observations live
in fixed-size arrays with a boolean validity ``mask``; rows where the mask is False do not
influence the likelihood or the posterior (they are replaced by independent unit-variance
dummies with zero targets).

Precision: fit hyperparameters in float64 (``with jax.enable_x64(True): ...``); recipes_jax
never flips the global x64 flag. Float32 is safe for evaluating a fitted posterior mean at
query points when targets are standardized.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.extend
import jax.flatten_util
import jax.numpy as jnp
import optax

from recipes_jax import batching, kernels, linalg
from recipes_jax.bounds import bounded, unbounded

__all__ = [
    "GP",
    "Observations",
    "Posterior",
    "append",
    "bounded",
    "cholesky_with_jitter",
    "cross_covariance",
    "empty_observations",
    "evict",
    "grid_cross_covariance",
    "grid_predict",
    "line_search_step",
    "map_grid",
    "masked_gram",
    "minimize",
    "minimize_adam",
    "minimize_from_starts",
    "minimize_lbfgs_scan",
    "observations",
    "posterior_variance",
    "predict",
    "predict_covariance",
    "project",
    "reml_nll",
    "restricted_nll",
    "sample",
    "standardization",
    "unbounded",
]


def _jitter_search(K: jax.Array, max_tries: int) -> tuple[jax.Array, jax.Array]:
    scale = jnp.maximum(jnp.mean(jnp.diag(K)), jnp.finfo(K.dtype).tiny)
    eye = jnp.eye(K.shape[-1], dtype=K.dtype)

    def cond(carry):
        L, _, tries = carry
        return ~jnp.all(jnp.isfinite(L)) & (tries < max_tries)

    def body(carry):
        _, jitter, tries = carry
        jitter = jnp.where(jitter == 0, 1e-10 * scale, 10.0 * jitter)
        return linalg.cholesky(K + jitter * eye), jitter, tries + 1

    zero = jnp.zeros((), K.dtype)
    L, jitter, _ = jax.lax.while_loop(cond, body, (linalg.cholesky(K), zero, 0))
    return L, jitter


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def cholesky_with_jitter(K: jax.Array, max_tries: int = 8) -> tuple[jax.Array, jax.Array]:
    """Lower Cholesky factor of ``K`` [N, N], adding jitter only when the plain one fails.

    Jitter starts at 1e-10 x mean diagonal and grows tenfold per failure (at most
    ``max_tries``). Returns ``(L, jitter)`` where ``jitter`` is what was added (0 if none); a
    factor that still fails after all tries contains NaNs, which callers can detect.
    Differentiable (forward and reverse mode), treating the jitter as a constant.
    """
    return _jitter_search(K, max_tries)


@cholesky_with_jitter.defjvp
def _cholesky_with_jitter_jvp(max_tries, primals, tangents):
    (K,), (dK,) = primals, tangents
    L, jitter = _jitter_search(K, max_tries)
    # d(L L^T) = dK  =>  dL = L Phi(L^-1 dK L^-T), Phi = lower triangle with halved diagonal;
    # L^-1 by matrix products (no LAPACK solve: vmapped, those can deadlock, see linalg)
    L_inv = linalg.triangular_inverse(L)
    inner = L_inv @ dK @ L_inv.T
    phi = jnp.tril(inner) - 0.5 * jnp.diag(jnp.diag(inner))
    return (L, jitter), (L @ phi, jnp.zeros_like(jitter))


def masked_gram(K: jax.Array, noise: jax.Array, mask: jax.Array) -> jax.Array:
    """``K + diag(noise)`` restricted to valid rows; invalid rows become identity rows.

    K [N, N], noise [N] (variances), mask [N] bool -> [N, N].
    """
    pair = mask[:, None] & mask[None, :]
    return jnp.where(pair, K, 0.0) + jnp.diag(jnp.where(mask, noise, 1.0))


def reml_nll(
    K: jax.Array,
    noise: jax.Array,
    y: jax.Array,
    mask: jax.Array,
    H: jax.Array | None = None,
) -> tuple[jax.Array, dict]:
    """Negative (restricted) log marginal likelihood of masked observations.

    Args:
      K: prior covariance [N, N] of the latent function at the N inputs.
      noise: observation noise variances [N].
      y: targets [N] (values at invalid rows are ignored).
      mask: bool [N], True for real observations.
      H: optional mean basis [N, P]; its coefficients are profiled out by generalized least
        squares and the REML correction is added (so a per-group intercept costs no prior).

    Returns ``(nll, aux)`` with ``aux`` holding the Cholesky factor ``L``, ``alpha`` = (K +
    noise)^-1 (y - H beta) [N] (zero at invalid rows) and ``beta`` [P] (empty without H).
    Constant terms are dropped. Reverse-mode differentiable (``jax.grad``; not ``jax.jvp``);
    vmapped on CPU, every LAPACK call in it and in its gradient takes one matrix (jaxlib's
    batched calls can deadlock, see :mod:`recipes_jax.linalg`).
    """
    y = jnp.where(mask, y, 0.0)
    L, _ = cholesky_with_jitter(masked_gram(K, noise, mask))
    half_logdet = jnp.sum(jnp.log(jnp.diag(L)))
    if H is None:
        alpha = linalg.cho_solve(L, y)
        beta = jnp.zeros((0,), y.dtype)
        nll = 0.5 * jnp.dot(y, alpha) + half_logdet
    else:
        H = jnp.where(mask[:, None], H, 0.0)
        KiH = linalg.cho_solve(L, H)
        beta, logdet_A = linalg.small_spd_solve(_normal_matrix(H, KiH), KiH.T @ y)
        residual = y - H @ beta
        alpha = linalg.cho_solve(L, residual)
        nll = 0.5 * jnp.dot(residual, alpha) + half_logdet + 0.5 * logdet_A
    alpha = jnp.where(mask, alpha, 0.0)
    return nll, {"L": L, "alpha": alpha, "beta": beta}


def _normal_matrix(H: jax.Array, KiH: jax.Array) -> jax.Array:
    """``H^T K^-1 H`` (given ``KiH = K^-1 H``) plus a 1e-8 ridge: the mean coefficients'
    normal equations."""
    return H.T @ KiH + 1e-8 * jnp.eye(H.shape[1], dtype=H.dtype)


@jax.custom_vjp
def _restricted_nll(C: jax.Array, z: jax.Array, H: jax.Array) -> jax.Array:
    # value only (line-search trials): one Cholesky and vector solves, no explicit inverse
    L = linalg.cholesky(C)
    nll = jnp.sum(jnp.log(jnp.diag(L)))
    if H.shape[1]:
        KiH = linalg.cho_solve(L, H)
        beta, logdet = linalg.small_spd_solve(_normal_matrix(H, KiH), KiH.T @ z)
        z = z - H @ beta
        nll = nll + 0.5 * logdet
    nll = nll + 0.5 * jnp.dot(z, linalg.cho_solve(L, z))
    return jnp.where(jnp.isfinite(nll), nll, jnp.inf)


def _restricted_nll_fwd(C, z, H):
    L = linalg.cholesky(C)
    P = linalg.inverse_from_cholesky(L)
    nll = jnp.sum(jnp.log(jnp.diag(L)))
    if H.shape[1]:
        KiH = P @ H
        correction, logdet = linalg.small_spd_solve(_normal_matrix(H, KiH), KiH.T)
        P = P - KiH @ correction
        nll = nll + 0.5 * logdet
    Pz = P @ z
    nll = nll + 0.5 * jnp.dot(z, Pz)
    nll = jnp.where(jnp.isfinite(nll), nll, jnp.inf)
    return nll, (P, Pz, H)


def _restricted_nll_bwd(res, g):
    P, Pz, H = res
    # d nll = 0.5 tr((P - P z z^T P) dC) + (P z) . dz   (Harville's REML gradient)
    dC = 0.5 * g * (P - jnp.outer(Pz, Pz))
    return jnp.nan_to_num(dC), jnp.nan_to_num(g * Pz), jnp.zeros_like(H)


_restricted_nll.defvjp(_restricted_nll_fwd, _restricted_nll_bwd)


def restricted_nll(
    K: jax.Array, noise: jax.Array, y: jax.Array, mask: jax.Array, H: jax.Array | None = None
) -> jax.Array:
    """The ``nll`` of :func:`reml_nll` (plain Cholesky, +inf on failure) with a hand-written
    reverse-mode gradient: one Cholesky and one explicit inverse per evaluation instead of
    differentiating through the factorization (about 5x faster at N = 256 on CPU). Use it as
    the objective of hyperparameter fits; gradients flow to ``K``, ``noise`` and ``y``.
    """
    y = jnp.where(mask, y, 0.0)
    H = jnp.zeros((y.shape[0], 0), y.dtype) if H is None else jnp.where(mask[:, None], H, 0.0)
    return _restricted_nll(masked_gram(K, noise, mask), y, H)


def minimize(
    loss: Callable[[jax.Array], jax.Array],
    params: jax.Array,
    *,
    max_steps: int = 200,
    tol: float = 1e-7,
) -> tuple[jax.Array, jax.Array]:
    """Minimize a smooth scalar ``loss(params)`` with optax L-BFGS (zoom line search).

    ``params``: a flat vector. Stops after ``max_steps`` or when the gradient norm falls below
    ``tol``. Non-finite losses are mapped to +inf-like values so the line search backs off.
    Returns ``(params, loss)`` at the best point seen. Jittable.

    Do not ``vmap`` it over starts: under ``vmap`` XLA:CPU (jax 0.10.2, optax 0.2.8) was seen
    to never finish (likely the batched-LAPACK deadlock described in
    :mod:`recipes_jax.batching`); :func:`minimize_from_starts` runs starts one after another. A
    backtracking line search (which vmaps) stalled at the start on RegMix's 17-domain
    simulator fit (REML 0.10 instead of -1.45, test R^2 0.76 instead of 0.99).
    """
    safe_loss = lambda p: jnp.nan_to_num(loss(p), nan=1e30, posinf=1e30)
    solver = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(safe_loss)

    def step(carry):
        p, state, best_p, best_f, i = carry
        value, grad = value_and_grad(p, state=state)
        grad = jnp.nan_to_num(grad)
        updates, state = solver.update(grad, state, p, value=value, grad=grad, value_fn=safe_loss)
        better = value < best_f
        best_p = jnp.where(better, p, best_p)
        best_f = jnp.where(better, value, best_f)
        return optax.apply_updates(p, updates), state, best_p, best_f, i + 1

    def keep_going(carry):
        _, state, _, _, i = carry
        grad = optax.tree_utils.tree_get(state, "grad")
        return (i < max_steps) & ((i == 0) | (optax.tree_utils.tree_norm(grad) >= tol))

    init = (params, solver.init(params), params, jnp.asarray(jnp.inf, params.dtype), 0)
    p, _, best_p, best_f, _ = jax.lax.while_loop(keep_going, step, init)
    final = safe_loss(p)
    return jnp.where(final < best_f, p, best_p), jnp.minimum(final, best_f)


def minimize_from_starts(
    loss: Callable[[jax.Array], jax.Array], starts, *, max_steps: int = 200
) -> tuple[jax.Array, float]:
    """Run :func:`minimize` from each row of ``starts`` [n, P], one after another (one compiled
    program serves them all); return the best ``(params, loss)``."""
    run = jax.jit(lambda p: minimize(loss, p, max_steps=max_steps))
    best_params, best_loss = None, float("inf")
    for start in jnp.asarray(starts):
        params, value = run(start)
        if best_params is None or float(value) < best_loss:
            best_params, best_loss = params, float(value)
    return best_params, best_loss


# --------------------------------------------------------------------------------------------
# The surrogate model: observations buffer, hyperparameter fit, posterior.
# --------------------------------------------------------------------------------------------


class Observations(NamedTuple):
    """A fixed-capacity buffer of observations.

    x: [N, D] encoded decisions (see ``Space.encode``); y: [N] observed values (lower is
    better is *not* assumed here; the GP is agnostic); mask: [N] bool, True for real rows.
    Rows where ``mask`` is False are padding and have no effect on anything.
    """

    x: jax.Array
    y: jax.Array
    mask: jax.Array

    @property
    def capacity(self) -> int:
        """Number of rows N, valid or padding (static)."""
        return self.x.shape[0]

    @property
    def count(self) -> jax.Array:
        """Number of valid rows (int32 scalar)."""
        return jnp.sum(self.mask, dtype=jnp.int32)


def empty_observations(capacity: int, dim: int, dtype=None) -> Observations:
    """An empty buffer of ``capacity`` rows of ``dim`` features (default float dtype)."""
    dtype = dtype or jnp.result_type(float)
    return Observations(
        jnp.zeros((capacity, dim), dtype), jnp.zeros((capacity,), dtype), jnp.zeros(capacity, bool)
    )


def observations(x, y, capacity: int | None = None) -> Observations:
    """A buffer holding ``x`` [n, D], ``y`` [n] in its first rows, padded to ``capacity``."""
    x, y = jnp.asarray(x), jnp.asarray(y, dtype=jnp.asarray(x).dtype)
    n = x.shape[0]
    capacity = n if capacity is None else capacity
    if capacity < n:
        raise ValueError(f"capacity {capacity} is smaller than the {n} observations given")
    pad = capacity - n
    return Observations(
        jnp.pad(x, ((0, pad), (0, 0))),
        jnp.pad(y, (0, pad)),
        jnp.arange(capacity) < n,
    )


def append(obs: Observations, x: jax.Array, y: jax.Array, valid=True) -> Observations:
    """Write observations x [B, D], y [B] (or one: x [D], y []) into the first free rows.

    Rows with ``valid`` False (scalar or [B]), or with a non-finite ``y``, are not written.
    Jittable; when the buffer is full further rows are dropped (size buffers for the campaign,
    or make room with :func:`evict`; ``obs.count`` tells how many were kept).
    """
    x = jnp.atleast_2d(jnp.asarray(x, obs.x.dtype))
    y = jnp.atleast_1d(jnp.asarray(y, obs.y.dtype))
    valid = jnp.broadcast_to(jnp.asarray(valid, bool), y.shape) & jnp.isfinite(y)
    free = jnp.argsort(obs.mask, stable=True)  # free rows first, in row order
    rank = jnp.cumsum(valid) - 1
    num_free = obs.capacity - obs.count
    slots = free[jnp.clip(rank, 0, obs.capacity - 1)]
    slots = jnp.where(valid & (rank < num_free), slots, obs.capacity)  # OOB -> dropped
    return Observations(
        obs.x.at[slots].set(x, mode="drop"),
        obs.y.at[slots].set(y, mode="drop"),
        obs.mask.at[slots].set(True, mode="drop"),
    )


def evict(obs: Observations, num: jax.Array, priority: jax.Array) -> Observations:
    """Free ``num`` rows (a traced int is fine) by dropping the valid rows with the lowest
    ``priority`` [N] (ties: the earlier row goes first). Jittable; ``num <= 0`` is a no-op."""
    order = jnp.argsort(jnp.where(obs.mask, priority, jnp.inf), stable=True)
    drop = jnp.zeros(obs.capacity, bool).at[order].set(jnp.arange(obs.capacity) < num)
    return obs._replace(mask=obs.mask & ~drop)


def standardization(obs: Observations) -> tuple[jax.Array, jax.Array]:
    """(location, scale) of the valid targets: their mean and standard deviation; scale 1 when
    there are fewer than two distinct values (n = 1, constant targets)."""
    n = jnp.maximum(obs.count, 1).astype(obs.y.dtype)
    y = jnp.where(obs.mask, obs.y, 0.0)
    loc = jnp.sum(y) / n
    var = jnp.sum(jnp.where(obs.mask, jnp.square(obs.y - loc), 0.0)) / n
    tiny = jnp.sqrt(jnp.finfo(obs.y.dtype).eps) * jnp.maximum(jnp.abs(loc), 1.0)
    scale = jnp.where(jnp.sqrt(var) > tiny, jnp.sqrt(var), 1.0)
    return loc, scale


def mean_basis(x: jax.Array, num_coefficients: int) -> jax.Array:
    """Mean-function basis [N, P]: P = 0 zero mean, 1 constant, D + 1 linear in x [N, D]."""
    if num_coefficients == 0:
        return jnp.zeros((x.shape[0], 0), x.dtype)
    ones = jnp.ones((x.shape[0], 1), x.dtype)
    return ones if num_coefficients == 1 else jnp.concatenate([ones, x], axis=1)


class Posterior(NamedTuple):
    """A GP conditioned on observations (all arrays; a pytree usable under jit/vmap).

    kernel: the tinygp kernel (unit amplitude); amplitude: prior variance (standardized units);
    noise: noise variance (standardized units); x [N, D], mask [N]: the conditioning inputs;
    L_inv [N, N]: inverse Cholesky factor of the masked (K + noise); alpha [N]: weights of the
    posterior mean; beta [P]: mean coefficients (P = 0, 1 or D + 1); y_loc, y_scale: the
    standardization of targets (predictions are returned in original units).
    """

    kernel: Any
    amplitude: jax.Array
    noise: jax.Array
    x: jax.Array
    mask: jax.Array
    L_inv: jax.Array
    alpha: jax.Array
    beta: jax.Array
    y_loc: jax.Array
    y_scale: jax.Array

    def astype(self, dtype) -> Posterior:
        """The same posterior with every floating array cast (e.g. float64 fit -> float32
        scoring of many candidates)."""
        cast = lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a
        return jax.tree_util.tree_map(cast, self)


def cross_covariance(post: Posterior, xq: jax.Array) -> jax.Array:
    """Prior covariance [Q, N] between queries xq [Q, D] and the (valid) observations."""
    Ks = post.amplitude * kernels.gram(post.kernel, xq, post.x)
    return jnp.where(post.mask[None, :], Ks, 0.0)


def grid_cross_covariance(post: Posterior, W: jax.Array, fidelities: jax.Array) -> jax.Array:
    """:func:`cross_covariance` [F * C, N] of the decisions ``optimize.grid_decisions(W,
    fidelities)`` (every mixture W [C, K] at every fidelity [F, 2], fidelity-major), computed
    with ``kernels.grid_gram``: for separable kernels such as the paper's, exponentials on
    (C + F) x N entries instead of F x C x N."""
    G = kernels.grid_gram(post.kernel, W, fidelities, post.x)
    Ks = post.amplitude * G.reshape(-1, G.shape[-1])
    return jnp.where(post.mask[None, :], Ks, 0.0)


def map_grid(
    post: Posterior,
    W: jax.Array,
    fidelities: jax.Array,
    fn: Callable[[jax.Array, jax.Array, jax.Array, jax.Array], Any],
) -> Any:
    """Apply ``fn`` to every mixture W [C, K] at one fidelity at a time, stacking the results.

    ``fn(i, X [C, D], Ks [C, N], V [C, N])`` gets the fidelity index i, the decisions (W at
    ``fidelities[i]``), their :func:`cross_covariance` and ``V = Ks L^-T`` (as in
    :func:`project`), and returns a pytree of arrays; the result stacks them over the F
    fidelities (leading axis F). The per-mixture kernel factors are computed once
    (:func:`kernels.grid_gram_at`), and only [C, N] blocks are ever held, which is about 2x
    faster on CPU than materializing the [F * C, N] grid and far lighter in memory.
    """
    at = kernels.grid_gram_at(post.kernel, W, fidelities, post.x)
    C, N = W.shape[0], post.x.shape[0]

    def one(i):
        Ks = post.amplitude * jnp.broadcast_to(at(i), (C, N))
        Ks = jnp.where(post.mask[None, :], Ks, 0.0)
        X = jnp.concatenate([W, jnp.broadcast_to(fidelities[i], (C, 2)).astype(W.dtype)], 1)
        return fn(i, X, Ks, linalg.times_lower_transposed(Ks, post.L_inv))

    return jax.lax.map(one, jnp.arange(fidelities.shape[0]))


def grid_predict(
    post: Posterior, W: jax.Array, fidelities: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Posterior mean [F, C] and latent variance [F, C] (original units) of every mixture
    W [C, K] at every fidelity [F, 2]: :func:`predict` on ``optimize.grid_decisions(W,
    fidelities)`` reshaped, computed fidelity by fidelity (:func:`map_grid`)."""

    def moments(i, X, Ks, V):
        del i
        mean = Ks @ post.alpha + mean_basis(X, post.beta.shape[0]) @ post.beta
        var = posterior_variance(post.amplitude * kernels.diag(post.kernel, X), V)
        return post.y_loc + post.y_scale * mean, post.y_scale**2 * var

    return map_grid(post, W, fidelities, moments)


def project(
    post: Posterior, xq: jax.Array, cross: jax.Array | None = None
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Standardized posterior pieces at queries xq [Q, D].

    Returns ``(mean [Q], prior_var [Q], V [Q, N])`` with ``V = k(xq, X) L^-T`` (one row per
    query; :func:`linalg.times_lower_transposed` skips L^-T's zero triangle), so that the
    posterior covariance of queries a, b is ``k(a, b) - V[a] . V[b]`` (standardized units).
    Row-major on purpose: XLA:CPU reduces along the last axis about 20x
    faster than along the first (0.8 ms vs 17 ms for [21525, 136] in float64).
    ``cross``: ``cross_covariance(post, xq)`` [Q, N] if already computed (e.g. by
    :func:`grid_cross_covariance`).
    """
    Ks = cross_covariance(post, xq) if cross is None else cross
    mean = Ks @ post.alpha + mean_basis(xq, post.beta.shape[0]) @ post.beta
    prior_var = post.amplitude * kernels.diag(post.kernel, xq)
    return mean, prior_var, linalg.times_lower_transposed(Ks, post.L_inv)


def posterior_variance(prior_var: jax.Array, V: jax.Array) -> jax.Array:
    """Posterior variance [Q] (standardized units) from :func:`project`'s ``prior_var`` [Q] and
    ``V`` [Q, N], clipped at 0 against rounding."""
    return jnp.maximum(prior_var - jnp.sum(V * V, axis=1), 0.0)


@partial(jax.jit, static_argnames="include_noise")
def predict(
    post: Posterior, xq: jax.Array, *, include_noise: bool = False
) -> tuple[jax.Array, jax.Array]:
    """Posterior mean [Q] and variance [Q] of the latent function at xq [Q, D], in original
    units (``include_noise`` adds the observation-noise variance). Jitted (so are
    :meth:`GP.condition` and :func:`predict_covariance`): called outside ``jit``, op by op,
    each small operation would compile on its own, seconds per new shape."""
    mean, prior_var, V = project(post, xq)
    var = posterior_variance(prior_var, V)
    if include_noise:
        var = var + post.noise
    return post.y_loc + post.y_scale * mean, jnp.square(post.y_scale) * var


@jax.jit
def predict_covariance(post: Posterior, xq: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Posterior mean [Q] and joint covariance [Q, Q] at xq [Q, D], original units."""
    mean, _, V = project(post, xq)
    prior = post.amplitude * kernels.gram(post.kernel, xq, xq)
    cov = prior - V @ V.T
    cov = 0.5 * (cov + cov.T)
    return post.y_loc + post.y_scale * mean, jnp.square(post.y_scale) * cov


def sample(post: Posterior, key: jax.Array, xq: jax.Array, num_samples: int) -> jax.Array:
    """Joint posterior samples [num_samples, Q] of the latent function at xq [Q, D]."""
    mean, cov = predict_covariance(post, xq)
    L, _ = cholesky_with_jitter(cov, 12)
    z = jax.random.normal(key, (num_samples, xq.shape[0]), mean.dtype)
    return mean + z @ L.T


MEANS = ("zero", "constant", "linear")


@dataclass(frozen=True)
class GP:
    """A GP surrogate over encoded decisions [w_1..w_K, u_scale, u_steps] (static config).

    Attributes:
      kernel: a :class:`recipes_jax.kernels.KernelFamily` (e.g. ``kernels.paper_kernel()``).
      num_domains: K, the number of mixture weights at the front of each input row.
      mean: "zero", "constant" or "linear" (in the inputs); its coefficients are profiled out
        by generalized least squares (restricted likelihood), so they need no prior.
      noise_floor: smallest noise variance, in standardized units.

    Hyperparameters (``params``) are a dict of unconstrained arrays: ``kernel`` (the family's),
    ``amplitude`` and ``noise`` (sigmoid-bounded log values). Priors: log-normal on
    lengthscales (see kernels), log-amplitude ~ N(0, 1), log-noise ~ N(-4, 2) (standardized).

    Precision: fit in float64 (``with jax.enable_x64(True):``; recipes_jax never flips the
    global flag). Float32 works (standardized targets, jitter escalation) but its likelihood is
    coarser; a float64 posterior cast with :meth:`Posterior.astype` scores candidates safely in
    float32.
    """

    kernel: kernels.KernelFamily
    num_domains: int
    mean: str = "constant"
    noise_floor: float = 1e-6

    def __post_init__(self):
        if self.mean not in MEANS:
            raise ValueError(f"unknown mean {self.mean!r}; use one of {MEANS}")
        if not self.noise_floor > 0:
            raise ValueError("noise_floor must be positive (it keeps the Cholesky stable)")

    @property
    def dim(self) -> int:
        """Width of an encoded decision: K mixture weights plus scale and steps (K + 2)."""
        return self.num_domains + 2

    def _num_mean_coefficients(self) -> int:
        return {"zero": 0, "constant": 1, "linear": self.dim + 1}[self.mean]

    def init(self, dtype=None) -> dict:
        """Default (unconstrained) hyperparameters."""
        dtype = dtype or jnp.result_type(float)
        params = {
            "kernel": self.kernel.init(self.num_domains),
            "amplitude": unbounded(0.0, *_LOG_AMPLITUDE),
            "noise": unbounded(math.log(max(1e-3, 10 * self.noise_floor)), *self._log_noise()),
        }
        return jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), params)

    def _log_noise(self):
        return math.log(self.noise_floor), 0.0

    def hyperparameters(self, params: dict) -> tuple[Any, jax.Array, jax.Array]:
        """(tinygp kernel, amplitude, noise variance) from unconstrained ``params``."""
        kernel = self.kernel.build(params["kernel"], self.num_domains)
        amplitude = jnp.exp(bounded(params["amplitude"], *_LOG_AMPLITUDE))
        noise = jnp.exp(bounded(params["noise"], *self._log_noise()))
        if jnp.finfo(noise.dtype).bits < 64:
            # float32 Cholesky of standardized data needs ~1e-4 relative diagonal headroom
            noise = jnp.maximum(noise, FLOAT32_NOISE_FLOOR)
        return kernel, amplitude, noise

    def _check(self, obs: Observations) -> None:
        if obs.x.ndim != 2 or obs.x.shape[1] != self.dim:
            raise ValueError(
                f"observations have inputs of shape {obs.x.shape}; this GP expects [N, {self.dim}]"
                f" (K = {self.num_domains} mixture weights + u_scale + u_steps): build them with "
                "space.encode(mixtures, scales, steps)"
            )
        if obs.y.shape != obs.x.shape[:1] or obs.mask.shape != obs.x.shape[:1]:
            raise ValueError(
                f"observations disagree on N: x {obs.x.shape}, y {obs.y.shape}, "
                f"mask {obs.mask.shape}; build them with gp.observations(x, y, capacity)"
            )

    def _standardized(self, obs: Observations, fixed=None):
        self._check(obs)
        loc, scale = standardization(obs) if fixed is None else fixed
        return jnp.where(obs.mask, (obs.y - loc) / scale, 0.0), loc, scale

    def _prior(self, params: dict, obs: Observations):
        """``((kernel, amplitude, noise), K [N, N], noise [N], H [N, P])``: the hyperparameters,
        the prior covariance of the buffer's inputs, the noise variances and the mean basis
        (padded rows not yet masked)."""
        kernel, amplitude, noise = self.hyperparameters(params)
        K = amplitude * kernels.gram(kernel, obs.x, obs.x)
        noise_diag = jnp.full(obs.mask.shape, noise, K.dtype)
        return (
            (kernel, amplitude, noise),
            K,
            noise_diag,
            mean_basis(obs.x, self._num_mean_coefficients()),
        )

    def loss(self, params: dict, obs: Observations) -> jax.Array:
        """Negative log posterior of the hyperparameters per valid observation: restricted
        marginal likelihood of the standardized targets plus priors (constants dropped)."""
        z, _, _ = self._standardized(obs)
        _, K, noise, H = self._prior(params, obs)
        nll = restricted_nll(K, noise, z, obs.mask, H if H.shape[1] else None)
        log_prior = (
            self.kernel.log_prior(params["kernel"], self.num_domains)
            - 0.5 * jnp.square(bounded(params["amplitude"], *_LOG_AMPLITUDE))
            - 0.5 * jnp.square((bounded(params["noise"], *self._log_noise()) + 4.0) / 2.0)
        )
        return (nll - log_prior) / jnp.maximum(obs.count, 1)

    def condition(
        self, params: dict, obs: Observations, standardization: tuple | None = None
    ) -> Posterior:
        """The posterior given hyperparameters ``params`` and observations ``obs``.

        ``standardization``: optional fixed ``(loc, scale)`` of the targets (default: from the
        valid observations), e.g. to add fantasy observations without changing units.
        """
        self._check(obs)  # a clear error before tracing
        return _condition(self, params, obs, standardization)

    def fit(
        self,
        obs: Observations,
        key: jax.Array,
        init: dict | None = None,
        *,
        num_starts: int = 8,
        method: str = "lbfgs",
        max_steps: int = 50,
        start_spread: float = 1.0,
    ) -> tuple[dict, jax.Array]:
        """Fit hyperparameters by maximizing the (restricted) marginal likelihood plus priors.

        Multi-start: start 0 is ``init`` (warm start from the previous fit) or the defaults;
        the other ``num_starts - 1`` add N(0, ``start_spread``^2) noise to the unconstrained
        defaults.
        ``method``: "lbfgs" (:func:`minimize_lbfgs_scan`, the default) or "adam" (optax Adam,
        lr 0.05). Measured in benchmarks/gp_fit.py (4 cold starts): at n = 100 L-BFGS reaches
        the optimum in 20 steps / 57 ms, Adam in 100-200 steps / 217-387 ms; at n = 200 L-BFGS
        is within 0.003 of it in 20 steps / 269 ms but needs 80 steps / 1.0 s for the rest,
        where Adam's 100 steps / 745 ms get there. Warm-started refits need only a few steps,
        which favours L-BFGS. ``max_steps``: iterations per start. Returns ``(params, loss)``
        of the best start. Jittable (static config); no data-dependent loops, so vmappable
        cheaply.

        Starts and line-search points are vmapped on GPU and TPU and looped on CPU (and inside
        :func:`recipes_jax.batching.sequential_batches`): LAPACK takes one matrix per call on
        CPU anyway (:mod:`recipes_jax.linalg`), and looping the whole loss around it was
        faster there (timed side by side on the ``benchmarks/ask_latency.py`` data, 2 cores:
        1 x 10 refit at n = 500, 157 ms looped vs 266 ms vmapped; 2 x 15, 516 vs 863 ms). On
        CPU a vmapped fit (seeds of a sweep) also runs one fit at a time, so that every fit
        can take its line search lazily (:func:`line_search_step`).
        """
        sequential = batching.is_sequential() or jax.default_backend() == "cpu"

        def run(obs, key, init, start_spread):
            return _fit(
                self, obs, key, init, num_starts, method, max_steps, start_spread, sequential
            )

        if sequential:
            # vmapped (over seeds, say), fit one buffer at a time: an unbatched fit takes its
            # line search lazily (gp.line_search_step), 1.2x faster for a CPU sweep
            run = jax.custom_batching.sequential_vmap(run)
        return run(obs, key, init, start_spread)


@partial(jax.jit, static_argnums=0)
def _condition(model: GP, params: dict, obs: Observations, standardization) -> Posterior:
    # GP.condition, jitted as a whole (see predict)
    z, loc, scale = model._standardized(obs, standardization)
    (kernel, amplitude, noise), K, noise_diag, H = model._prior(params, obs)
    L, _ = cholesky_with_jitter(masked_gram(K, noise_diag, obs.mask))
    # every solve through L^-1 (matrix products): no LAPACK call beyond the Cholesky
    L_inv = linalg.triangular_inverse(L)
    H = jnp.where(obs.mask[:, None], H, 0.0)
    beta = jnp.zeros((H.shape[1],), K.dtype)
    if H.shape[1]:
        # generalized least squares for the mean coefficients, as in reml_nll
        V_H = L_inv @ H
        beta, _ = linalg.small_spd_solve(_normal_matrix(V_H, V_H), V_H.T @ (L_inv @ z))
    alpha = jnp.where(obs.mask, L_inv.T @ (L_inv @ (z - H @ beta)), 0.0)
    return Posterior(kernel, amplitude, noise, obs.x, obs.mask, L_inv, alpha, beta, loc, scale)


_LOG_AMPLITUDE = (math.log(1e-2), math.log(1e2))

#: Noise-variance floor (standardized units) applied when fitting in float32.
FLOAT32_NOISE_FLOOR = 1e-4


@partial(jax.jit, static_argnums=(0, 4, 5, 6, 8))
def _fit(gp, obs, key, init, num_starts, method, max_steps, start_spread, sequential):
    # ``sequential`` is static so that a trace made inside ``batching.sequential_batches``
    # is never reused outside it (and the other way round)
    with batching.sequential_batches(sequential):
        return _fit_starts(gp, obs, key, init, num_starts, method, max_steps, start_spread)


def _fit_starts(gp, obs, key, init, num_starts, method, max_steps, start_spread):
    dtype = obs.y.dtype
    defaults = gp.init(dtype)
    flat_default, unravel = jax.flatten_util.ravel_pytree(defaults)
    if init is None:
        first = flat_default
    else:
        first = jax.flatten_util.ravel_pytree(
            jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), init)
        )[0]
    noise = start_spread * jax.random.normal(key, (num_starts - 1, flat_default.size), dtype)
    starts = jnp.concatenate([first[None], flat_default[None] + noise], axis=0)
    loss = lambda flat: gp.loss(unravel(flat), obs)
    if method == "lbfgs":
        run = lambda p: minimize_lbfgs_scan(loss, p, num_steps=max_steps)
    elif method == "adam":
        run = lambda p: minimize_adam(loss, p, max_steps=max_steps)
    else:
        raise ValueError(f"unknown fit method {method!r}; use 'lbfgs' or 'adam'")
    params, values = batching.batch_map(run, starts)
    best = jnp.argmin(values)
    return unravel(params[best]), values[best]


def minimize_lbfgs_scan(
    loss: Callable[[jax.Array], jax.Array],
    params: jax.Array,
    *,
    num_steps: int = 50,
    step_sizes: tuple[float, ...] = (1.0, 0.3, 0.05),
) -> tuple[jax.Array, jax.Array]:
    """Minimize ``loss`` with optax's L-BFGS direction (``optax.scale_by_lbfgs``) and a
    fixed-length ``lax.scan`` of steps, each a :func:`line_search_step` over ``step_sizes``.
    Returns the best ``(params, loss)``.

    The scan has no data-dependent length, so it stays fast under ``vmap`` (multi-start,
    seeds): optax's while-loop line searches, batched, ran 20-70x slower than unbatched on
    XLA:CPU (jax 0.10.2). (Stopping early once a step gains less than 1e-9 saved 10% of a
    2 x 15 refit at n = 500 but left 4 of 32 cold 30-step fits worse, stopped where a later
    step would have helped; not adopted.)
    """
    safe_loss = lambda p: jnp.nan_to_num(loss(p), nan=jnp.inf, posinf=jnp.inf)
    direction = optax.scale_by_lbfgs()
    value_and_grad = jax.value_and_grad(safe_loss)

    def step(carry, _):
        p, f, g, state = carry
        d, state = direction.update(g, state, p)
        p, f, g = line_search_step(safe_loss, p, f, g, d, step_sizes)
        return (p, f, g, state), None

    f0, g0 = value_and_grad(params)
    init = (params, f0, jnp.nan_to_num(g0), direction.init(params))
    (p, f, _, _), _ = jax.lax.scan(step, init, None, length=num_steps)
    return p, f


def line_search_step(
    loss: Callable[[jax.Array], jax.Array],
    params: jax.Array,
    value: jax.Array,
    grad: jax.Array,
    direction: jax.Array,
    step_sizes: tuple[float, ...] = (1.0, 0.3, 0.05),
    sufficient_decrease: float = 0.25,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One line-search step along ``-direction`` from ``params``; returns the new ``(params,
    loss, gradient)``, or the inputs unchanged when no step size lowers the loss. ``loss``
    must map non-finite values to +inf; ``value`` and ``grad`` are its value and gradient at
    ``params``.

    The rule: take the first step size, ``step_sizes[0]``, if it meets the sufficient-decrease
    (Armijo) condition ``loss <= value - sufficient_decrease * s * grad . direction``;
    otherwise the step size with the lowest loss, if that is below ``value``. With 0.25 and
    the default sizes, on a quadratic, this always picks the lowest of the three: the test
    passes only when the line's minimum lies beyond 2/3 of the unit step, and from 0.65 on
    the unit step is the lowest anyway.

    Same result, two ways of getting it. Unbatched, it evaluates lazily: the first step size
    with its gradient (usually accepted: one Cholesky and one inverse in a GP fit), the others
    only when it fails. Under ``vmap`` (seeds, or starts on a GPU) data-dependent branches
    would run every branch for every element, so its batching rule evaluates every step size
    by value (:func:`recipes_jax.batching.batch_map`) and takes one gradient at the chosen
    point.
    """
    loss_fn, consts = _hoist_closure(loss, params)

    def along(p, d):  # [S, P] trial points
        # the steps are made here: a custom_vmap function must not close over a tracer
        steps = jnp.asarray(step_sizes, p.dtype)
        return p[None, :] - steps[:, None] * d[None, :]

    def value_and_grad(p, consts):
        value, grad = jax.value_and_grad(loss_fn)(p, *consts)
        return value, jnp.nan_to_num(grad)

    def values(candidates, consts, map_fn):
        return map_fn(lambda q: loss_fn(q, *consts), candidates)

    def first_is_enough(f_first, f, g, d):
        slope = jnp.dot(g, d)  # the loss falls at rate slope along -d
        decrease = sufficient_decrease * step_sizes[0] * slope
        return (slope > 0) & (f_first < f) & (f_first <= f - decrease)

    def lazy(consts, p, f, g, d):
        candidates = along(p, d)
        f_first, g_first = value_and_grad(candidates[0], consts)

        def others(_):
            rest = values(candidates[1:], consts, jax.lax.map)
            best = jnp.argmin(jnp.concatenate([f_first[None], rest]))
            f_best = jnp.where(best == 0, f_first, rest[best - 1])
            # 0: no step size improves; 1: the first (its gradient is known); 2: another
            branch = jnp.where(f_best < f, jnp.where(best == 0, 1, 2), 0)
            return jax.lax.switch(
                branch,
                [
                    lambda: (p, f, g),
                    lambda: (candidates[0], f_first, g_first),
                    lambda: (candidates[best], *value_and_grad(candidates[best], consts)),
                ],
            )

        return jax.lax.cond(
            first_is_enough(f_first, f, g, d),
            lambda _: (candidates[0], f_first, g_first),
            others,
            None,
        )

    def eager(consts, p, f, g, d):
        candidates = along(p, d)
        fs = values(candidates, consts, batching.batch_map)
        best = jnp.where(first_is_enough(fs[0], f, g, d), 0, jnp.argmin(fs))
        found = fs[best] < f
        chosen = jnp.where(found, candidates[best], p)
        f_new, g_new = value_and_grad(chosen, consts)
        return chosen, jnp.where(found, f_new, f), jnp.where(found, g_new, g)

    search = jax.custom_batching.custom_vmap(lazy)

    @search.def_vmap
    def _batched(axis_size, in_batched, consts, p, f, g, d):
        axes = jax.tree_util.tree_map(lambda b: 0 if b else None, tuple(in_batched))
        batched = jax.vmap(eager, in_axes=axes, axis_size=axis_size)(consts, p, f, g, d)
        return batched, (True, True, True)

    return search(consts, params, value, grad, direction)


def _hoist_closure(fn: Callable, example: jax.Array) -> tuple[Callable, list]:
    """``fn(x)`` as ``converted(x, *consts)`` with every value it closes over (tracers of an
    enclosing jit or vmap included) made an explicit argument, as a ``custom_vmap`` function
    needs. ``jax.closure_convert`` hoists only floating-point values; a GP loss also closes
    over the buffer's boolean mask."""
    closed = jax.make_jaxpr(fn)(example)

    def converted(x, *consts):
        return jax.extend.core.jaxpr_as_fun(
            jax.extend.core.ClosedJaxpr(closed.jaxpr, list(consts))
        )(x)[0]

    return converted, list(closed.consts)


def minimize_adam(
    loss: Callable[[jax.Array], jax.Array],
    params: jax.Array,
    *,
    max_steps: int = 200,
    learning_rate: float = 0.05,
) -> tuple[jax.Array, jax.Array]:
    """Minimize ``loss`` with optax Adam for ``max_steps`` steps; returns the best point seen
    and its loss. Jittable and vmappable (a fixed-length ``lax.scan``)."""
    safe_loss = lambda p: jnp.nan_to_num(loss(p), nan=1e30, posinf=1e30)
    opt = optax.adam(learning_rate)

    def step(carry, _):
        p, state, best_p, best_f = carry
        value, grad = jax.value_and_grad(safe_loss)(p)
        better = value < best_f
        best_p, best_f = jnp.where(better, p, best_p), jnp.where(better, value, best_f)
        updates, state = opt.update(jnp.nan_to_num(grad), state, p)
        return (optax.apply_updates(p, updates), state, best_p, best_f), None

    init = (params, opt.init(params), params, jnp.asarray(jnp.inf, params.dtype))
    (p, _, best_p, best_f), _ = jax.lax.scan(step, init, None, length=max_steps)
    final = safe_loss(p)
    return jnp.where(final < best_f, p, best_p), jnp.minimum(final, best_f)
