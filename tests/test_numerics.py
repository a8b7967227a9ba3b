"""Numerics under stress: 1,000 observations in float32 and float64, and tell() fuzzed with
inf, NaN, huge and tiny values: the posterior, the acquisition and every proposal stay finite,
on the simplex and in the space."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recipes_jax import acquisition, gp, kernels
from tests.test_strategies import check_proposal, jitted, shared


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_a_thousand_observations_give_a_finite_posterior_and_acquisition(world, truth, dtype):
    rng = np.random.default_rng(0)
    n, space = 1000, world.space
    w = rng.dirichlet(np.ones(5), n)
    m = rng.choice(space.scales, n)
    s = rng.choice([2000, 6500, 19_500], n)
    with jax.enable_x64(dtype == jnp.float64):
        x = jnp.asarray(space.encode(w, m, s), dtype)
        y = jnp.asarray(truth(w, m, s.astype(float)), dtype)
        model = gp.GP(kernels.mfms_kernel(), 5, mean="constant")
        obs = gp.observations(x, y)
        params, loss = model.fit(obs, jax.random.key(0), num_starts=1, max_steps=2)
        post = model.condition(params, obs)
        xq = jnp.asarray(space.encode(rng.dirichlet(np.ones(5), 256), 1000.0, 19_500), dtype)
        mean, var = gp.predict(post, xq)
        ei = acquisition.log_expected_improvement(mean, jnp.sqrt(var), y.min())
    assert np.isfinite(float(loss))
    assert np.isfinite(mean).all() and (np.asarray(var) >= 0).all() and np.isfinite(ei).all()
    assert (
        np.corrcoef(
            mean, truth(np.asarray(xq[:, :5]), np.full(256, 1000.0), np.full(256, 19_500.0))
        )[0, 1]
        > 0.9
    )


def test_tell_fuzzed_with_extreme_values_never_yields_a_bad_proposal(world, truth):
    values = [np.inf, -np.inf, np.nan, 1e30, -1e30, 1e-30, 0.0, 1e8, -1e8, 2.5]
    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        strategy = shared(world.space, "mfms_bo")
        ask, tell = jitted(strategy)
        state = strategy.init(jax.random.key(0))
        for i in range(10):
            proposal, state = ask(state, jax.random.key(i))
            check_proposal(world.space, proposal)
            value = values[rng.integers(len(values))] if i % 2 else None
            if value is None:  # every other run is an honest one
                w = proposal.mixture[None]
                value = truth(w, proposal.scale[None], proposal.steps[None] * 1.0)[0]
            state = tell(state, proposal, jnp.asarray(value, jnp.float64))
            assert np.isfinite(np.asarray(strategy.recommend(state))).all()
            assert np.isfinite(np.asarray(state.obs.y[state.obs.mask])).all()
