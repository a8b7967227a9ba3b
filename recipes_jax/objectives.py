"""Your training code as the objective: ``train_and_eval(mixture, scale, steps, key)``.

Wrap a function that trains a model and returns its metric (or its learning curve) with
:func:`objective`; the result plugs straight into a campaign:

    def train_and_eval(mixture, scale, steps, key):   # mixture np [K], scale float, steps int
        ...                                             # your JAX / flax / optax training
        return {1000: 3.1, 2000: 2.8, steps: 2.7}       # or just the final metric

    obj = rj.objective(train_and_eval)
    trace = rj.run_loop(strategy, obj, budget=8.0, key=key, batch_size=4)   # ask/tell loop
    trace = rj.run_campaign(strategy, obj, budget=8.0, key=key)            # inside lax.scan

:func:`run_loop` drives ``ask`` / ``tell`` from Python: it asks ``batch_size`` proposals
(held pending, so they spread out), trains them, and tells each its result. With
``batched=True`` the function receives every proposal of one (scale, steps) group at once,
``train_and_eval(mixtures [q, K], scale, steps, keys [q])``, so q models can train in one
vmapped program. :func:`run_campaign` calls the function on the host from inside its
``lax.scan`` (``jax.pure_callback``), one run per ask. Both return the same
:class:`~recipes_jax.campaign.Trace` as simulated campaigns, so every analysis tool applies.

What the function may return, for a run of ``steps`` steps: a number (the metric at
``steps``); a ``{step: value}`` mapping or a :class:`~recipes_jax.LearningCurve` (must include
``steps``; other entries at the strategy's checkpoints become curve points); or a vector of
``len(checkpoints) + 1`` values: the metric at each checkpoint (NaN where not reached), then
at ``steps``. A batched function returns a vector [q] of final values or an array
[q, len(checkpoints) + 1]. NaN or inf (a diverged run) is recorded and never learned from.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from recipes_jax import host_errors
from recipes_jax.campaign import Progress, Trace
from recipes_jax.strategies.base import LearningCurve, Proposal, Strategy

__all__ = ["Objective", "host_evaluate", "objective", "report", "run_loop"]


class Objective(NamedTuple):
    """A host-side training function, usable as a campaign environment.

    train_and_eval: ``(mixture [K], scale, steps, key) -> result`` (see the module docstring),
      or with ``batched`` ``(mixtures [q, K], scale, steps, keys [q]) -> results``.
    batched: whether it takes a group of runs sharing (scale, steps) at once.
    """

    train_and_eval: Callable[..., Any]
    batched: bool = False


def objective(train_and_eval: Callable[..., Any], *, batched: bool = False) -> Objective:
    """Wrap a training function (see the module docstring) as an :class:`Objective`."""
    if not callable(train_and_eval):
        raise ValueError(f"train_and_eval must be callable; got {type(train_and_eval).__name__}")
    return Objective(train_and_eval, batched)


def report(result, steps: int, checkpoints: Sequence[int]) -> tuple[float, np.ndarray]:
    """Normalize one run's result to (metric at ``steps``, curve [C] at ``checkpoints``).

    ``result``: a number, a ``{step: value}`` mapping, a :class:`LearningCurve`, or a vector
    of ``len(checkpoints) + 1`` values (checkpoints, then final). Curve points at checkpoints
    the run did not reach (>= ``steps``) are NaN. Raises ``ValueError`` naming the problem.
    """
    checkpoints = [int(c) for c in checkpoints]
    steps = int(steps)
    if result is None:
        raise ValueError(
            "train_and_eval returned None (a missing `return`?); return the metric at the "
            "run's steps: a number, a {step: value} dict or a LearningCurve (a run that blew "
            "up: return float('nan'))"
        )
    if isinstance(result, LearningCurve):
        result = dict(
            zip(
                np.asarray(result.steps).astype(int).tolist(),
                np.asarray(result.values, np.float64).tolist(),
                strict=True,
            )
        )
    if isinstance(result, Mapping):
        points = {int(s): _point(v, int(s)) for s, v in result.items()}
        if steps not in points:
            raise ValueError(
                f"the learning curve has no value at the run's {steps} steps (it has steps "
                f"{sorted(points)[:8]}); include the final metric under key {steps}"
            )
        final = points[steps]
        curve = [points.get(c, np.nan) if c < steps else np.nan for c in checkpoints]
        return final, np.asarray(curve, np.float64)
    values = np.asarray(result, np.float64)
    if values.ndim == 0:
        return float(values), np.full(len(checkpoints), np.nan)
    if values.shape != (len(checkpoints) + 1,):
        raise ValueError(
            f"train_and_eval returned an array of shape {values.shape}; return a number, a "
            f"{{step: value}} dict, or {len(checkpoints) + 1} values (the checkpoints "
            f"{checkpoints}, then the final metric)"
        )
    reached = np.asarray(checkpoints) < steps
    return float(values[-1]), np.where(reached, values[:-1], np.nan)


def _point(value, step: int) -> float:
    """One value of a ``{step: value}`` learning curve as a float (a size-1 array is one)."""
    array = np.asarray(np.nan if value is None else value, dtype=object)
    if value is None or array.size != 1:
        raise ValueError(
            f"the learning curve's value at step {step} is {value!r}; give one number per step"
        )
    try:
        return float(array.reshape(()).item())
    except (TypeError, ValueError):
        raise ValueError(
            f"the learning curve's value at step {step} is {value!r}, not a number"
        ) from None


def _batch_results(results, q: int, num_checkpoints: int) -> list:
    """Split a batched function's output into q per-run results."""
    shape_hint = (
        f"a batched train_and_eval for {q} runs must return [{q}] final values or "
        f"[{q}, {num_checkpoints + 1}] (checkpoints, then final), or a list of {q} results"
    )
    if results is None:
        raise ValueError(f"{shape_hint}; it returned None (a missing `return`?)")
    if isinstance(results, Sequence) and not isinstance(results, str | bytes):
        results = list(results)
        structured = any(isinstance(r, Mapping | LearningCurve) for r in results)
        if structured and len(results) != q:
            raise ValueError(f"{shape_hint}; it returned {len(results)}")
        if any(r is None for r in results):
            raise ValueError(f"{shape_hint}; run {[r is None for r in results].index(True)} of "
                             "its results is None (a missing `return`?)")  # fmt: skip
        if len(results) == q and (structured or not all(np.ndim(r) == 0 for r in results)):
            return results
    values = np.asarray(results, np.float64)
    if values.shape == (q,):
        return list(values)
    if values.shape == (q, num_checkpoints + 1):
        return list(values)
    raise ValueError(f"{shape_hint}; got shape {values.shape}")


def _call(obj: Objective, mixtures: np.ndarray, scale: float, steps: int, keys, checkpoints):
    """Run a group of proposals sharing (scale, steps): [(final, curve [C])] per run."""
    if obj.batched:
        out = obj.train_and_eval(mixtures, scale, steps, keys)
        results = _batch_results(out, len(mixtures), len(checkpoints))
    else:
        results = [
            obj.train_and_eval(w, scale, steps, k) for w, k in zip(mixtures, keys, strict=True)
        ]
    return [report(r, steps, checkpoints) for r in results]


def _train_groups(obj: Objective, w, m, s, keys, checkpoints) -> tuple[np.ndarray, np.ndarray]:
    """Train runs w [n, K], m [n], s [n] (keys [n]), one ``obj`` call per (scale, steps)
    group: (finals [n], curves [n, C])."""
    finals = np.empty(len(m))
    curves = np.empty((len(m), len(checkpoints)))
    for scale, steps in sorted({(float(a), int(b)) for a, b in zip(m, s, strict=True)}):
        rows = np.flatnonzero((m == scale) & (s == steps))
        try:
            done = _call(obj, w[rows], scale, steps, keys[rows], checkpoints)
        except BaseException as error:  # KeyboardInterrupt too: it is raised as itself
            runs = "a run" if len(rows) == 1 else f"{len(rows)} runs"
            mixtures = np.array2string(w[rows[0]], precision=3, separator=", ")
            error.add_note(
                f"raised by training {runs} of scale {scale:g}M to {steps} steps "
                f"(mixture {mixtures}{' first' if len(rows) > 1 else ''})"
            )
            raise
        for r, (final, curve) in zip(rows, done, strict=True):
            finals[r], curves[r] = final, curve
    return finals, curves


def host_evaluate(obj: Objective, checkpoints: Sequence[int], dtype) -> Callable:
    """A jittable ``(proposal, key, train) -> (final [], curve [C])`` that runs ``obj`` on the
    host (``jax.pure_callback``; under ``vmap`` a batched objective gets the whole batch). A
    run whose ``train`` is False (past the budget) is not trained: NaN."""
    checkpoints = tuple(int(c) for c in checkpoints)
    C = len(checkpoints)

    def on_host(w, m, s, key_data, train, impl):
        w, m, s = np.asarray(w, np.float64), np.asarray(m), np.asarray(s)
        batch_shape = m.shape
        w, m, s = w.reshape(-1, w.shape[-1]), m.reshape(-1), s.reshape(-1)
        train = np.broadcast_to(np.asarray(train, bool), batch_shape).reshape(-1)
        key_data = np.asarray(key_data)
        keys = jax.random.wrap_key_data(
            key_data.reshape(m.shape[0], *key_data.shape[len(batch_shape) :]), impl=impl
        )
        finals, curves = np.full(m.shape[0], np.nan), np.full((m.shape[0], C), np.nan)
        rows = np.flatnonzero(train)
        # on XLA's callback thread the caller's `jax.enable_x64` scope does not hold: restore it
        with jax.enable_x64(wide):
            try:
                if rows.size:
                    finals[rows], curves[rows] = _train_groups(
                        obj, w[rows], m[rows], s[rows], keys[rows], checkpoints
                    )
            except BaseException as error:
                # the campaign raises it in place of JAX's error
                host_errors.record(obj.train_and_eval, error)
                raise
        return _wire(finals.reshape(batch_shape)), _wire(curves.reshape(*batch_shape, C))

    # The callback runs on an XLA thread where a `jax.enable_x64` scope does not apply, and
    # JAX canonicalizes its outputs there (float64 -> float32): float64 values travel as
    # their bits (uint32 pairs) and are reassembled in the program.
    wide = np.dtype(dtype) == np.float64

    def _wire(x):
        return (
            np.ascontiguousarray(x, np.float64).view(np.uint32).reshape(*x.shape, 2)
            if wide
            else x.astype(np.float32)
        )

    def _unwire(x):
        return jax.lax.bitcast_convert_type(x, jnp.float64) if wide else x.astype(dtype)

    def evaluate(proposal: Proposal, key, train=True):
        wire = jnp.uint32 if wide else jnp.float32
        tail = (2,) if wide else ()
        shapes = (
            jax.ShapeDtypeStruct(tail, wire),
            jax.ShapeDtypeStruct((C, *tail), wire),
        )
        final, curve = jax.pure_callback(
            # the key's own implementation (threefry, rbg, ...): its data alone cannot say
            functools.partial(on_host, impl=jax.random.key_impl(key)),
            shapes,
            proposal.mixture,
            proposal.scale,
            proposal.steps,
            jax.random.key_data(key),
            jnp.asarray(train, bool),
            vmap_method="broadcast_all" if obj.batched else "sequential",
        )
        return _unwire(final), _unwire(curve)

    return evaluate


def run_loop(
    strategy: Strategy,
    obj: Objective,
    budget: float,
    key: jax.Array,
    *,
    batch_size: int = 1,
    num_asks: int | None = None,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
) -> Trace:
    """Run a campaign from Python: ask ``batch_size`` runs, train them, tell, repeat.

    The runs of a round are asked one after another before any is told (pending runs are
    held at believed values, so a batch spreads out), grouped by (scale, steps) and handed to
    ``obj`` (a batched objective trains each group at once). Spending follows
    :func:`~recipes_jax.run_campaign`: the first proposal that would take the total past
    ``budget`` ends the campaign; it and the rest of its round are never run (inactive rows).
    At most ``num_asks`` asks (default ``strategy.default_num_asks(budget)``).

    Args:
      progress: optional ``progress(done, total)`` after every round (asks so far).
      log: optional ``log(line)`` describing every run as it is told.
    Returns a :class:`~recipes_jax.campaign.Trace` of numpy arrays, one row per ask.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    if not np.isfinite(budget) or budget <= 0:
        raise ValueError(f"budget must be a positive number of target-run costs; got {budget}")
    total = strategy.default_num_asks(float(budget)) if num_asks is None else int(num_asks)
    checkpoints = tuple(strategy.checkpoints)
    ask, tell = jax.jit(strategy.ask), jax.jit(strategy.tell)
    if not jax.dtypes.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        key = jax.random.wrap_key_data(key)  # a legacy PRNGKey: hand typed keys [q] on, as
        # run_campaign does
    k_init, k_run = jax.random.split(key)
    state = strategy.init(k_init)
    dtype = jnp.result_type(float)
    rows: list[dict] = []
    spent, stopped, t = 0.0, False, 0
    start = time.perf_counter()
    while t < total and not stopped:
        asked = []
        for _ in range(min(batch_size, total - t)):
            k_ask, k_train = jax.random.split(jax.random.fold_in(k_run, t))
            proposal, state = ask(state, k_ask)
            cost = float(proposal.cost)
            fits = not stopped and spent + cost <= budget * (1 + 1e-6)
            stopped = stopped or not fits
            if fits:
                spent += cost
            asked.append((proposal, k_train, fits, spent))
            t += 1
        runs = [i for i, a in enumerate(asked) if a[2]]
        results: dict[int, tuple[float, np.ndarray]] = {}
        if runs:
            finals, curves = _train_groups(
                obj,
                np.stack([np.asarray(asked[i][0].mixture, np.float64) for i in runs]),
                np.asarray([float(asked[i][0].scale) for i in runs]),
                np.asarray([int(asked[i][0].steps) for i in runs]),
                jnp.stack([asked[i][1] for i in runs]),
                checkpoints,
            )
            results = {i: (finals[j], curves[j]) for j, i in enumerate(runs)}
        for i, (proposal, _, active, cost_so_far) in enumerate(asked):
            final, curve = results.get(i, (np.nan, np.full(len(checkpoints), np.nan)))
            if active:
                if checkpoints:
                    steps = jnp.asarray([*checkpoints, int(proposal.steps)], jnp.int32)
                    value = LearningCurve(steps, jnp.asarray([*curve, final], dtype))
                else:
                    value = jnp.asarray(final, dtype)
                state = tell(state, proposal, value)
                if log is not None:
                    log(
                        f"ask {len(rows):3d}: {float(proposal.scale):g}M x {int(proposal.steps)} "
                        f"steps, cost {float(proposal.cost):.4f}, spent {cost_so_far:.3f}: "
                        f"{final:.4f}  ({time.perf_counter() - start:.0f} s)"
                    )
            rows.append(
                dict(
                    cost=cost_so_far,
                    recommendation=np.asarray(strategy.recommend(state)),
                    proposals=jax.tree_util.tree_map(np.asarray, proposal),
                    values=final if active else np.nan,
                    curves=curve if active else np.full(len(checkpoints), np.nan),
                    active=active,
                )
            )
        if progress is not None:
            progress(t, total)
    stack = lambda *xs: np.stack(xs)
    return Trace(
        cost=np.asarray([r["cost"] for r in rows], np.float64),
        recommendation=np.stack([r["recommendation"] for r in rows]),
        proposals=jax.tree_util.tree_map(stack, *[r["proposals"] for r in rows]),
        values=np.asarray([r["values"] for r in rows], np.float64),
        curves=np.stack([r["curves"] for r in rows]).reshape(len(rows), len(checkpoints)),
        active=np.asarray([r["active"] for r in rows], bool),
    )
