"""Hyperband (Li et al. 2018) over training steps at the target scale, random mixtures.

Successive-halving brackets with ``eta = 3``, run as SMAC's multi-fidelity facade runs them:
every bracket draws fresh Dirichlet(1) mixtures, trains them all at the bracket's smallest
budget, promotes the best ``1 / eta`` to ``eta`` times the steps, and so on up to the target
steps; each run trains from scratch (cost = its own steps). Brackets cycle from the most
aggressive (many short runs) to plain random search at full steps, then repeat.

The whole schedule is fixed in advance (static shapes), so ``ask`` is a table lookup plus a
ranking of the previous rung. Promotions rank the runs told so far; runs still pending when
the next rung is asked count as the worst.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from recipes_jax import optimize
from recipes_jax.space import Space
from recipes_jax.strategies.base import (
    BestObserved,
    Proposal,
    Strategy,
    final_value,
    make_proposal,
    rounding_slack,
    sign_of,
)

__all__ = ["HyperbandState", "hyperband", "hyperband_schedule"]


class Schedule(NamedTuple):
    """One full Hyperband iteration, one row per run, in ask order (numpy, static).

    bracket, rung, position: [L] int; steps: [L] int; previous_count: [L] int, how many runs
    the previous rung of the bracket had (0 on rung 0); levels: the step budgets used.
    """

    bracket: np.ndarray
    rung: np.ndarray
    position: np.ndarray
    steps: np.ndarray
    previous_count: np.ndarray
    levels: np.ndarray


def hyperband_schedule(space: Space, *, eta: int = 3, min_steps: int | None = None) -> Schedule:
    """The run schedule of one Hyperband iteration over steps at the target scale.

    Step budgets are ``target_steps * eta^-k`` for k = s_max..0, snapped to the space's step
    grid, with ``s_max = floor(log_eta(target_steps / min_steps))``; ``min_steps`` defaults to
    ``target_steps / eta^4`` (5 budget levels).
    """
    if eta < 2:
        raise ValueError(f"eta must be an integer >= 2; got {eta}")
    max_steps = space.target[1]
    grid = np.asarray(space.steps)
    min_steps = max(grid[0], max_steps / eta**4) if min_steps is None else min_steps
    if not 0 < min_steps <= max_steps:
        raise ValueError(f"min_steps must be in (0, {max_steps}]; got {min_steps}")
    s_max = math.floor(math.log(max_steps / min_steps, eta) + 1e-9)
    wanted = max_steps * float(eta) ** -np.arange(s_max, -1, -1)
    levels = grid[np.argmin(np.abs(grid[None, :] - wanted[:, None]), axis=1)]
    rows = []
    for b, s in enumerate(range(s_max, -1, -1)):
        n = math.ceil((s_max + 1) / (s + 1) * eta**s)
        previous = 0
        for i in range(s + 1):
            n_i = math.floor(n * float(eta) ** -i)
            for j in range(n_i):
                rows.append((b, i, j, levels[s_max - s + i], previous))
            previous = n_i
    bracket, rung, position, steps, previous_count = (
        np.asarray(c) for c in zip(*rows, strict=True)
    )
    return Schedule(bracket, rung, position, steps, previous_count, levels)


class HyperbandState(NamedTuple):
    """num_asked: [] int32; configs: [P, K] mixtures drawn for the current bracket;
    rung_config: [R, P] int32, which config ran at each (rung, position); rung_value: [R, P]
    values told (minimization units; +inf until told or when non-finite); best: the best run
    at the highest fidelity reached."""

    num_asked: jax.Array
    configs: jax.Array
    rung_config: jax.Array
    rung_value: jax.Array
    best: BestObserved


def hyperband(space: Space, *, eta: int = 3, min_steps: int | None = None) -> Strategy:
    """Hyperband over training steps at the target scale (see the module docstring).

    Recommends the best run at the highest fidelity reached (the uniform mixture before any).
    """
    K = space.num_domains
    sign = sign_of(space)
    schedule = hyperband_schedule(space, eta=eta, min_steps=min_steps)
    length = len(schedule.steps)
    P = int(schedule.position.max()) + 1
    R = int(schedule.rung.max()) + 1
    rung_of = jnp.asarray(schedule.rung, jnp.int32)
    position_of = jnp.asarray(schedule.position, jnp.int32)
    steps_of = jnp.asarray(schedule.steps, jnp.int32)
    previous_of = jnp.asarray(schedule.previous_count, jnp.int32)
    target_scale = space.target[0]

    def init(key: jax.Array) -> HyperbandState:
        del key
        dtype = jnp.result_type(float)
        return HyperbandState(
            jnp.asarray(0, jnp.int32),
            jnp.full((P, K), 1.0 / K, dtype),
            jnp.zeros((R, P), jnp.int32),
            jnp.full((R, P), jnp.inf, dtype),
            BestObserved.empty(K, dtype),
        )

    def ask(state: HyperbandState, key: jax.Array) -> tuple[Proposal, HyperbandState]:
        dtype = state.configs.dtype
        t = state.num_asked % length
        rung, position = rung_of[t], position_of[t]
        fresh = optimize.uniform_simplex(key, (), K, dtype)
        new_bracket = (rung == 0) & (position == 0)
        rung_value = jnp.where(new_bracket, jnp.inf, state.rung_value)
        # rank the previous rung (only its first previous_count slots ran); stable ties
        previous = rung_value[jnp.maximum(rung - 1, 0)]
        previous = jnp.where(jnp.arange(P) < previous_of[t], previous, jnp.inf)
        promoted = state.rung_config[jnp.maximum(rung - 1, 0), jnp.argsort(previous)[position]]
        config = jnp.where(rung == 0, position, promoted)
        configs = jnp.where(rung == 0, state.configs.at[position].set(fresh), state.configs)
        proposal = make_proposal(space, configs[config], target_scale, steps_of[t], state.num_asked)
        state = HyperbandState(
            state.num_asked + 1,
            configs,
            state.rung_config.at[rung, position].set(config),
            rung_value,
            state.best,
        )
        return proposal, state

    def tell(state: HyperbandState, proposal: Proposal, value) -> HyperbandState:
        y = sign * final_value(proposal, value)
        t = proposal.index % length
        stored = jnp.where(jnp.isfinite(y), y, jnp.inf).astype(state.rung_value.dtype)
        return state._replace(
            rung_value=state.rung_value.at[rung_of[t], position_of[t]].set(stored),
            best=state.best.update(space, proposal, y),
        )

    def recommend(state: HyperbandState) -> jax.Array:
        return state.best.mixture

    costs = np.asarray(space.cost(target_scale, schedule.steps), np.float64)

    def default_num_asks(budget: float) -> int:
        # whole bracket cycles first (tiling them all took 66 GB at a budget of 1e9), then the
        # runs of the last cycles that the rest of the budget pays for, plus the one that ends it
        cycle = float(costs.sum())
        before = max(math.floor(budget / cycle) - 1, 0)
        spent = np.cumsum(np.tile(costs, 3))
        rest = budget - before * cycle
        fits = int(np.searchsorted(spent, rest + rounding_slack(budget), side="right"))
        return before * len(costs) + fits + 1

    return Strategy(
        init, ask, tell, recommend, space, "hyperband", default_num_asks=default_num_asks
    )
