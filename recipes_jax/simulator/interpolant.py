"""The simulator's interpolant: fitted once, then evaluated as knot lookups plus a kernel sum.

Fitting (float64, at construction):

1. **Scale mean curves.** For each model scale in the table, the metric is split into a curve
   shared by the scale's runs and a per-run offset, ``y[r, s] ~ a_scale(s) + b_r``, by
   alternating least squares on the observed cells (robust to runs cut short: dropping a bad
   run does not bend the curve).
2. **Learning curves.** Each run's deviation from its scale's curve is smoothed along
   log-steps by a GP (constant + Matern-5/2 + noise, hyperparameters shared by all runs and
   fitted by marginal likelihood). This averages out eval noise and extends runs cut short to
   later steps, with a variance that says how uncertain that extension is.
3. **Mixtures and scales.** At every step knot a GP over (mixture, scale) interpolates the
   smoothed values across scattered mixtures: an order-1 arc-cosine kernel (the covariance of
   an infinitely wide ReLU layer, :class:`recipes_jax.kernels.ArcCosine`) over per-domain
   Box-Cox-warped weights and log-scale, centred and divided by their lengthscales, plus a bias
   coordinate; times a free-form coregionalization matrix between the table's scales, which
   pools information across scales; per-scale intercepts; heteroscedastic noise from step 2.
   Hyperparameters are shared by all knots (standardized per knot) and fitted by REML with
   optax L-BFGS. On the paper world the arc-cosine kernel beat a Matern-5/2 over the same
   inputs in every worst cell (the paper's simulator is itself a ReLU network).

Evaluation (any float dtype, jitted): a query (w, m, s) finds the bracketing scales (linear in
log-parameters) and step knots (linear in log-steps), and blends their coefficients, which costs
one kernel row ``k(x, runs)`` at the query's inputs ``x = x(w, log m)`` and two gathered
coefficient rows:

    f(w, m, s) = sum_ij a_i b_j intercept[k_j, t_i]
               + sum_r k(x, x_r) (sum_i a_i B[t_i, t_r]) (sum_j b_j alpha[k_j, r])

At a table scale and a step knot this is the GP's posterior mean. The kernel is
``x.x_r + |x| |x_r| bend(cos)``: its linear part is summed over the runs once, in float64, at
fitting time (``linear_coef``), so float32 queries only sum the small bend. Where a large
fitted bias makes every input nearly parallel, the bend is computed from ``1 - cos`` formed
without a cosine near 1 (:func:`_directions`). Float32 queries stay within ~2e-5 (relative)
of float64: 8e-6 and 1.6e-5 on the paper world's StackExchange and Github runs, 6e-6 on a
noise-free table whose inputs are all nearly parallel (2e-4 there before).
"""

from __future__ import annotations

import functools
import time
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from recipes_jax import gp, linalg
from recipes_jax.kernels import (
    WARP_EPS,
    ArcCosine,
    Coregionalization,
    arc_cosine_bend,
    arc_cosine_bend_of_gap,
    box_cox,
    matern52,
    unit_rows,
)
from recipes_jax.simulator.run_table import RunTable, describe_never_varied, never_varied

__all__ = ["InterpolantParams", "evaluate", "fit_interpolant"]


class InterpolantParams(NamedTuple):
    """Precomputed coefficients of a fitted interpolant (a pytree of arrays).

    R: runs with data, K: domains, T: distinct scales, J: step knots.

    Attributes:
      run_features: [R, K + 2] the runs' kernel inputs (see :func:`mixture_scale_features`).
      warp_power: [K] Box-Cox powers.
      inv_lengthscale: [K + 1] inverse lengthscales of the warped weights and of log-scale.
      feature_center: [K + 1] the runs' mean warped weights and mean log-scale.
      feature_bias: [] the constant last coordinate of the kernel inputs.
      scale_rows: [T, R] coregionalization ``B[t, scale of run r]``.
      alpha: [J, R] kernel coefficients per step knot, metric units.
      linear_coef: [T, J, K + 2] the linear part of the kernel sum at each (scale, step knot),
        ``sum_r run_features[r] B[t, scale of r] alpha[j, r]``, summed in float64.
      intercept: [J, T] per-scale intercepts per step knot, metric units.
      log_scales: [T] log of the table's scales (millions of parameters), ascending.
      log_steps: [J] log of the step knots, ascending.
      step_range: [T, 2] log of the first and last step observed at each scale.
    """

    run_features: jax.Array
    warp_power: jax.Array
    inv_lengthscale: jax.Array
    feature_center: jax.Array
    feature_bias: jax.Array
    scale_rows: jax.Array
    alpha: jax.Array
    linear_coef: jax.Array
    intercept: jax.Array
    log_scales: jax.Array
    log_steps: jax.Array
    step_range: jax.Array


def mixture_scale_features(w, log_m, power, inv_lengthscale, center, bias):
    """Inputs of the mixture x scale kernel, [..., K + 2].

    w: [..., K] mixtures; log_m: [...] log of the scale (millions of parameters). The
    Box-Cox-warped weights and log-scale, centred on the runs' means (``center`` [K + 1]) and
    divided by their lengthscales, then the constant ``bias`` (the arc-cosine kernel's origin
    matters; the bias coordinate keeps every input away from it).
    """
    x = jnp.concatenate([box_cox(w, power), log_m[..., None]], axis=-1)
    x = (x - center) * inv_lengthscale
    return jnp.concatenate([x, jnp.broadcast_to(bias, x.shape[:-1])[..., None]], axis=-1)


# ---------------------------------------------------------------------------- evaluation
def _bracket(knots: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Indices (i0, i1) of the knots around x and the weight of i1, for linear interpolation."""
    n = knots.shape[0]
    if n == 1:
        zero = jnp.zeros(x.shape, jnp.int32)
        return zero, zero, jnp.zeros_like(x)
    i1 = jnp.clip(jnp.searchsorted(knots, x, side="left"), 1, n - 1)
    i0 = i1 - 1
    weight = (x - knots[i0]) / (knots[i1] - knots[i0])
    return i0, i1, jnp.clip(weight, 0.0, 1.0)


def _directions(x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """For kernel inputs x [N, D] whose last coordinate is the constant bias b: (d [N, D],
    g [N], |x| [N]) such that ``1 - cos(x_i, x_j) = g_i + g_j - d_i . d_j`` without forming a
    cosine near 1 (g is each input's own ``1 - cos`` with the bias axis).

    With ``|x| = b (1 + e)``: ``d = (x[:-1] / |x|, g)`` and ``g = e / (1 + e)``, e from
    ``expm1(log1p(|x[:-1]|^2 / b^2) / 2)``. A large bias makes every input nearly parallel; a
    cosine then keeps only ~1e-7 absolute precision in float32, which cost ~2e-4 relative in
    the simulator's answers on noise-free tables, while g and d . d are each small and exact
    to float32's relative precision."""
    bias = x[:, -1]
    rest = x[:, :-1]
    e = jnp.expm1(0.5 * jnp.log1p(jnp.sum(rest * rest, axis=-1) / (bias * bias)))
    norm = bias * (1.0 + e)
    g = e / (1.0 + e)
    return jnp.concatenate([rest / norm[:, None], g[:, None]], axis=-1), g, norm


def valid_log_step_range(
    params: InterpolantParams, log_m: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Log-step interval [lo, hi] where a query at log-scale ``log_m`` is supported by data at
    both bracketing scales (where a scale has zero weight, its range does not count)."""
    i0, i1, a1 = _bracket(params.log_scales, log_m)
    r0, r1 = params.step_range[i0], params.step_range[i1]
    lo = jnp.maximum(
        jnp.where(a1 < 1, r0[..., 0], -jnp.inf), jnp.where(a1 > 0, r1[..., 0], -jnp.inf)
    )
    hi = jnp.minimum(jnp.where(a1 < 1, r0[..., 1], jnp.inf), jnp.where(a1 > 0, r1[..., 1], jnp.inf))
    return lo, hi


def evaluate(
    params: InterpolantParams,
    w: jax.Array,
    m: jax.Array,
    s: jax.Array,
    *,
    clamp: bool = False,
    chunk: int = 1024,
) -> jax.Array:
    """Interpolated metric at queries; pure and jittable.

    w: [B, K] mixtures (renormalized to sum to 1); m: [B] scales (millions of parameters);
    s: [B] steps. Returns [B].
    Queries outside the table's scales, or outside the steps observed at the bracketing
    scales, return NaN, or are clamped onto the supported region when ``clamp`` is True.
    The kernel sum runs over blocks of ``chunk`` queries so that its [chunk, runs]
    intermediates stay in cache (memory traffic, not arithmetic, bounds this on CPUs).
    """
    dtype = params.alpha.dtype
    w = jnp.clip(jnp.asarray(w, dtype), 0.0)
    w = w / jnp.sum(w, axis=-1, keepdims=True)  # as the run table and Space renormalize
    log_m = jnp.log(jnp.asarray(m, dtype))
    log_s = jnp.log(jnp.asarray(s, dtype))
    lo_m, hi_m = params.log_scales[0], params.log_scales[-1]
    tol = 1e-6
    if clamp:
        log_m = jnp.clip(log_m, lo_m, hi_m)
    lo_s, hi_s = valid_log_step_range(params, log_m)
    if clamp:
        log_s = jnp.clip(log_s, lo_s, hi_s)
    inside = (
        (log_m >= lo_m - tol)
        & (log_m <= hi_m + tol)
        & (log_s >= lo_s - tol)
        & (log_s <= hi_s + tol)
    )
    t0, t1, a1 = _bracket(params.log_scales, log_m)
    k0, k1, b1 = _bracket(params.log_steps, log_s)
    a0, b0 = 1.0 - a1, 1.0 - b1

    def bilinear(table_tk):
        """[T, J, *E] -> [B, *E]: blend of table_tk[t, k] over the bracketing scales and knots."""
        wa0, wa1, wb0, wb1 = (
            x.reshape(x.shape + (1,) * (table_tk.ndim - 2)) for x in (a0, a1, b0, b1)
        )
        return wa0 * (wb0 * table_tk[t0, k0] + wb1 * table_tk[t0, k1]) + wa1 * (
            wb0 * table_tk[t1, k0] + wb1 * table_tk[t1, k1]
        )

    intercept = bilinear(params.intercept.T)
    features = mixture_scale_features(
        w,
        log_m,
        params.warp_power,
        params.inv_lengthscale,
        params.feature_center,
        params.feature_bias,
    )

    # The kernel is x.y + |x| |y| bend(cos): its linear part, summed over the runs in float64
    # at fitting time, is one dot product with the blended ``linear_coef``; only the bend (small,
    # so its sum cancels little in float32) is summed over the runs here, with the runs' lengths
    # folded into their coefficients and the query's length taken out of the sum.
    run_units, run_norms = unit_rows(params.run_features)
    run_dirs, run_shift, _ = _directions(params.run_features)
    scale_rows = params.scale_rows * run_norms
    intercept = intercept + jnp.sum(features * bilinear(params.linear_coef), axis=-1)
    # A large fitted bias makes every input nearly parallel: 1 - cos is then formed without a
    # cosine near 1 (float32 answers 2e-4 -> 6e-6 off on such a table), which costs ~50% more
    # per kernel entry, so only then (never on the paper's or RegMix's runs)
    nearly_parallel = jnp.median(run_shift) < 0.05

    def bend_of(f):
        """Kernel bend [c, R] and the queries' lengths [c] for kernel inputs f [c, D]."""

        def from_cosines(f):
            units, norms = unit_rows(f)
            return arc_cosine_bend(units @ run_units.T), norms

        def from_gaps(f):
            dirs, shift, norms = _directions(f)
            gap = shift[:, None] + run_shift[None, :] - dirs @ run_dirs.T  # 1 - cos
            return arc_cosine_bend_of_gap(gap), norms

        return jax.lax.cond(nearly_parallel, from_gaps, from_cosines, f)

    def kernel_sum(block):
        f, t0, t1, a0, a1, k0, k1, b0, b1 = block
        bend, norms = bend_of(f)
        scale_coef = a0[:, None] * scale_rows[t0] + a1[:, None] * scale_rows[t1]
        step_coef = b0[:, None] * params.alpha[k0] + b1[:, None] * params.alpha[k1]
        return norms * jnp.sum(bend * scale_coef * step_coef, axis=-1)

    block = (features, t0, t1, a0, a1, k0, k1, b0, b1)
    batch = w.shape[0]
    if batch <= chunk:
        total = kernel_sum(block)
    else:
        n_blocks = -(-batch // chunk)
        pad = n_blocks * chunk - batch
        blocks = jax.tree.map(
            lambda x: jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1)).reshape(
                (n_blocks, chunk, *x.shape[1:])
            ),
            block,
        )
        total = jax.lax.map(kernel_sum, blocks).reshape(-1)[:batch]
    return jnp.where(inside, intercept + total, jnp.nan)


# ---------------------------------------------------------------------------- fitting helpers
def _scale_curves(z: np.ndarray, mask: np.ndarray, groups: np.ndarray, num_groups: int):
    """Per-scale curves ``a[t, s]`` with ``z[r, s] ~ a[group[r], s] + b[r]``.

    Fitted by alternating least squares on observed cells of the scale's *complete* runs
    (observed at every step seen at that scale) when there are enough of them: their set does
    not change along the curve, so runs cut short cannot put kinks into the curve (which would
    then show up as noise in every run's deviation). Otherwise all runs are used. Columns never
    observed at a scale are NaN.
    """
    a = np.full((num_groups, z.shape[1]), np.nan)
    zf = np.where(mask, z, 0.0)
    for t in range(num_groups):
        rows = np.nonzero(groups == t)[0]
        seen = mask[rows].any(0)
        complete = rows[mask[rows][:, seen].all(1)]
        if len(complete) >= max(2, 0.2 * len(rows)):
            rows = complete
        zt, mt = zf[rows], mask[rows].astype(np.float64)
        bt = np.zeros(len(rows))
        counts_col = np.maximum(mt.sum(0), 1.0)
        counts_row = np.maximum(mt.sum(1), 1.0)
        for _ in range(50):
            at = ((zt - bt[:, None]) * mt).sum(0) / counts_col
            new_b = ((zt - at[None, :]) * mt).sum(1) / counts_row
            new_b -= new_b.mean()
            converged = np.max(np.abs(new_b - bt)) < 1e-12
            bt = new_b
            if converged:
                break
        at = ((zt - bt[:, None]) * mt).sum(0) / counts_col
        a[t] = np.where(seen, at, np.nan)
    return a


def _fill_inside(a: np.ndarray, log_steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate each scale's curve over unobserved columns inside its observed range (in
    log-steps); return it and the [T, 2] index range observed at each scale."""
    filled = a.copy()
    ranges = np.zeros((a.shape[0], 2), dtype=np.int64)
    for t in range(a.shape[0]):
        seen = np.nonzero(np.isfinite(a[t]))[0]
        ranges[t] = seen[0], seen[-1]
        inside = np.arange(seen[0], seen[-1] + 1)
        filled[t, inside] = np.interp(log_steps[inside], log_steps[seen], a[t, seen])
    return filled, ranges


def _choose_knots(log_steps: np.ndarray, ranges: np.ndarray, max_knots: int) -> np.ndarray:
    """Indices of step knots: about ``max_knots`` evenly spaced in log-steps, plus the ends of
    every scale's observed range (so each scale's range starts and ends on a knot)."""
    n = len(log_steps)
    if n <= max_knots:
        return np.arange(n)
    targets = np.linspace(log_steps[0], log_steps[-1], max_knots)
    idx = np.abs(log_steps[None, :] - targets[:, None]).argmin(1)
    return np.unique(np.concatenate([idx, ranges.ravel()]))


def _thin(n: int, max_n: int) -> np.ndarray:
    return (
        np.arange(n) if n <= max_n else np.unique(np.linspace(0, n - 1, max_n).round().astype(int))
    )


# ---------------------------------------------------------------------------- stage 1: curves
def _curve_kernel(log_params, u1, u2):
    """Constant + Matern-5/2 in log-steps.

    log_params = log [constant variance, Matern variance, lengthscale, noise variance].
    """
    const, var, length = jnp.exp(log_params[0]), jnp.exp(log_params[1]), jnp.exp(log_params[2])
    return const + var * matern52()(u1[:, None] / length, u2[:, None] / length)


def _curve_bounds(var: float, span: float) -> tuple[np.ndarray, np.ndarray]:
    lo = np.log([1e-8 * var, 1e-8 * var, 0.01 * span, 1e-8 * var])
    hi = np.log([10 * var, 10 * var, 10 * span, var])
    return lo, hi


def _fit_curve_hyperparameters(u, dev, mask, rng) -> np.ndarray:
    """Marginal-likelihood fit of the learning-curve GP on a subsample of runs and steps;
    returns the log parameters of :func:`_curve_kernel`."""
    usable = np.nonzero(mask.sum(1) >= 2)[0]
    rows = rng.choice(usable, size=min(96, len(usable)), replace=False)
    log_spaced = np.abs(u[None, :] - np.linspace(u[0], u[-1], 24)[:, None]).argmin(1)
    cols = np.unique(np.concatenate([_thin(len(u), 48), log_spaced]))
    uu, dd, mm = u[cols], dev[np.ix_(rows, cols)], mask[np.ix_(rows, cols)]
    var = max(float(np.var(dd[mm])), 1e-12)
    offsets = np.array([dd[i][mm[i]].mean() for i in range(len(rows))])
    span = max(float(uu[-1] - uu[0]), 1e-3)
    lo, hi = _curve_bounds(var, span)

    def loss(raw):
        log_params = gp.bounded(raw, lo, hi)
        K = _curve_kernel(log_params, uu, uu)
        noise = jnp.full(uu.shape, jnp.exp(log_params[3]))
        nll = jax.vmap(lambda y, m: gp.restricted_nll(K, noise, y, m))(dd, mm)
        return jnp.sum(nll) / mm.sum()

    const0 = max(float(np.var(offsets)), 1e-4 * var)
    starts = np.stack(
        [
            gp.unbounded(np.log([const0, 0.1 * var, 0.3 * span, 0.01 * var]), lo, hi),
            gp.unbounded(np.log([const0, 0.3 * var, 1.0 * span, 0.1 * var]), lo, hi),
        ]
    )
    best, _ = gp.minimize_from_starts(loss, starts, max_steps=150)
    return np.asarray(gp.bounded(best, lo, hi))


def _run_curve_posterior(log_params, u, u_knots, y, m):
    """Posterior mean and variance [J] at the knots u_knots [J] of one run's smoothed deviation,
    given its deviations y [S] at log-steps u [S] and their mask m [S]."""
    noise = jnp.full(u.shape, jnp.exp(log_params[3]))
    K = _curve_kernel(log_params, u, u)
    K_knots = jnp.where(m[None, :], _curve_kernel(log_params, u_knots, u), 0.0)  # [J, S]
    prior_var = jnp.exp(log_params[0]) + jnp.exp(log_params[1])
    _, aux = gp.reml_nll(K, noise, y, m)
    v = linalg.solve_lower(aux["L"], K_knots.T)
    return K_knots @ aux["alpha"], jnp.maximum(prior_var - jnp.sum(v * v, axis=0), 0.0)


def _curve_posterior(log_params, u, dev, mask, u_knots, chunk: int = 64):
    """Posterior mean and variance [R, J] of each run's smoothed deviation at the knots."""
    one = functools.partial(_run_curve_posterior, log_params, u, u_knots)
    batched = jax.jit(jax.vmap(one))
    means, variances = [], []
    for start in range(0, dev.shape[0], chunk):
        mu, var = batched(dev[start : start + chunk], mask[start : start + chunk])
        means.append(np.asarray(mu))
        variances.append(np.asarray(var))
    return np.concatenate(means), np.concatenate(variances)


# ---------------------------------------------------------------------------- stage 2: mixtures
class _MixtureLayout(NamedTuple):
    """Sizes and bounds of the mixture x scale GP's raw parameter vector."""

    num_domains: int
    num_scales: int
    rank: int
    log_length0: np.ndarray  # [K + 1] centre of the lengthscale ranges (log), weights then scale
    # [K + 1] 1.0 where the table varies that input, 0.0 where every run has the same value (a
    # domain the runs never use): the kernel ignores those, since the fit cannot learn their
    # lengthscales and the arc-cosine kernel, which grows with |x|, would answer any query
    # that uses them with an arbitrary, unbounded extrapolation
    varied: np.ndarray

    def unpack(self, raw):
        """raw -> (inverse lengthscales [K + 1], zero for inputs the table never varies, warp
        powers [K], scale covariance [T, T], noise, bias)."""
        K, T, r = self.num_domains, self.num_scales, self.rank
        log_length = gp.bounded(raw[: K + 1], self.log_length0 - 4.0, self.log_length0 + 4.0)
        power = gp.bounded(raw[K + 1 : 2 * K + 1], 0.02, 1.0)
        rest = raw[2 * K + 1 :]
        factor = gp.bounded(rest[: T * r], -3.0, 3.0).reshape(T, r)
        log_diag = gp.bounded(rest[T * r : T * r + T], np.log(1e-4), np.log(10.0))
        bias = jnp.exp(gp.bounded(rest[T * r + T], np.log(1e-2), np.log(1e2)))
        noise = jnp.exp(gp.bounded(raw[-1], np.log(1e-6), 0.0))
        B = factor @ factor.T + jnp.diag(jnp.exp(log_diag))
        return jnp.exp(-log_length) * self.varied, power, B, noise, bias

    def pack(
        self,
        length_factor: float,
        power: float,
        shared: float,
        own: float,
        bias: float,
        noise: float,
    ):
        K, T, r = self.num_domains, self.num_scales, self.rank
        factor = np.zeros((T, r))
        factor[:, 0] = np.sqrt(shared)
        return np.concatenate(
            [
                gp.unbounded(
                    self.log_length0 + np.log(length_factor),
                    self.log_length0 - 4.0,
                    self.log_length0 + 4.0,
                ),
                gp.unbounded(np.full(K, power), 0.02, 1.0),
                gp.unbounded(factor.ravel(), -3.0, 3.0),
                gp.unbounded(np.full(T, np.log(own)), np.log(1e-4), np.log(10.0)),
                gp.unbounded(np.array([np.log(bias)]), np.log(1e-2), np.log(1e2)),
                gp.unbounded(np.array([np.log(noise)]), np.log(1e-6), 0.0),
            ]
        )

    def gram(self, raw, W, log_m, groups):
        """The runs' Gram matrix [R, R] and what evaluation needs: noise, kernel inputs
        [R, K + 2], their centre [K + 1] and the scale covariance [T, T]."""
        inv_length, power, B, noise, bias = self.unpack(raw)
        center = jnp.concatenate([jnp.mean(box_cox(W, power), axis=0), jnp.mean(log_m)[None]])
        features = mixture_scale_features(W, log_m, power, inv_length, center, bias)
        gram = ArcCosine.gram(features, features) * Coregionalization(B)(groups, groups)
        return gram, noise, features, center, B


def _fit_mixture_hyperparameters(
    layout: _MixtureLayout, W, log_m, groups, targets, variances, valid
):
    """REML fit of the mixture x scale GP, summed over a few representative knots."""
    onehot = jax.nn.one_hot(groups, layout.num_scales, dtype=W.dtype)

    def loss(raw):
        gram, noise, _, _, _ = layout.gram(raw, W, log_m, groups)
        nll = jax.vmap(lambda y, v, m: gp.restricted_nll(gram, v + noise, y, m, onehot))(
            targets, variances, valid
        )
        return jnp.sum(nll) / valid.sum()

    # one start: a second (longer lengthscales, near-raw weights) never won on the paper's or
    # RegMix's runs with the Matern kernel this replaced, and doubled the construction time
    start = layout.pack(length_factor=1.0, power=0.5, shared=0.7, own=0.3, bias=1.0, noise=0.01)
    starts = start[None]
    best, best_loss = gp.minimize_from_starts(loss, starts, max_steps=60)
    return np.asarray(best), best_loss


# ---------------------------------------------------------------------------- the whole fit
def fit_interpolant(
    table: RunTable,
    metric: str | int,
    *,
    max_step_knots: int = 48,
    seed: int = 0,
) -> tuple[InterpolantParams, dict]:
    """Fit the interpolant of one metric of ``table``.

    Returns float64 numpy-backed params (cast them to the dtype you query in) and an ``info``
    dict: the fitted hyperparameters, the estimated eval noise sd (metric units), the knots and
    the time each stage took (seconds). Its ``lengthscale`` lists the K warped weights'
    lengthscales, then log-scale's (``inf`` for ``unvaried_domains``); ``feature_bias`` is the
    kernel inputs' constant coordinate.

    Domains whose weight is the same in every run with data (typically 0: runs that never used
    them) are listed in ``info["unvaried_domains"]`` with a warning, and the kernel ignores
    them: nothing in the runs says what they do.
    """
    timings = {}
    t_start = time.perf_counter()
    rng = np.random.default_rng(seed)
    values, mask = table.curve(metric)
    has_data = mask.any(axis=1)
    if not has_data.any():
        raise ValueError(f"metric {metric!r} has no observed values in this run table")
    values, mask = values[has_data], mask[has_data]
    W = table.mixtures[has_data]
    run_scales = table.scales[has_data]
    scales = np.unique(run_scales)
    groups = np.searchsorted(scales, run_scales)
    num_scales = len(scales)
    log_steps_all = np.log(table.steps.astype(np.float64))

    observed = values[mask]
    center = float(observed.mean())
    spread = float(observed.std()) or 1.0
    z = np.where(mask, (values - center) / spread, 0.0)

    with jax.enable_x64(True):
        # 1. scale curves and run offsets
        curves = _scale_curves(z, mask, groups, num_scales)
        curves, ranges = _fill_inside(curves, log_steps_all)
        knots = _choose_knots(log_steps_all, ranges, max_step_knots)
        timings["scale_curves_s"] = time.perf_counter() - t_start

        # 2. learning-curve smoothing of deviations from the scale curve
        t0 = time.perf_counter()
        curve_at_run = np.nan_to_num(curves[groups])  # [R, S]
        dev = np.where(mask, z - curve_at_run, 0.0)
        cols = _thin(len(log_steps_all), 256)
        cols = np.unique(np.concatenate([cols, knots]))
        curves_seen = int((mask[:, cols].sum(1) >= 2).sum())
        if len(log_steps_all) == 1:
            curve_log_params = np.full(4, -np.inf)
            dev_mean, dev_var = dev[:, knots], np.zeros((len(dev), len(knots)))
        else:
            if curves_seen >= 2:
                curve_log_params = _fit_curve_hyperparameters(
                    log_steps_all[cols], dev[:, cols], mask[:, cols], rng
                )
            else:
                # no learning curves to learn from (e.g. runs that report their final value
                # only, at different steps): a run's deviation from its scale's curve is
                # taken as constant along steps, and the eval noise comes from step 3
                var = max(float(np.var(dev[mask])), 1e-12)
                span = max(float(log_steps_all[-1] - log_steps_all[0]), 1e-3)
                curve_log_params = np.log([var, 1e-8 * var, span, 1e-8 * var])
            dev_mean, dev_var = _curve_posterior(
                jnp.asarray(curve_log_params),
                jnp.asarray(log_steps_all[cols]),
                jnp.asarray(dev[:, cols]),
                jnp.asarray(mask[:, cols]),
                jnp.asarray(log_steps_all[knots]),
            )
        timings["learning_curves_s"] = time.perf_counter() - t0

        # 3. mixture x scale GP at every knot
        t0 = time.perf_counter()
        knot_curves = curves[:, knots]  # [T, J], NaN outside a scale's range
        targets = (knot_curves[groups] + dev_mean).T  # [J, R]
        valid = np.isfinite(targets)
        targets = np.nan_to_num(targets)
        variances = dev_var.T
        # per-knot spread of values around their scale's mean (shared hyperparameters then
        # see comparable, standardized targets at every knot)
        knot_sd = np.ones(len(knots))
        for j in range(len(knots)):
            resid = [targets[j][valid[j] & (groups == t)] for t in range(num_scales)]
            resid = np.concatenate([r - r.mean() for r in resid if len(r)] or [np.zeros(0)])
            knot_sd[j] = float(resid.std()) if len(resid) > 1 and resid.std() > 0 else 1.0
        targets_std = targets / knot_sd[:, None]
        variances_std = variances / knot_sd[:, None] ** 2
        base_features = np.asarray(box_cox(jnp.asarray(W), jnp.full(W.shape[1], 0.5)))
        run_log_m = np.log(run_scales.astype(np.float64))
        unvaried = never_varied(W)
        if unvaried.any():
            names = describe_never_varied(W, table.domains)
            warnings.warn(
                f"metric {table.metrics[table.metric_index(metric)]!r}: every run with data has "
                f"the same weight on domain(s) {names}, so the runs say nothing about what "
                "those domains do; the simulator ignores their weights (a query answers as if "
                "only its other weights were given). Add runs that vary them to learn their "
                "effect.",
                UserWarning,
                stacklevel=3,
            )
        layout = _MixtureLayout(
            num_domains=W.shape[1],
            num_scales=num_scales,
            rank=min(num_scales, 3),
            log_length0=np.log(np.maximum(np.append(base_features.std(0), run_log_m.std()), 1e-3)),
            varied=np.append(~unvaried, True).astype(np.float64),
        )
        fit_rows = np.unique(
            np.abs(
                np.arange(len(knots))[None, :] - np.array([[0.35], [0.7], [1.0]]) * (len(knots) - 1)
            ).argmin(1)
        )
        raw, fit_loss = _fit_mixture_hyperparameters(
            layout,
            jnp.asarray(W),
            jnp.asarray(run_log_m),
            jnp.asarray(groups),
            jnp.asarray(targets_std[fit_rows]),
            jnp.asarray(variances_std[fit_rows]),
            jnp.asarray(valid[fit_rows]),
        )
        timings["mixture_hyperparameters_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        gram, noise, features, feature_center, B = layout.gram(
            jnp.asarray(raw), jnp.asarray(W), jnp.asarray(run_log_m), jnp.asarray(groups)
        )
        onehot = jax.nn.one_hot(jnp.asarray(groups), num_scales, dtype=gram.dtype)
        solve_all = jax.jit(jax.vmap(lambda y, v, m: gp.reml_nll(gram, v + noise, y, m, onehot)[1]))
        aux = solve_all(jnp.asarray(targets_std), jnp.asarray(variances_std), jnp.asarray(valid))
        alpha = np.asarray(aux["alpha"]) * (spread * knot_sd)[:, None]
        intercept = center + np.asarray(aux["beta"]) * (spread * knot_sd)[:, None]
        inv_length, power, _, _, bias = layout.unpack(jnp.asarray(raw))
        B = np.asarray(B)
        params = InterpolantParams(
            run_features=np.asarray(features),
            warp_power=np.asarray(power),
            inv_lengthscale=np.asarray(inv_length),
            feature_center=np.asarray(feature_center),
            feature_bias=np.asarray(bias),
            scale_rows=B[:, groups],
            alpha=alpha,
            linear_coef=np.einsum("rd,tr,jr->tjd", np.asarray(features), B[:, groups], alpha),
            intercept=intercept,
            log_scales=np.log(scales),
            log_steps=log_steps_all[knots],
            step_range=log_steps_all[ranges],
        )
        timings["solve_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_start
    noise_sd = (
        float(np.sqrt(np.exp(curve_log_params[3]))) * spread
        if curves_seen >= 2 and len(log_steps_all) > 1
        else float(np.sqrt(float(noise)) * spread * np.median(knot_sd))
    )
    info = {
        "runs_used": int(has_data.sum()),
        "unvaried_domains": [table.domains[d] for d in np.nonzero(unvaried)[0]],
        "scales": scales.tolist(),
        "step_knots": table.steps[knots].tolist(),
        "noise_sd": noise_sd,
        "warp_power": np.asarray(power).tolist(),
        "lengthscale": [1.0 / v if v > 0 else float("inf") for v in np.asarray(inv_length)],
        "scale_covariance": B.tolist(),
        "mixture_noise_var": float(noise),
        "feature_bias": float(bias),
        "curve_hyperparameters": np.exp(curve_log_params).tolist(),
        "fit_loss": fit_loss,
        "timings": timings,
        "warp_eps": WARP_EPS,
    }
    return params, info
