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

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import optax

__all__ = [
    "bounded",
    "cholesky_with_jitter",
    "masked_gram",
    "minimize",
    "minimize_from_starts",
    "reml_nll",
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
        return jnp.linalg.cholesky(K + jitter * eye), jitter, tries + 1

    zero = jnp.zeros((), K.dtype)
    L, jitter, _ = jax.lax.while_loop(cond, body, (jnp.linalg.cholesky(K), zero, 0))
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
    # d(L L^T) = dK  =>  dL = L Phi(L^-1 dK L^-T), Phi = lower triangle with halved diagonal
    solve = partial(jax.scipy.linalg.solve_triangular, L, lower=True)
    inner = solve(solve(dK).T).T
    phi = jnp.tril(inner) - 0.5 * jnp.diag(jnp.diag(inner))
    return (L, jitter), (L @ phi, jnp.zeros_like(jitter))


def masked_gram(K: jax.Array, noise: jax.Array, mask: jax.Array) -> jax.Array:
    """``K + diag(noise)`` restricted to valid rows; invalid rows become identity rows.

    K [N, N], noise [N] (variances), mask [N] bool -> [N, N].
    """
    pair = mask[:, None] & mask[None, :]
    return jnp.where(pair, K, 0.0) + jnp.diag(jnp.where(mask, noise, 1.0))


def reml_nll(
    K: jax.Array, noise: jax.Array, y: jax.Array, mask: jax.Array, H: jax.Array | None = None
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
    Constant terms are dropped.
    """
    y = jnp.where(mask, y, 0.0)
    L, _ = cholesky_with_jitter(masked_gram(K, noise, mask))
    solve = lambda b: jax.scipy.linalg.cho_solve((L, True), b)
    half_logdet = jnp.sum(jnp.log(jnp.diag(L)))
    if H is None:
        alpha = solve(y)
        beta = jnp.zeros((0,), y.dtype)
        nll = 0.5 * jnp.dot(y, alpha) + half_logdet
    else:
        H = jnp.where(mask[:, None], H, 0.0)
        KiH = solve(H)
        A = H.T @ KiH + 1e-8 * jnp.eye(H.shape[1], dtype=H.dtype)
        beta = jnp.linalg.solve(A, KiH.T @ y)
        residual = y - H @ beta
        alpha = solve(residual)
        nll = 0.5 * jnp.dot(residual, alpha) + half_logdet + 0.5 * jnp.linalg.slogdet(A)[1]
    alpha = jnp.where(mask, alpha, 0.0)
    return nll, {"L": L, "alpha": alpha, "beta": beta}


def bounded(raw: jax.Array, lo, hi) -> jax.Array:
    """Map unconstrained ``raw`` into the open interval (lo, hi) with a sigmoid.

    Hyperparameters are optimized in this form so that no step of a line search can reach
    absurd values (a lengthscale of 1e-150 overflows gradients to NaN).
    """
    return lo + (hi - lo) * jax.nn.sigmoid(raw)


def unbounded(value, lo, hi):
    """Inverse of :func:`bounded` (for initial values strictly inside (lo, hi))."""
    frac = jnp.clip((jnp.asarray(value) - lo) / (hi - lo), 1e-6, 1 - 1e-6)
    return jnp.log(frac) - jnp.log1p(-frac)


def minimize(
    loss: Callable[[jax.Array], jax.Array],
    params: jax.Array,
    *,
    max_steps: int = 200,
    tol: float = 1e-7,
) -> tuple[jax.Array, jax.Array]:
    """Minimize a smooth scalar ``loss(params)`` with optax L-BFGS (backtracking line search).

    ``params``: a flat vector. Stops after ``max_steps`` or when the gradient norm falls below
    ``tol``. Non-finite losses are mapped to +inf-like values so the line search backs off.
    Returns ``(params, loss)`` at the best point seen. Jittable.

    Vmappable (multi-start). The backtracking line search is used rather than optax's default
    zoom line search because the latter, under ``vmap`` over starts, never finished here
    (jax 0.10.2, optax 0.2.8).
    """
    safe_loss = lambda p: jnp.nan_to_num(loss(p), nan=1e30, posinf=1e30)
    solver = optax.lbfgs(
        linesearch=optax.scale_by_backtracking_linesearch(
            max_backtracking_steps=30, store_grad=True
        )
    )
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
    """Run :func:`minimize` from every row of ``starts`` [n, P] at once (``vmap``); return the
    best ``(params, loss)``."""
    params, values = jax.jit(jax.vmap(lambda p: minimize(loss, p, max_steps=max_steps)))(
        jnp.asarray(starts)
    )
    best = int(jnp.argmin(values))
    return params[best], float(values[best])
