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


def test_gp_fit_loops_over_starts_on_cpu_with_the_same_fit_as_vmapped():
    """On CPU the fit loops over its starts and line-search points (inside
    ``sequential_batches`` too); the vmapped path (GPU, TPU) gives the same fit, and a trace
    made in one mode is not reused in the other (the mode is a static argument)."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.dirichlet(np.ones(3), 12), rng.uniform(size=(12, 2))], axis=1)
    y = np.sin(3 * x[:, 0]) + x[:, 3]
    key = jax.random.key(1)
    with jax.enable_x64(True):
        model = gp.GP(kernels.paper_kernel(), 3)
        obs = gp.observations(jnp.asarray(x), jnp.asarray(y), 16)

        def fit():
            return model.fit(obs, key, num_starts=3, max_steps=5)

        def fit_vmapped():
            return gp._fit(model, obs, key, None, 3, "lbfgs", 5, 1.0, False)

        # a new function for each make_jaxpr: it caches its trace by function
        looped = fit()
        looped_jaxpr = str(jax.make_jaxpr(lambda: fit())())
        vmapped = fit_vmapped()
        vmapped_jaxpr = str(jax.make_jaxpr(lambda: fit_vmapped())())
        with batching.sequential_batches():
            inside = fit()
            inside_jaxpr = str(jax.make_jaxpr(lambda: fit())())
        again = fit()
    assert jax.default_backend() == "cpu"
    # 3 starts (and 3 line-search points) of 16 x 16 Gram matrices: one batch, or one at a time
    assert "f64[3,16,16]" in vmapped_jaxpr
    for jaxpr in (looped_jaxpr, inside_jaxpr):
        assert "f64[3,16,16]" not in jaxpr and "cholesky" in jaxpr
    np.testing.assert_allclose(looped[1], vmapped[1], rtol=1e-9)
    assert inside[1] == looped[1] and again[1] == looped[1]


def test_a_vmapped_gp_fit_on_cpu_runs_one_fit_at_a_time_with_the_lazy_line_search():
    """Under vmap (the seeds of a sweep) ``GP.fit`` on CPU fits one buffer at a time, so each
    fit branches lazily in its line search (``gp.line_search_step``) instead of evaluating
    every step size; the fits equal separate ones."""
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.dirichlet(np.ones(3), 12), rng.uniform(size=(12, 2))], axis=1)
    ys = np.stack([np.sin(3 * x[:, 0]) + x[:, 3], np.cos(2 * x[:, 1]) - x[:, 4]])
    keys = jax.random.split(jax.random.key(3), 2)
    with jax.enable_x64(True):
        model = gp.GP(kernels.paper_kernel(), 3)
        buffers = [gp.observations(jnp.asarray(x), jnp.asarray(y), 16) for y in ys]
        stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *buffers)

        def fit(obs, key):
            return model.fit(obs, key, num_starts=2, max_steps=5)

        batched = jax.jit(jax.vmap(fit))(stacked, keys)
        jaxpr = str(jax.make_jaxpr(jax.vmap(fit))(stacked, keys))
        separate = [fit(obs, key) for obs, key in zip(buffers, keys, strict=True)]
    assert "f64[2,16,16]" not in jaxpr and "cond[" in jaxpr
    for i, (params, loss) in enumerate(separate):
        np.testing.assert_allclose(batched[1][i], loss, rtol=1e-9)
        for got, want in zip(
            jax.tree_util.tree_leaves(batched[0]), jax.tree_util.tree_leaves(params), strict=True
        ):
            np.testing.assert_allclose(got[i], want, rtol=1e-7, atol=1e-9)
