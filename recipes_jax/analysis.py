"""How quality is measured: regret against cost, speedup with bootstrap intervals, plots.

The quantity of interest is the simple regret of the recommended mixture at the target
fidelity, as a function of cumulative cost (in units of one full target run):

    opt = find_optimum(truth, K, *space.target, key)       # dense search + gradient polish
    r = regret(truth, traces.recommendation, *space.target, opt.value)       # [S, T]
    grid = cost_grid(budget)                                                 # [G]
    curves = regret_at_costs(traces.cost, r, grid, active=traces.active)     # [S, G]
    bands = quantile_curves(curves)                    # median and bands over seeds
    result = speedup(cost_a, r_a, cost_b, r_b)         # A over B, bootstrap 95% interval

Everything after the truth function is evaluated is plain numpy on arrays (a seed axis S, an ask
axis T, a cost-grid axis G), so any campaign trace works, as do synthetic arrays. Conventions:

- Before a seed's first ask has completed there is no recommendation: its regret curve is
  ``+inf`` there (not NaN), so medians and other quantiles over seeds stay well defined.
- Cost to reach a level is the first grid cost at which a curve is ``<= level``; ``+inf`` if it
  never gets there. Speedup of A over B is ``cost_b / cost_a``: 0 when A never reaches the level,
  ``+inf`` when only B never does, NaN when neither does.
- Plots need matplotlib (``pip install 'recipes-jax[plot]'``), imported only inside the plot
  functions, which draw on an Agg canvas without touching matplotlib's global backend.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from recipes_jax.atomic import atomic_write
from recipes_jax.optimize import drop_small_weights

__all__ = [
    "Optimum",
    "can_plot",
    "cost_grid",
    "cost_to_reach",
    "find_optimum",
    "plot_fidelities",
    "plot_regret",
    "plot_ternary",
    "quantile_curves",
    "regret",
    "regret_at_costs",
    "regret_curves",
    "simplex_grid",
    "speedup",
    "to_jsonable",
]

#: Truth function: (mixtures w [B, K], scales m [B] in millions, steps s [B]) -> metric [B].
TruthFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


class Optimum(NamedTuple):
    """Best mixture found for a truth function at one fidelity.

    mixture: [K] float numpy array on the simplex; value: the truth at ``mixture`` (float);
    num_points: how many mixtures were screened (int); screened_value: the best value among the
    screened points, before gradient refinement (float; never better than ``value``).
    """

    mixture: np.ndarray
    value: float
    num_points: int
    screened_value: float


# ----------------------------------------------------------------------------- truth functions


def _fidelity_columns(batch: int, scale, steps, dtype) -> tuple[jax.Array, jax.Array]:
    return jnp.full((batch,), scale, dtype), jnp.full((batch,), steps, dtype)


#: weights below these are zeroed in turn after refinement (``find_optimum``)
FACE_FLOORS = (1e-7, 1e-5, 1e-3)


def find_optimum(
    truth: TruthFn,
    num_domains: int,
    scale: float,
    steps: float,
    key: jax.Array,
    *,
    maximize: bool = False,
    num_points: int = 1_000_000,
    refine_top: int = 16,
    refine_steps: int = 200,
    batch: int = 65_536,
    learning_rate: float = 0.05,
) -> Optimum:
    """Best mixture of ``truth`` at fidelity ``(scale, steps)``, by dense search then refinement.

    Screening evaluates at least ``num_points`` Dirichlet(1) mixtures (uniform on the simplex),
    plus one Dirichlet(0.2) mixture per eight of those (sparse mixtures near the faces, which
    uniform draws almost never reach) and the K vertices, in jitted batches of ``batch`` (one
    ``lax.scan``), keeping the best ``refine_top``. Each of those is then refined by
    ``refine_steps`` optax Adam steps (cosine-decayed learning rate) on softmax logits, keeping
    the best point seen, so refinement never makes a candidate worse. A softmax never reaches
    a face of the simplex, so each refined point is then also tried with its weights below
    1e-7, 1e-5 and 1e-3 zeroed (:data:`FACE_FLOORS`, ``optimize.drop_small_weights``), each
    kept only where ``truth`` is better there: optima on a face come out exactly on it.

    Args:
      truth: jittable ``(w [B, K], m [B], s [B]) -> [B]``; non-finite values count as worst.
      num_domains: K >= 1.
      scale: model scale in millions of parameters (usually the target's).
      steps: training steps (usually the target's).
      key: PRNG key for the screened mixtures.
      maximize: True when higher values are better.
      num_points: minimum number of Dirichlet(1) mixtures screened (rounded up to whole batches).
      refine_top: candidates refined by gradient steps.
      refine_steps: Adam steps per candidate (0 disables refinement).
      batch: Dirichlet(1) mixtures per jitted screening batch.
      learning_rate: initial Adam learning rate on the logits.

    Runs in ``jnp``'s default float dtype: float64 if the caller enabled x64, else float32
    (where the location of a smooth interior optimum is then good to about 1e-4).

    Raises ``ValueError`` for bad arguments, or if ``truth`` is non-finite at every point.
    """
    K = int(num_domains)
    if K < 1:
        raise ValueError(f"num_domains must be >= 1; got {num_domains}")
    if num_points < 1 or batch < 1 or refine_top < 1 or refine_steps < 0:
        raise ValueError(
            "need num_points >= 1, batch >= 1, refine_top >= 1 and refine_steps >= 0; got "
            f"{num_points}, {batch}, {refine_top}, {refine_steps}"
        )
    dtype = jnp.result_type(float)
    batch = min(int(batch), int(num_points))
    num_batches = math.ceil(num_points / batch)
    sparse_batch = max(1, batch // 8)
    top = min(int(refine_top), num_batches * (batch + sparse_batch) + K)
    sign = -1.0 if maximize else 1.0

    def signed(w):
        """sign * truth: lower is better, possibly non-finite."""
        m, s = _fidelity_columns(w.shape[0], scale, steps, dtype)
        return sign * jnp.asarray(truth(w, m, s)).astype(dtype)

    def loss(w):
        v = signed(w)
        return jnp.where(jnp.isfinite(v), v, jnp.inf)

    def merge(best, w, v):
        best_v, best_w = best
        all_v = jnp.concatenate([best_v, v])
        neg, idx = jax.lax.top_k(-all_v, top)
        return -neg, jnp.concatenate([best_w, w])[idx]

    @jax.jit
    def screen(key, sparse):
        vertices = jnp.eye(K, dtype=dtype)
        init = (jnp.full((top,), jnp.inf, dtype), jnp.full((top, K), 1.0 / K, dtype))
        init = merge(init, vertices, loss(vertices))

        def body(best, xs):
            i, sparse_i = xs
            e = jax.random.exponential(jax.random.fold_in(key, i), (batch, K), dtype)
            w = jnp.concatenate([e / jnp.sum(e, axis=1, keepdims=True), sparse_i])
            return merge(best, w, loss(w)), None

        best, _ = jax.lax.scan(body, init, (jnp.arange(num_batches), sparse))
        return best

    def keep_better(best, w, v):
        """Row by row, (w, v) where v is lower than best's value, else best."""
        best_w, best_v = best
        v = jnp.where(jnp.isfinite(v), v, jnp.inf)
        better = v < best_v
        return jnp.where(better[:, None], w, best_w), jnp.where(better, v, best_v)

    @jax.jit
    def refine(w0, v0):
        opt = optax.adam(optax.cosine_decay_schedule(learning_rate, max(refine_steps, 1), 0.01))
        logits0 = jnp.log(w0 + 1e-6)

        def total(logits):
            v = signed(jax.nn.softmax(logits, axis=-1))
            # rows are independent, so the gradient of the sum is each row's own gradient
            return jnp.sum(jnp.where(jnp.isfinite(v), v, 0.0)), v

        def step(carry, _):
            logits, state, best = carry
            grad, v = jax.grad(total, has_aux=True)(logits)
            best = keep_better(best, jax.nn.softmax(logits, axis=-1), v)
            updates, state = opt.update(jnp.nan_to_num(grad), state, logits)
            return (optax.apply_updates(logits, updates), state, best), None

        carry = (logits0, opt.init(logits0), (w0, v0))
        (logits, _, best), _ = jax.lax.scan(step, carry, None, length=refine_steps)
        w_last = jax.nn.softmax(logits, axis=-1)
        return keep_better(best, w_last, signed(w_last))

    @jax.jit
    def onto_faces(w, v):
        best = (w, v)
        for floor in FACE_FLOORS:
            w_face = drop_small_weights(best[0], floor)
            best = keep_better(best, w_face, loss(w_face))
        return best

    key_dense, key_sparse = jax.random.split(key)
    # Dirichlet(0.2) draws come from numpy: jax.random.dirichlet's gamma sampler takes ~2 s to
    # compile, longer than screening a million points
    rng = np.random.default_rng(np.asarray(jax.random.bits(key_sparse, (4,), jnp.uint32)))
    sparse = rng.dirichlet(np.full(K, 0.2), (num_batches, sparse_batch))
    screened_v, screened_w = screen(key_dense, jnp.asarray(sparse, dtype))
    if refine_steps > 0:
        best_w, best_v = refine(screened_w, screened_v)
        best_w, best_v = onto_faces(best_w, best_v)
    else:
        best_w, best_v = screened_w, screened_v
    i = int(jnp.argmin(best_v))
    if not np.isfinite(float(best_v[i])):
        raise ValueError(
            f"truth was non-finite at every screened mixture at scale={scale}, steps={steps}"
        )
    return Optimum(
        mixture=np.asarray(best_w[i]),
        value=sign * float(best_v[i]),
        num_points=num_batches * (batch + sparse_batch) + K,
        screened_value=sign * float(screened_v[0]),
    )


def _evaluate(truth: TruthFn, w: np.ndarray, scale, steps, batch: int) -> np.ndarray:
    """truth at mixtures w [N, K] at one fidelity, in jitted batches of at most ``batch``
    (the last padded, so one compilation) -> float numpy array [N]."""
    dtype = jnp.result_type(float)
    n, K = w.shape
    size = max(1, min(batch, n))

    @jax.jit
    def f(wb):
        m, s = _fidelity_columns(size, scale, steps, dtype)
        return jnp.asarray(truth(wb, m, s))

    out = []
    for start in range(0, n, size):
        chunk = w[start : start + size]
        pad = size - chunk.shape[0]
        if pad:
            chunk = np.concatenate([chunk, np.full((pad, K), 1.0 / K, chunk.dtype)])
        out.append(np.asarray(f(jnp.asarray(chunk, dtype)))[: size - pad])
    return np.concatenate(out) if out else np.zeros((0,), np.float64)


#: Regret below -this x |optimum| means the optimum was not one (or the direction is wrong).
_BEYOND_OPTIMUM = 1e-4


def regret(
    truth: TruthFn,
    recommendation,
    scale: float,
    steps: float,
    optimum_value: float,
    *,
    maximize: bool = False,
    batch: int = 65_536,
) -> np.ndarray:
    """Simple regret of recommended mixtures at fidelity ``(scale, steps)``.

    Args:
      truth: jittable ``(w [B, K], m [B], s [B]) -> [B]``.
      recommendation: [..., K] mixtures (e.g. a sweep's ``recommendation`` [S, T, K]).
      scale, steps: the fidelity (usually the target), millions of parameters and steps.
      optimum_value: the best value of ``truth`` there (e.g. ``find_optimum(..).value``).
      maximize: True when higher values are better; regret is then ``optimum - value``,
        otherwise ``value - optimum``.
      batch: mixtures per jitted evaluation.

    Returns float64 numpy array [...] in the metric's units. Not clipped: regret is >= 0 when
    ``optimum_value`` is the true optimum, so a value slightly below 0 means the dense search
    missed the optimum by that much. Below -1e-4 x |optimum| it warns: that is no search error
    but a wrong ``maximize`` or an optimum of another metric or fidelity.
    """
    w = np.asarray(recommendation)
    if w.ndim < 1 or w.shape[-1] < 1:
        raise ValueError(f"recommendation must be [..., K] mixtures; got shape {w.shape}")
    values = _evaluate(truth, w.reshape(-1, w.shape[-1]), scale, steps, batch)
    values = values.astype(np.float64).reshape(w.shape[:-1])
    gap = values - float(optimum_value)
    out = -gap if maximize else gap
    worst = np.nanmin(out) if np.isfinite(out).any() else 0.0
    if worst < -_BEYOND_OPTIMUM * max(abs(float(optimum_value)), 1e-2):
        warnings.warn(
            f"regret down to {worst:.3g}: recommendations beat the optimum by more than a search "
            f"could miss it. Is maximize={maximize} right for this metric (accuracies need "
            "maximize=True), and was optimum_value found with the same direction and fidelity?",
            stacklevel=2,
        )
    return out


# ----------------------------------------------------------------------------- curves


def _as_runs(name: str, x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim not in (1, 2):
        raise ValueError(f"{name} must be [S, T] (seeds x asks) or [T]; got shape {x.shape}")
    return x


def _as_grid(grid) -> np.ndarray:
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 1 or grid.shape[0] == 0:
        raise ValueError(f"grid must be a non-empty 1-D array of costs; got shape {grid.shape}")
    if np.any(np.isnan(grid)) or np.any(np.diff(grid) < 0):
        raise ValueError("grid must be ascending costs without NaN")
    return grid


def cost_grid(max_cost: float, num: int = 200, min_cost: float | None = None) -> np.ndarray:
    """Log-spaced costs [num] from ``min_cost`` (default ``max_cost / 1000``) to ``max_cost``,
    both included, in units of one full target run."""
    max_cost = float(max_cost)
    min_cost = max_cost / 1000.0 if min_cost is None else float(min_cost)
    if not (np.isfinite(max_cost) and max_cost > 0 and np.isfinite(min_cost) and min_cost > 0):
        raise ValueError(f"costs must be positive and finite; got {min_cost=}, {max_cost=}")
    if min_cost > max_cost:
        raise ValueError(f"min_cost {min_cost} is above max_cost {max_cost}")
    if num < 1:
        raise ValueError(f"num must be >= 1; got {num}")
    if num == 1:
        return np.array([max_cost])
    return np.geomspace(min_cost, max_cost, int(num))


def regret_at_costs(cost, regret, grid, *, active=None) -> np.ndarray:
    """Regret curves on a cost grid, as step functions of cumulative cost.

    Args:
      cost: [S, T] cumulative cost after each ask (or [T] for one seed), in target runs.
      regret: [S, T] (or [T]) regret of the recommendation made after each ask.
      grid: [G] ascending costs.
      active: optional [S, T] (or [T]) bool; asks that were not run are ignored.

    Returns float64 [S, G] (or [G]): at grid cost c, the regret of the last (active) ask whose
    cumulative cost is <= c; ``+inf`` where no ask has completed yet. Cumulative costs never
    decrease along a seed's active asks; costs that do (per-ask costs such as
    ``trace.proposals.cost`` instead of ``trace.cost``) are an error.
    """
    cost = _as_runs("cost", cost).astype(np.float64)
    regret = _as_runs("regret", regret).astype(np.float64)
    grid = _as_grid(grid)
    if cost.shape != regret.shape:
        raise ValueError(f"cost {cost.shape} and regret {regret.shape} must have the same shape")
    if active is not None:
        active = np.asarray(active, dtype=bool)
        if active.shape != cost.shape:
            raise ValueError(f"active {active.shape} must have the shape of cost {cost.shape}")
        cost = np.where(active, cost, np.inf)
    if np.any(np.isnan(cost)):
        raise ValueError("cost contains NaN")
    _check_cumulative(np.atleast_2d(cost))
    single = cost.ndim == 1
    cost, regret = np.atleast_2d(cost), np.atleast_2d(regret)
    # suffix minimum: ask t "has completed by c" for the last such t iff min(cost[t:]) <= c,
    # and the suffix minimum is sorted, so one searchsorted per seed finds the last ask
    done = np.minimum.accumulate(cost[:, ::-1], axis=1)[:, ::-1]
    last = np.stack([np.searchsorted(row, grid, side="right") - 1 for row in done])
    out = np.take_along_axis(regret, np.maximum(last, 0), axis=1)
    out = np.where(last >= 0, out, np.inf)
    return out[0] if single else out


def _check_cumulative(cost: np.ndarray) -> None:
    """Refuse [S, T] costs that decrease along a seed's active (finite) asks."""
    running = np.fmax.accumulate(np.where(np.isinf(cost), -np.inf, cost), axis=1)
    drops = np.isfinite(cost[:, 1:]) & (cost[:, 1:] < running[:, :-1])
    if drops.any():
        s, t = (int(i) for i in np.argwhere(drops)[0])
        raise ValueError(
            f"cost must be cumulative (each ask's total spent so far, e.g. trace.cost), but "
            f"seed {s}'s cost drops to {cost[s, t + 1]:g} at ask {t + 1} after "
            f"{running[s, t]:g}: per-ask costs (trace.proposals.cost)? Pass their cumulative "
            "sum along the asks"
        )


def regret_curves(
    trace: Any,
    truth: TruthFn,
    grid,
    scale: float,
    steps: float,
    optimum_value: float,
    *,
    maximize: bool = False,
) -> np.ndarray:
    """Regret curves [S, G] (or [G] for one campaign) of a campaign trace on a cost grid.

    ``trace`` is any object with ``cost`` [S, T], ``recommendation`` [S, T, K] and optionally
    ``active`` [S, T] (a sweep's trace, or one campaign's without the S axis); see
    :func:`regret` and :func:`regret_at_costs`.
    """
    r = regret(truth, trace.recommendation, scale, steps, optimum_value, maximize=maximize)
    return regret_at_costs(trace.cost, r, grid, active=getattr(trace, "active", None))


def _lerp(a: np.ndarray, b: np.ndarray, frac: float) -> np.ndarray:
    """``a + (b - a) * frac`` for order statistics ``a <= b`` that may be infinite: an infinite
    endpoint wins (``np.quantile`` gives NaN between two infinities), -inf with +inf is NaN."""
    if frac == 0:
        return a
    with np.errstate(invalid="ignore"):
        out = a + (b - a) * frac
    out = np.where(np.isneginf(a) & ~np.isposinf(b), -np.inf, out)
    out = np.where(np.isposinf(b) & ~np.isneginf(a), np.inf, out)
    return np.where(a == b, a, out)


def _quantile(x: np.ndarray, q: float, axis: int) -> np.ndarray:
    """Linear-interpolation quantile along ``axis`` (as ``np.quantile``) that handles +-inf;
    NaN anywhere along the axis gives NaN."""
    h = (x.shape[axis] - 1) * q
    lo, hi = math.floor(h), math.ceil(h)
    part = np.partition(x, sorted({lo, hi}), axis=axis)
    out = _lerp(np.take(part, lo, axis=axis), np.take(part, hi, axis=axis), h - lo)
    return np.where(np.any(np.isnan(x), axis=axis), np.nan, out)


def quantile_curves(
    curves, quantiles: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9)
) -> dict[str, np.ndarray]:
    """Quantiles over seeds of curves [S, G].

    Returns ``{"median": [G], "q10": [G], "q25": [G], ...}``: one key ``f"q{100 * q:g}"`` per
    quantile, linear interpolation between order statistics; ``+inf`` entries (no ask completed
    yet) count as larger than everything, so the median is ``+inf`` until over half the seeds
    have a recommendation. NaN in a column gives NaN there.
    """
    curves = np.asarray(curves, dtype=np.float64)
    if curves.ndim != 2 or curves.shape[0] == 0:
        raise ValueError(f"curves must be [S, G] with S >= 1; got shape {curves.shape}")
    out = {"median": _quantile(curves, 0.5, axis=0)}
    for q in quantiles:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantiles must be in [0, 1]; got {q}")
        out[f"q{100 * q:g}"] = _quantile(curves, float(q), axis=0)
    return out


def cost_to_reach(grid, curve, level) -> np.ndarray | float:
    """First grid cost at which ``curve <= level``; ``+inf`` if it never gets there. An
    infinite curve value (no recommendation yet) reaches no level, not even ``+inf``.

    Args:
      grid: [G] ascending costs.
      curve: [G] or [..., G] curves on that grid (e.g. [S, G] per seed).
      level: scalar, or an array broadcastable with ``curve.shape[:-1]``.

    Returns a float for a single curve and scalar level, else an array of the broadcast shape.
    "First" matters when a curve is not monotone: a recommendation can get worse again.
    """
    grid = _as_grid(grid)
    curve = np.asarray(curve, dtype=np.float64)
    if curve.ndim < 1 or curve.shape[-1] != grid.shape[0]:
        raise ValueError(f"curve must be [..., G] with G = {grid.shape[0]}; got {curve.shape}")
    level = np.asarray(level, dtype=np.float64)
    reached = (curve <= level[..., None]) & np.isfinite(curve)
    first = np.argmax(reached, axis=-1)
    out = np.where(np.any(reached, axis=-1), grid[first], np.inf)
    return float(out) if out.ndim == 0 else out


# ----------------------------------------------------------------------------- speedup


def _default_grid(costs: list[np.ndarray], actives: list[np.ndarray | None]) -> np.ndarray:
    firsts, lasts = [], []
    for cost, active in zip(costs, actives, strict=True):
        c = np.atleast_2d(cost).astype(np.float64)
        ok = np.isfinite(c) & (c > 0)
        if active is not None:
            ok &= np.atleast_2d(np.asarray(active, dtype=bool))
        if not ok.any():
            raise ValueError("no ask with a positive finite cost; pass an explicit grid")
        firsts.append(c[ok].min())
        lasts.append(c[ok].max())
    return cost_grid(max(lasts), num=512, min_cost=min(firsts))


def _medians_of_resamples(curves: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Median curves [R, G] of curves [S, G] over the seeds resampled by idx [R, S].

    Each column is sorted once; a resample is then a count per seed, and its k-th order
    statistic in a column is the first sorted position whose running count exceeds k. That is
    a gather, a cumulative sum and a comparison per element, several times faster than
    partitioning every resampled array.
    """
    S, G = curves.shape
    R = idx.shape[0]
    order = np.argsort(curves, axis=0)  # no NaN here: speedup refuses NaN regrets
    values = np.take_along_axis(curves, order, axis=0)
    dtype = np.int16 if S < np.iinfo(np.int16).max else np.int64
    counts = np.bincount((idx + S * np.arange(R)[:, None]).ravel(), minlength=R * S)
    counts = counts.reshape(R, S).astype(dtype)
    order_t = np.ascontiguousarray(order.T)  # [G, S]: the running count is along the last axis
    lo, hi = (S - 1) // 2, S // 2
    columns = np.arange(G)
    per_chunk = max(1, (1 << 22) // (S * G))
    out = np.empty((R, G))
    for start in range(0, R, per_chunk):
        running = np.cumsum(counts[start : start + per_chunk][:, order_t], axis=-1, dtype=dtype)
        a = values[np.sum(running <= lo, axis=-1), columns]
        b = values[np.sum(running <= hi, axis=-1), columns]
        out[start : start + per_chunk] = _lerp(a, b, 0.5 if hi > lo else 0.0)
    return out


def _ratio(cost_b, cost_a):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(cost_b, dtype=np.float64) / np.asarray(cost_a, dtype=np.float64)


def _interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    samples = samples[~np.isnan(samples)]
    if samples.size == 0:
        return math.nan, math.nan
    alpha = (1.0 - confidence) / 2.0
    return float(_quantile(samples, alpha, 0)), float(_quantile(samples, 1.0 - alpha, 0))


def speedup(
    cost_a,
    regret_a,
    cost_b,
    regret_b,
    *,
    levels=None,
    num_bootstrap: int = 1000,
    seed: int = 0,
    grid=None,
    active_a=None,
    active_b=None,
    confidence: float = 0.95,
    paired: bool = False,
) -> dict[str, Any]:
    """Speedup of method A over method B, with a bootstrap interval over seeds.

    Speedup = (cost B needs to reach a regret level) / (cost A needs for the same level), each
    read off that method's median-over-seeds regret curve (:func:`regret_at_costs`,
    :func:`cost_to_reach`). The default level is B's final median regret (its value at the last
    grid cost), which B always reaches.

    Args:
      cost_a, regret_a: [S_a, T_a] cumulative cost (target runs) and regret per ask of A.
      cost_b, regret_b: [S_b, T_b] the same for B (seed counts and asks may differ).
      levels: optional extra regret levels [L], each reported too.
      num_bootstrap: resamples; seeds are drawn with replacement independently within A and
        within B (or, ``paired``, the same draw for both), both median curves and the ratio
        recomputed. 0 skips the interval.
      seed: seed of the resampling (the interval is deterministic given it).
      grid: [G] ascending costs; default 512 log-spaced from the cheapest first ask to the
        largest cost of either method. Costs to reach are grid values, so the speedup's
        resolution is one grid ratio (about 1.4% for three decades at 512 points).
      active_a, active_b: optional [S, T] masks of asks that were run.
      confidence: the interval's coverage (percentile bootstrap).
      paired: seed i of A and seed i of B belong together (the same key, say, in a comparison
        where the key fixes something both share, such as two variants of one method): each
        resample draws the same seeds for both, so that what the seeds share cancels in the
        ratio. Needs equal seed counts. The default treats them as independent samples, the
        conservative choice when the methods share little but the key.

    Returns a dict: ``speedup``, ``ci_low``, ``ci_high``, ``level``, ``cost_a``, ``cost_b`` for
    the default level; ``levels``: a list of dicts with the same keys, one per given level;
    plus ``confidence``, ``num_bootstrap``, ``num_seeds_a``, ``num_seeds_b``. Speedup is 0 when
    A never reaches the level within the grid, ``+inf`` when B never does but A does, NaN when
    neither does (such resamples are left out of the interval). For the default level each
    resample uses its own B's final median, so B reaches it in every resample; given levels are
    fixed across resamples.
    """
    if grid is None:
        grid = _default_grid([cost_a, cost_b], [active_a, active_b])
    grid = _as_grid(grid)
    curves = []
    for name, cost, reg, active in (
        ("a", cost_a, regret_a, active_a),
        ("b", cost_b, regret_b, active_b),
    ):
        c = np.asarray(cost)
        if c.ndim != 2:
            raise ValueError(f"cost_{name} must be [S, T] (seeds x asks); got shape {c.shape}")
        curves.append(regret_at_costs(c, reg, grid, active=active))
    curves_a, curves_b = curves
    for name, c in (("a", curves_a), ("b", curves_b)):
        bad = np.flatnonzero(np.isnan(c).any(axis=-1))
        if bad.size:
            raise ValueError(
                f"regret_{name} is NaN at seed(s) {bad.tolist()} (a recommendation the truth "
                "could not score?): a median over seeds would be meaningless. Drop those seeds, "
                "or give them regret +inf if they count as failures"
            )
    if paired and curves_a.shape[0] != curves_b.shape[0]:
        raise ValueError(
            f"paired needs as many seeds in A as in B; got {curves_a.shape[0]} and "
            f"{curves_b.shape[0]}"
        )
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}")
    extra = np.atleast_1d(np.asarray([] if levels is None else levels, dtype=np.float64))
    if extra.ndim != 1:
        raise ValueError(f"levels must be a 1-D list of regret levels; got shape {extra.shape}")

    def costs(median_a, median_b):
        """median curves [..., G] -> default level [...], its costs [...], extra costs [..., L]"""
        level = median_b[..., -1]
        ca, cb = cost_to_reach(grid, median_a, level), cost_to_reach(grid, median_b, level)
        xa = cost_to_reach(grid, median_a[..., None, :], extra)
        xb = cost_to_reach(grid, median_b[..., None, :], extra)
        return level, ca, cb, xa, xb

    level, ca, cb, xa, xb = costs(_quantile(curves_a, 0.5, 0), _quantile(curves_b, 0.5, 0))
    nan2 = (math.nan, math.nan)
    ci, ci_extra = nan2, [nan2] * extra.size
    if num_bootstrap > 0:
        rng = np.random.default_rng(seed)
        idx_a = rng.integers(0, curves_a.shape[0], (num_bootstrap, curves_a.shape[0]))
        idx_b = (
            idx_a
            if paired
            else rng.integers(0, curves_b.shape[0], (num_bootstrap, curves_b.shape[0]))
        )
        boot = costs(_medians_of_resamples(curves_a, idx_a), _medians_of_resamples(curves_b, idx_b))
        _, bca, bcb, bxa, bxb = boot
        ci = _interval(_ratio(bcb, bca), confidence)
        ratios = _ratio(bxb, bxa)
        ci_extra = [_interval(ratios[:, j], confidence) for j in range(extra.size)]

    def entry(lv, a, b, interval):
        return {
            "speedup": float(_ratio(b, a)),
            "ci_low": interval[0],
            "ci_high": interval[1],
            "level": float(lv),
            "cost_a": float(a),
            "cost_b": float(b),
        }

    result = entry(level, ca, cb, ci)
    result["levels"] = [entry(extra[j], xa[j], xb[j], ci_extra[j]) for j in range(extra.size)]
    result.update(
        paired=bool(paired),
        confidence=float(confidence),
        num_bootstrap=int(num_bootstrap),
        num_seeds_a=int(curves_a.shape[0]),
        num_seeds_b=int(curves_b.shape[0]),
    )
    return result


# ----------------------------------------------------------------------------- JSON and plots


def to_jsonable(obj: Any) -> Any:
    """``obj`` as JSON-serializable Python values.

    numpy and jax arrays become (nested) lists, numpy scalars Python numbers, NamedTuples and
    mappings dicts (keys as strings), tuples and lists lists, paths strings. Non-finite floats,
    which strict JSON cannot hold: NaN -> ``None``, +inf -> ``"inf"``, -inf -> ``"-inf"``
    (``float("inf")`` reads them back).
    """
    if isinstance(obj, jax.Array):
        obj = np.asarray(obj)
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        if math.isnan(obj):
            return None
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return {k: to_jsonable(v) for k, v in zip(obj._fields, obj, strict=True)}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, complex):
        raise TypeError(f"complex values are not JSON-serializable: {obj!r}")
    raise TypeError(f"cannot convert {type(obj).__name__} to JSON")


def can_plot() -> bool:
    """Whether matplotlib (the ``plot`` extra) can be imported, so the plotting functions work."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(nrows: int = 1, figsize=(6.4, 4.2)):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("plotting needs matplotlib: pip install 'recipes-jax[plot]'") from err
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, 1, sharex=True, squeeze=False)[:, 0]
    return fig, axes


def _log_cost_axis(ax, costs: np.ndarray) -> None:
    """A log x axis for ``costs``, labelled in plain numbers at 1, 2, 5 x 10^k (only at powers
    of ten past two decades): matplotlib's own labels of minor ticks (3x10^-1, 4x10^-1, ...)
    ran into each other on ranges under a decade or two."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    costs = costs[np.isfinite(costs) & (costs > 0)]
    decades = math.log10(costs.max() / costs.min()) if len(costs) else 0.0
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if decades <= 2 else (1.0,)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _paths(path) -> tuple[Path, Path]:
    png = Path(path)
    if png.suffix.lower() == ".json":
        raise ValueError(f"{png} is the plot's image path; its numbers go to a .json beside it")
    png.parent.mkdir(parents=True, exist_ok=True)
    return png, png.with_suffix(".json")


def _write_json(path: Path, data: Any) -> None:
    text = json.dumps(to_jsonable(data), indent=1, allow_nan=False) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()), prefix=".plot-")


def plot_regret(
    curves: Mapping[str, tuple[Any, Any]],
    path,
    *,
    title: str | None = None,
    log_y: bool = True,
) -> Path:
    """Median regret against cost, with a 25-75% band over seeds, one line per method.

    Args:
      curves: ``{name: (grid [G], regrets [S, G])}`` (e.g. from :func:`regret_at_costs`;
        [G] for a single seed); each method may have its own grid.
      path: the image file (PNG, or any format matplotlib infers from the suffix).
      title: optional figure title.
      log_y: log regret axis; regrets <= 0 are then not drawn (they are kept in the JSON).

    Cost (x) is on a log axis, in units of one full target run. Writes the plotted numbers to
    ``path`` with suffix ``.json`` (per method: cost, median, q25, q75, num_seeds; see
    :func:`to_jsonable` for inf/NaN). Returns ``path``.
    """
    if not curves:
        raise ValueError("curves is empty: give {method name: (grid [G], regrets [S, G])}")
    png, json_path = _paths(path)
    summary = {}
    for name, pair in curves.items():
        if len(pair) != 2:
            raise ValueError(f"curves[{name!r}] must be a pair (grid [G], regrets [S, G])")
        grid = _as_grid(pair[0])
        regrets = np.atleast_2d(np.asarray(pair[1], dtype=np.float64))
        if regrets.ndim != 2 or regrets.shape[1] != grid.shape[0]:
            raise ValueError(
                f"curves[{name!r}]: regrets must be [S, {grid.shape[0]}]; got {regrets.shape}"
            )
        q = quantile_curves(regrets, (0.25, 0.75))
        summary[name] = {
            "cost": grid,
            "median": q["median"],
            "q25": q["q25"],
            "q75": q["q75"],
            "num_seeds": regrets.shape[0],
        }
    # the numbers first: they are kept even if drawing fails
    _write_json(json_path, {"kind": "regret", "title": title, "log_y": log_y, "methods": summary})
    fig, (ax,) = _figure()

    def drawable(y):
        bad = ~np.isfinite(y) | ((y <= 0) if log_y else False)
        return np.where(bad, np.nan, y)

    costs = np.concatenate([s["cost"] for s in summary.values()])
    nothing = all(
        np.isnan(drawable(s[k])).all() for s in summary.values() for k in ("median", "q25", "q75")
    )
    if nothing:  # e.g. a budget below one target run (regret inf), or every regret exactly 0
        log_y = False
        ax.set_xlim(costs.min(), costs.max())  # no drawn point gives the axis its limits
        ax.text(
            0.5,
            0.5,
            "no finite regret > 0 to draw (see the JSON)",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )

    for name, s in summary.items():
        (line,) = ax.plot(s["cost"], drawable(s["median"]), label=f"{name} (S={s['num_seeds']})")
        ax.fill_between(
            s["cost"], drawable(s["q25"]), drawable(s["q75"]), color=line.get_color(), alpha=0.2
        )
    _log_cost_axis(ax, costs)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("cumulative cost (full target runs)")
    ax.set_ylabel("simple regret at target")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    fig.savefig(png, dpi=120)
    return png


def plot_fidelities(
    scale,
    steps,
    cost,
    path,
    space=None,
    *,
    active=None,
    title: str | None = None,
) -> Path:
    """The fidelities one campaign chose, ask by ask.

    Top: model scale of each ask (log axis), colored by training steps, marker size growing
    with steps; asks that were not run (``active`` False) as grey crosses. Bottom: cumulative
    cost after each ask.

    Args:
      scale: [T] model scale of each ask, millions of parameters (one seed: e.g.
        ``trace.proposals.scale[0]`` of a sweep).
      steps: [T] training steps of each ask.
      cost: [T] cumulative cost after each ask, in target runs.
      path: the image file; the numbers go to the same stem with ``.json``.
      space: optional :class:`recipes_jax.Space`, to draw its scales and mark the target.
      active: optional [T] bool mask of asks that were run.
      title: optional figure title.

    Returns ``path``.
    """
    scale = np.asarray(scale, dtype=np.float64)
    steps = np.asarray(steps, dtype=np.float64)
    cost = np.asarray(cost, dtype=np.float64)
    if scale.ndim != 1 or steps.shape != scale.shape or cost.shape != scale.shape:
        raise ValueError(
            "scale, steps and cost must be [T] for one campaign (take one seed of a sweep, "
            f"e.g. trace.proposals.scale[0]); got {scale.shape}, {steps.shape}, {cost.shape}"
        )
    active = np.ones(scale.shape, bool) if active is None else np.asarray(active, dtype=bool)
    if active.shape != scale.shape:
        raise ValueError(f"active must be [T] = {scale.shape}; got {active.shape}")
    png, json_path = _paths(path)
    ask = np.arange(scale.shape[0])
    fig, (ax_fid, ax_cost) = _figure(2, figsize=(6.4, 5.6))
    max_steps = max(float(np.nanmax(steps, initial=1.0)), 1.0)
    if space is not None:
        for m in space.scales:
            ax_fid.axhline(m, color="0.85", lw=0.8, zorder=0)
    on = active & np.isfinite(scale) & (scale > 0)
    points = ax_fid.scatter(
        ask[on],
        scale[on],
        c=steps[on],
        s=10 + 60 * np.sqrt(np.clip(steps[on], 0, None) / max_steps),
        cmap="viridis",
        vmin=0,
        vmax=max_steps,
        edgecolors="k",
        linewidths=0.3,
    )
    off = ~active & np.isfinite(scale) & (scale > 0)
    if off.any():
        ax_fid.scatter(ask[off], scale[off], marker="x", color="0.6", label="not run")
    fig.colorbar(points, ax=ax_fid, label="training steps")
    if space is not None:
        target = on & np.isclose(scale, space.target[0]) & np.isclose(steps, space.target[1])
        if target.any():
            ax_fid.scatter(
                ask[target], scale[target], marker="*", s=160, color="C3", label="target", zorder=3
            )
    if off.any() or (space is not None and target.any()):
        ax_fid.legend(loc="best", fontsize="small", framealpha=0.6)
    ax_fid.set_yscale("log")
    if space is not None:
        ax_fid.set_yticks(space.scales, labels=[f"{m:g}" for m in space.scales])
        ax_fid.minorticks_off()
    ax_fid.set_ylabel("model scale (M parameters)")
    ax_cost.step(ask, cost, where="post")
    ax_cost.set_xlabel("ask")
    ax_cost.set_ylabel("cumulative cost (target runs)")
    ax_cost.grid(True, alpha=0.3)
    if title:
        ax_fid.set_title(title)
    fig.savefig(png, dpi=120)
    data = {
        "kind": "fidelities",
        "title": title,
        "ask": ask,
        "scale": scale,
        "steps": steps,
        "cost": cost,
        "active": active,
    }
    if space is not None:
        data["space"] = {"scales": list(space.scales), "target": list(space.target)}
    _write_json(json_path, data)
    return png


def simplex_grid(resolution: int) -> np.ndarray:
    """Every 3-domain mixture with weights in multiples of ``1 / resolution``: float64
    ``[(resolution + 1) (resolution + 2) / 2, 3]``, for ternary maps."""
    if resolution < 1:
        raise ValueError(f"resolution must be >= 1; got {resolution}")
    i, j = np.meshgrid(np.arange(resolution + 1), np.arange(resolution + 1), indexing="ij")
    keep = i + j <= resolution
    a, b = i[keep], j[keep]
    return np.stack([a, b, resolution - a - b], axis=1) / resolution


def _ternary_xy(mixtures: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # corners: domain 0 bottom left, domain 1 bottom right, domain 2 top
    w = np.asarray(mixtures, np.float64)
    return w[:, 1] + 0.5 * w[:, 2], (np.sqrt(3) / 2) * w[:, 2]


def plot_ternary(
    ax,
    mixtures,
    values,
    *,
    labels: Sequence[str] = ("domain 0", "domain 1", "domain 2"),
    levels: int | Sequence[float] = 20,
    cmap: str = "viridis",
    points=None,
    star=None,
    colorbar: bool = True,
    title: str | None = None,
):
    """Draw ``values`` [C] at 3-domain ``mixtures`` [C, 3] as a filled ternary contour map
    on the matplotlib axes ``ax`` (e.g. over :func:`simplex_grid`).

    Args:
      labels: the three domain names (corners: 0 bottom left, 1 bottom right, 2 top).
      levels: number of contour levels, or their values (share them across panels).
      points: optional [P, 3] mixtures drawn as white dots (e.g. observed runs).
      star: optional [3] mixture drawn as a red star (e.g. the recommendation).
      colorbar: add a colorbar beside ``ax``.
    Returns the contour set. Non-finite values are left blank.
    """
    w = np.asarray(mixtures, np.float64)
    v = np.asarray(values, np.float64)
    if w.ndim != 2 or w.shape[1] != 3 or v.shape != (w.shape[0],):
        raise ValueError(f"need mixtures [C, 3] and values [C]; got {w.shape} and {v.shape}")
    x, y = _ternary_xy(w)
    ok = np.isfinite(v)
    if ok.sum() < 3:
        raise ValueError(
            f"plot_ternary needs at least 3 finite values to draw contours; {int(ok.sum())} of "
            f"{v.size} are finite (non-finite values are left blank)"
        )
    contours = ax.tricontourf(x[ok], y[ok], v[ok], levels=levels, cmap=cmap)
    h = np.sqrt(3) / 2
    ax.plot([0, 1, 0.5, 0], [0, 0, h, 0], color="black", linewidth=0.8)
    ax.text(0, -0.04, labels[0], ha="center", va="top", fontsize=8)
    ax.text(1, -0.04, labels[1], ha="center", va="top", fontsize=8)
    ax.text(0.5, h + 0.03, labels[2], ha="center", va="bottom", fontsize=8)
    if points is not None:
        px, py = _ternary_xy(np.atleast_2d(points))
        ax.scatter(px, py, s=10, color="white", edgecolors="black", linewidths=0.4, zorder=3)
    if star is not None:
        sx, sy = _ternary_xy(np.asarray(star)[None])
        ax.scatter(sx, sy, s=120, marker="*", color="red", edgecolors="black", zorder=4)
    ax.set_aspect("equal")
    ax.set_xlim(-0.08, 1.08)
    ax.set_ylim(-0.1, h + 0.1)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar:
        ax.figure.colorbar(contours, ax=ax, shrink=0.8)
    return contours
