"""recipes_jax.batching: vmap, or a loop where batched LAPACK calls must be avoided."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recipes_jax import batching, gp, kernels


def _factor(a):
    return jnp.linalg.cholesky(a @ a.T + 3.0 * jnp.eye(a.shape[0]))


def _jaxpr(fn, xs) -> str:
    return str(jax.make_jaxpr(fn)(xs))


def test_batch_map_vmaps_by_default_and_loops_inside_sequential_batches():
    xs = jax.random.normal(jax.random.key(0), (3, 4, 4))
    outside = _jaxpr(lambda x: batching.batch_map(_factor, x), xs)
    with batching.sequential_batches():
        inside = _jaxpr(lambda x: batching.batch_map(_factor, x), xs)
        looped = batching.batch_map(_factor, xs)
    assert "scan" not in outside and "cholesky" in outside
    assert "scan" in inside and "cholesky" in inside
    np.testing.assert_allclose(looped, jax.vmap(_factor)(xs), rtol=1e-6)


def test_sequential_batches_nests_and_restores_after_an_error():
    assert not batching.is_sequential()
    with pytest.raises(RuntimeError):
        with batching.sequential_batches():
            assert batching.is_sequential()
            with batching.sequential_batches(False):
                assert not batching.is_sequential()
            assert batching.is_sequential()
            raise RuntimeError("boom")
    assert not batching.is_sequential()


def test_gp_fit_loops_over_starts_inside_sequential_batches_with_the_same_fit():
    """The fit's starts and line-search points are looped, not vmapped, and a trace made in
    one mode is not reused in the other (the mode is a static argument of the jitted fit)."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.dirichlet(np.ones(3), 12), rng.uniform(size=(12, 2))], axis=1)
    y = np.sin(3 * x[:, 0]) + x[:, 3]
    with jax.enable_x64(True):
        model = gp.GP(kernels.paper_kernel(), 3)
        obs = gp.observations(jnp.asarray(x), jnp.asarray(y), 16)

        def fit():
            return model.fit(obs, jax.random.key(1), num_starts=3, max_steps=5)

        # a new function for each make_jaxpr: it caches its trace by function
        vmapped = fit()
        batched_jaxpr = str(jax.make_jaxpr(lambda: fit())())
        with batching.sequential_batches():
            looped = fit()
            looped_jaxpr = str(jax.make_jaxpr(lambda: fit())())
        again = fit()
    # 3 starts (and 3 line-search points) of 16 x 16 Gram matrices: one batch, or one at a time
    assert "f64[3,16,16]" in batched_jaxpr
    assert "f64[3,16,16]" not in looped_jaxpr and "cholesky" in looped_jaxpr
    np.testing.assert_allclose(looped[1], vmapped[1], rtol=1e-9)
    assert again[1] == vmapped[1]
