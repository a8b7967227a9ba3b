"""Suggest the next runs of a real campaign from its ledger.

:func:`suggest` folds every ledger run into a fresh mfms_bo state (finished runs are told,
with their learning curves; failed and diverged ones count as asked but teach the GP nothing;
pending ones are held at a believed value), then asks ``num`` times: each proposal is held
pending before the next ask, so a batch spreads out (kriging believer). Returns new pending
:class:`~recipes_jax.ledger.LedgerRun` rows; ``recipes-jax suggest`` appends them to the
ledger.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from recipes_jax.ledger import LedgerRun, next_ids
from recipes_jax.space import Space
from recipes_jax.strategies import LearningCurve, Strategy, mfms_bo
from recipes_jax.strategies.base import make_proposal

__all__ = ["next_ids", "replay", "suggest"]


def _report(strategy: Strategy, run: LedgerRun, dtype):
    """What the run tells the strategy: its learning curve at the checkpoints (NaN where the
    ledger has no point) plus its final value, or the final value alone."""
    if not strategy.checkpoints:
        return jnp.asarray(run.value if run.informs_model else math.nan, dtype)
    steps = [*strategy.checkpoints, run.steps]
    curve = dict(run.curve) if run.informs_model else {}
    values = [curve.get(s, math.nan) for s in strategy.checkpoints]
    values.append(run.value if run.informs_model else math.nan)
    return LearningCurve(jnp.asarray(steps, jnp.int32), jnp.asarray(values, dtype))


def replay(strategy: Strategy, runs: Sequence[LedgerRun], key: jax.Array):
    """A state of ``strategy`` that has seen ``runs`` in order (see the module docstring)."""
    if strategy.observe is None or strategy.hold is None:
        raise ValueError(f"{strategy.name} cannot take runs it did not ask; use mfms_bo")
    observe, hold = jax.jit(strategy.observe), jax.jit(strategy.hold)
    state = strategy.init(key)
    dtype = jnp.result_type(float)
    for run in runs:
        proposal = make_proposal(
            strategy.space, jnp.asarray(run.mixture, dtype), run.scale, run.steps, 0
        )
        if run.status == "pending":
            state = hold(state, proposal)
        else:
            state = observe(state, proposal, _report(strategy, run, dtype))
    return state


def _sized_to_fit(space: Space, runs: Sequence[LedgerRun], num: int, options) -> Strategy:
    """mfms_bo with ``options``, its buffers grown where the ledger needs more room: every
    observation of every finished run (a fixed-capacity buffer would evict the cheapest ones),
    and every pending run plus the ``num`` new ones (each held so that a batch spreads out)."""
    strategy = mfms_bo(space, **options)
    dtype = jnp.result_type(float)
    reports = [_report(strategy, r, dtype) for r in runs if r.status != "pending"]
    rows = sum(int(np.isfinite(np.asarray(getattr(v, "values", v))).sum()) for v in reports)
    pending = sum(r.status == "pending" for r in runs) + num
    shapes = jax.eval_shape(strategy.init, jax.random.key(0))
    capacity, max_pending = shapes.obs.x.shape[0], shapes.pending.active.shape[0]
    if rows <= capacity and pending <= max_pending:
        return strategy
    grown = dict(
        options,
        capacity=max(capacity, -(-rows // 64) * 64),
        max_pending=max(max_pending, pending),
    )
    return mfms_bo(space, **grown)


def suggest(
    space: Space,
    runs: Sequence[LedgerRun],
    num: int,
    key: jax.Array,
    **options,
) -> list[LedgerRun]:
    """The next ``num`` runs to train, as pending ledger rows.

    Args:
      space: the campaign's space (``space_file.load_space``).
      runs: the ledger so far (``ledger.read_ledger``), in order.
      num: how many runs to propose (they are meant to train in parallel).
      key: PRNG key.
      options: ``rj.mfms_bo`` options (e.g. the speedup benchmark's presets).
    Each row's ``score`` is the acquisition value that chose it (log of target-projected EI
    minus alpha x log cost; NaN for initial-design runs) and ``cost`` its cost in target runs.
    The model's buffers are grown to hold every ledger run (``capacity`` and ``max_pending``
    in ``options`` are minimums), so nothing the ledger holds is left out.
    Float64 is recommended: call it under ``jax.enable_x64(True)``.
    """
    if num < 1:
        raise ValueError(f"ask for at least one run; got {num}")
    strategy = _sized_to_fit(space, runs, num, options)
    k_replay, k_ask = jax.random.split(key)
    state = replay(strategy, runs, k_replay)
    ask = jax.jit(strategy.ask)
    out = []
    for run_id, k in zip(
        next_ids([r.id for r in runs], num), jax.random.split(k_ask, num), strict=True
    ):
        proposal, state = ask(state, k)
        mixture = np.asarray(proposal.mixture, np.float64)
        out.append(
            LedgerRun(
                id=run_id,
                status="pending",
                mixture=tuple(float(w) for w in mixture / mixture.sum()),
                scale=float(proposal.scale),
                steps=int(proposal.steps),
                cost=float(proposal.cost),
                score=float(proposal.score),
            )
        )
    return out
