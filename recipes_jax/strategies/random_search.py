"""Random search: full target-fidelity runs at Dirichlet(1) mixtures."""

from __future__ import annotations

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
    sign_of,
    target_runs,
)

__all__ = ["RandomSearchState", "random_search"]


class RandomSearchState(NamedTuple):
    """num_asked: [] int32; best: the best target run told so far (minimization units)."""

    num_asked: jax.Array
    best: BestObserved


def random_search(space: Space, *, concentration: float = 1.0) -> Strategy:
    """Full runs at the target fidelity, mixtures drawn from Dirichlet(``concentration``).

    Recommends the mixture of the best run told so far (the uniform mixture before any).
    """
    if not (np.isfinite(concentration) and concentration > 0):
        raise ValueError(
            f"concentration must be a positive number (1: uniform on the simplex, below 1: "
            f"sparser mixtures); got {concentration!r}"
        )
    K = space.num_domains
    sign = sign_of(space)
    target_scale, target_steps = space.target

    def init(key: jax.Array) -> RandomSearchState:
        del key
        dtype = jnp.result_type(float)
        return RandomSearchState(jnp.asarray(0, jnp.int32), BestObserved.empty(K, dtype))

    def ask(state: RandomSearchState, key: jax.Array) -> tuple[Proposal, RandomSearchState]:
        dtype = state.best.value.dtype
        if concentration == 1.0:
            w = optimize.uniform_simplex(key, (), K, dtype)
        else:
            w = jax.random.dirichlet(key, jnp.full((K,), concentration, dtype), dtype=dtype)
        proposal = make_proposal(space, w, target_scale, target_steps, state.num_asked)
        return proposal, state._replace(num_asked=state.num_asked + 1)

    def tell(state: RandomSearchState, proposal: Proposal, value) -> RandomSearchState:
        y = sign * final_value(proposal, value)
        return state._replace(best=state.best.update(space, proposal, y))

    def recommend(state: RandomSearchState) -> jax.Array:
        return state.best.mixture

    return Strategy(
        init,
        ask,
        tell,
        recommend,
        space,
        "random_search",
        default_num_asks=target_runs(space),
    )
