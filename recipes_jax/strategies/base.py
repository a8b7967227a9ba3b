"""The strategy interface shared by MFMS-BO and the baselines.

A :class:`Strategy` is a small bundle of pure functions over an explicit state pytree, like an
optax ``GradientTransformation``::

    state = strategy.init(key)
    proposal, state = strategy.ask(state, key)      # Proposal(mixture, scale, steps, ...)
    state = strategy.tell(state, proposal, value)   # a scalar, or a LearningCurve
    w_best = strategy.recommend(state)              # [K] mixture for the target fidelity

All four are jittable and vmappable; states are NamedTuples of arrays (no PRNG keys inside:
keys are threaded explicitly), so they checkpoint with :func:`save_state` / :func:`load_state`.
Values are in the metric's own units; strategies minimize internally (they negate metrics the
space says to maximize).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from recipes_jax.atomic import atomic_write
from recipes_jax.space import Space

__all__ = [
    "BestObserved",
    "LearningCurve",
    "Proposal",
    "Strategy",
    "load_state",
    "save_state",
]


class Proposal(NamedTuple):
    """A run to train next.

    mixture: [K] weights on the simplex; scale: [] model size, millions of parameters (float);
    steps: [] training steps (int32); cost: [] its cost in units of one full target run;
    index: [] int32, the ask counter that identifies this run when it is told back;
    score: [] the acquisition value that chose it (NaN where a strategy has none).
    """

    mixture: jax.Array
    scale: jax.Array
    steps: jax.Array
    cost: jax.Array
    index: jax.Array
    score: jax.Array


class LearningCurve(NamedTuple):
    """What one run reports when it is evaluated at checkpoints: ``steps`` [C] (int) and
    ``values`` [C] (metric units; NaN where the run never reached that checkpoint)."""

    steps: jax.Array
    values: jax.Array


class Strategy(NamedTuple):
    """An optimizer of data mixtures: pure ``init``, ``ask``, ``tell``, ``recommend``.

    Attributes:
      init: ``key -> state``.
      ask: ``(state, key) -> (Proposal, state)``; may be called several times before ``tell``
        (the proposals are pending until told).
      tell: ``(state, proposal, value) -> state``; ``value`` is the metric [] at
        ``proposal.steps`` or a :class:`LearningCurve` of the run.
      recommend: ``state -> mixture [K]``, the mixture believed best at the target fidelity.
      space: the :class:`~recipes_jax.space.Space` searched.
      name: short name used in tables and plots.
      checkpoints: step counts at which a run's learning curve is read back (ascending;
        empty when the strategy uses only final values). A campaign reports the curve at
        ``checkpoints`` below a run's steps plus its final value.
      default_num_asks: ``budget -> int``, how many asks a campaign with this budget needs.
      observe: ``(state, proposal, value) -> state`` folds in a finished run that was not
        asked through this state (e.g. from a ledger); it counts as asked. None where a
        strategy cannot (random search, Hyperband).
      hold: ``(state, proposal) -> state`` folds in such a run that is still pending.
      landscape: ``(state, mixtures [C, K]) -> Landscape``: the model's mean and standard
        deviation at the target and the acquisition per fidelity over those mixtures (GP
        strategies; None elsewhere). For plots and for checking a proposal by eye.
    """

    init: Callable[[jax.Array], Any]
    ask: Callable[[Any, jax.Array], tuple[Proposal, Any]]
    tell: Callable[[Any, Proposal, Any], Any]
    recommend: Callable[[Any], jax.Array]
    space: Space
    name: str
    checkpoints: tuple[int, ...] = ()
    default_num_asks: Callable[[float], int] = lambda budget: 100
    observe: Callable[[Any, Proposal, Any], Any] | None = None
    hold: Callable[[Any, Proposal], Any] | None = None
    landscape: Callable[[Any, jax.Array], Any] | None = None


def make_proposal(space: Space, mixture, scale, steps, index, score=jnp.nan) -> Proposal:
    """A :class:`Proposal` with its cost filled in from the space's cost model."""
    mixture = jnp.asarray(mixture)
    dtype = mixture.dtype
    scale = jnp.asarray(scale, dtype)
    steps = jnp.asarray(steps, jnp.int32)
    return Proposal(
        mixture=mixture,
        scale=scale,
        steps=steps,
        cost=space.cost(scale, steps).astype(dtype),
        index=jnp.asarray(index, jnp.int32),
        score=jnp.asarray(score, dtype),
    )


def curve_points(proposal: Proposal, value) -> tuple[jax.Array, jax.Array]:
    """Observations a told value stands for: ``(steps [C], values [C])``.

    A scalar is one observation at ``proposal.steps``; a :class:`LearningCurve` gives every
    checkpoint at or below ``proposal.steps`` (later ones, and non-finite values, come back
    as NaN, which the GP buffer skips). A run that diverged (its curve has no finite value at
    ``proposal.steps``, only NaN or infinite ones) teaches nothing: its finite earlier points
    come back as NaN too, as a diverged run's do in a ledger.
    """
    if isinstance(value, LearningCurve):
        steps = jnp.asarray(value.steps, jnp.int32)
        values = jnp.asarray(value.values)
        at_end = steps == proposal.steps  # the final value, and a checkpoint there may be
        diverged = jnp.any(at_end) & ~jnp.any(at_end & jnp.isfinite(values))
        return steps, jnp.where((steps <= proposal.steps) & ~diverged, values, jnp.nan)
    value = _scalar(value)
    return proposal.steps[None], value[None]


def _scalar(value) -> jax.Array:
    """``value`` as a 0-d array, or a ``ValueError`` saying what ``tell`` takes."""
    value = jnp.asarray(value)
    if value.ndim != 0:
        raise ValueError(
            f"tell takes one value per run (a scalar) or a LearningCurve(steps, values); got an "
            f"array of shape {value.shape}. Wrap a curve as LearningCurve(steps, values)"
        )
    return value


def final_value(proposal: Proposal, value) -> jax.Array:
    """The metric at ``proposal.steps`` from a scalar or a :class:`LearningCurve` (NaN if the
    curve has no finite value at exactly that many steps)."""
    if isinstance(value, LearningCurve):
        hit = jnp.asarray(value.steps, jnp.int32) == proposal.steps
        values = jnp.asarray(value.values)
        return jnp.where(jnp.any(hit), values[jnp.argmax(hit)], jnp.nan)
    return _scalar(value)


class BestObserved(NamedTuple):
    """The best observation at the highest fidelity reached so far (random search, Hyperband):
    mixture [K], value [] (minimization units; +inf before any), scale [] and steps []."""

    mixture: jax.Array
    value: jax.Array
    scale: jax.Array
    steps: jax.Array

    @staticmethod
    def empty(num_domains: int, dtype) -> BestObserved:
        """The state before any observation: uniform mixture, value +inf, scale 0, steps 0."""
        return BestObserved(
            jnp.full((num_domains,), 1.0 / num_domains, dtype),
            jnp.asarray(jnp.inf, dtype),
            jnp.asarray(0.0, dtype),
            jnp.asarray(0, jnp.int32),
        )

    def update(self, space: Space, proposal: Proposal, value) -> BestObserved:
        """Keep the proposal if it reached a higher fidelity (more compute), or the same
        fidelity with a better (lower) value; non-finite values never replace anything."""
        value = jnp.asarray(value, self.value.dtype)
        compute = space.cost(proposal.scale, proposal.steps)
        best_compute = space.cost(self.scale, self.steps)
        same = jnp.isclose(compute, best_compute, rtol=1e-6)
        better = jnp.isfinite(value) & (
            ((compute > best_compute) & ~same) | (same & (value < self.value)) | (self.steps == 0)
        )
        pick = lambda new, old: jnp.where(better, new, old)
        return BestObserved(
            pick(proposal.mixture.astype(self.mixture.dtype), self.mixture),
            pick(value, self.value),
            pick(proposal.scale.astype(self.scale.dtype), self.scale),
            pick(proposal.steps, self.steps),
        )


def target_runs(space: Space) -> Callable[[float], int]:
    """``budget -> int``: how many full target runs a budget pays for (at least 1); the
    ``default_num_asks`` of strategies that only train at the target."""
    # on the host in float64, where it is 1 up to rounding; float32 made it 1.0000001 on some
    # spaces, and a budget of 50 then paid for 49 runs
    target_cost = float(space.host_cost(*space.target))
    return lambda budget: max(1, whole_fits(budget / target_cost))


def whole_fits(x: float) -> int:
    """floor(x), but x within rounding below a whole number counts as that number (a budget of
    50 over a target cost that rounds up to 1.0000000000000002 pays for 50 runs, not 49). The
    slack, 1e-9 relative and at most 1e-6, never reaches a whole run (a relative slack alone
    gave 1,000,000,001 runs for a budget of 1e9)."""
    return math.floor(x + rounding_slack(x) + 1e-12)


def rounding_slack(x: float) -> float:
    """How far below a whole number of runs (or a budget) ``x`` may fall by rounding alone:
    1e-9 relative, at most 1e-6, so it never reaches a whole run at any budget."""
    return min(1e-9 * abs(x), 1e-6)


def sign_of(space: Space) -> float:
    """+1 to minimize the metric, -1 when the space says to maximize it."""
    return -1.0 if space.maximize else 1.0


# -- checkpoints


def save_state(path: str | os.PathLike, state) -> None:
    """Save a strategy state (any pytree of arrays) to ``path`` as npz, without pickle.

    The write is atomic: a temporary file in the same directory renamed over ``path``, so a
    crash leaves either the old file or the new one. Load with :func:`load_state`.
    """
    leaves = jax.tree_util.tree_leaves(state)
    arrays = {}
    for i, leaf in enumerate(leaves):
        if jax.dtypes.issubdtype(getattr(leaf, "dtype", None), jax.dtypes.prng_key):
            raise TypeError("states hold no PRNG keys; save jax.random.key_data(key) instead")
        arrays[f"leaf_{i:05d}"] = np.asarray(leaf)
    atomic_write(
        path,
        lambda f: np.savez(f, num_leaves=np.asarray(len(leaves)), **arrays),
        prefix=".state-",
    )


def load_state(path: str | os.PathLike, like):
    """Load a state saved by :func:`save_state`; ``like`` is a state of the same strategy (e.g.
    ``strategy.init(key)``, or ``jax.eval_shape(strategy.init, key)``, which computes nothing)
    that gives the structure, shapes and dtypes."""
    leaves, treedef = jax.tree_util.tree_flatten(like)
    with np.load(os.fspath(path), allow_pickle=False) as data:
        count = int(data["num_leaves"])
        if count != len(leaves):
            raise ValueError(
                f"{path} holds {count} arrays but this strategy's state has {len(leaves)}; "
                "load it with a state of the strategy (and configuration) that saved it"
            )
        loaded = []
        for i, ref in enumerate(leaves):
            array = data[f"leaf_{i:05d}"]
            if not isinstance(ref, jax.ShapeDtypeStruct):
                ref = np.asarray(ref)
            if array.shape != ref.shape or array.dtype != ref.dtype:
                raise ValueError(
                    f"{path}: array {i} has shape {array.shape} {array.dtype}, the state expects "
                    f"{ref.shape} {ref.dtype}; was it saved by a differently configured "
                    "strategy, or with float64 enabled differently?"
                )
            loaded.append(jnp.asarray(array))
    return jax.tree_util.tree_unflatten(treedef, loaded)
