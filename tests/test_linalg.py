"""recipes_jax.linalg: blocked inverses from a Cholesky factor."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recipes_jax import gp, linalg


def _kernel_matrix(n: int, lengthscale: float, noise: float, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).uniform(size=(n, 7))
    d2 = np.sum((x[:, None] - x[None]) ** 2, axis=-1) / lengthscale**2
    return np.exp(-0.5 * d2) + noise * np.eye(n)


@pytest.mark.parametrize("n", [1, 5, 31, 32, 33, 64, 72, 100, 128, 200, 454])
def test_triangular_inverse_and_gram_match_numpy_at_any_size(n):
    with jax.enable_x64(True):
        C = _kernel_matrix(n, 0.5, 1e-3)
        L = np.linalg.cholesky(C)
        L_inv = np.asarray(linalg.triangular_inverse(jnp.asarray(L)))
        np.testing.assert_allclose(
            L_inv, np.linalg.inv(L), rtol=0, atol=1e-10 * np.abs(L_inv).max()
        )
        assert np.all(np.triu(L_inv, 1) == 0)
        M = np.tril(np.random.default_rng(n).standard_normal((n, n)))
        np.testing.assert_allclose(linalg.lower_gram(jnp.asarray(M)), M.T @ M, atol=1e-12 * n)
        P = np.asarray(linalg.inverse_from_cholesky(jnp.asarray(L)))
        np.testing.assert_allclose(P, np.linalg.inv(C), rtol=0, atol=1e-9 * np.abs(P).max())
        np.testing.assert_array_equal(P, P.T)


def test_leaf_size_keeps_8_for_powers_of_two_and_pads_others_least():
    assert [linalg.leaf_size(n) for n in (8, 64, 128, 512)] == [8, 8, 8, 8]
    # worked by hand: n -> leaf x power-of-two count (padded side)
    expected = {72: 9, 96: 12, 50: 13, 300: 10, 454: 15, 500: 8}  # 72, 96, 52, 320, 480, 512
    assert {n: linalg.leaf_size(n) for n in expected} == expected
    for n, leaf in expected.items():
        P, count = linalg._padded(jnp.eye(n), leaf)
        assert P.shape[0] == leaf * count < 2 * n


@pytest.mark.parametrize("lengthscale, noise", [(1.0, 1e-6), (2.0, 1e-8)])
def test_inverse_is_as_accurate_as_two_triangular_solves_when_ill_conditioned(lengthscale, noise):
    with jax.enable_x64(True):
        C = _kernel_matrix(256, lengthscale, noise)
        assert np.linalg.cond(C) > 1e5
        L = linalg.cholesky(jnp.asarray(C))
        solves = np.asarray(jax.scipy.linalg.cho_solve((L, True), jnp.eye(256)))
        blocked = np.asarray(linalg.inverse_from_cholesky(L))
        residual = lambda P: np.abs(C @ P - np.eye(256)).max()
        assert residual(blocked) <= 2.0 * residual(solves) + 1e-12


def test_vmapped_inverse_equals_one_at_a_time_without_any_lapack_call():
    with jax.enable_x64(True):
        Ls = jnp.stack(
            [jnp.linalg.cholesky(jnp.asarray(_kernel_matrix(96, 0.4, 1e-4, s))) for s in range(3)]
        )
        batched = jax.vmap(linalg.inverse_from_cholesky)(Ls)
        for L, P in zip(Ls, batched, strict=True):
            np.testing.assert_allclose(P, linalg.inverse_from_cholesky(L), rtol=1e-12, atol=1e-12)
        jaxpr = str(jax.make_jaxpr(jax.vmap(lambda L: linalg.inverse_from_cholesky(L)))(Ls))
        assert "triangular_solve" not in jaxpr and "custom_call" not in jaxpr


def _lapack_operand_shapes(jaxpr) -> list[tuple[str, tuple]]:
    """(primitive, first operand's shape) of every LAPACK call (Cholesky, triangular solve,
    LU), nested too."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("cholesky", "triangular_solve", "lu"):
            found.append((eqn.primitive.name, tuple(eqn.invars[0].aval.shape)))
        for value in eqn.params.values():
            for sub in value if isinstance(value, tuple | list) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    found += _lapack_operand_shapes(inner)
    return found


def test_vmapped_lapack_calls_take_one_matrix_at_a_time_on_cpu():
    # jaxlib 0.10 splits a batch over its thread pool and waits, which can deadlock when two
    # such calls run at once: vmapped (twice, too), each call must hold a single matrix
    C = jnp.stack([jnp.asarray(_kernel_matrix(40, 0.4, 1e-3, s)) for s in range(6)])
    C = C.reshape(2, 3, 40, 40)
    b = jnp.ones((2, 3, 40))
    for fn, args in [
        (linalg.cholesky, (C,)),
        (linalg.solve_lower, (C, b)),
        (linalg.solve_lower_transposed, (C, b)),
        (linalg.cho_solve, (C, b)),
    ]:
        twice = jax.vmap(jax.vmap(lambda *a, fn=fn: fn(*a)))
        shapes = _lapack_operand_shapes(jax.make_jaxpr(twice)(*args).jaxpr)
        assert shapes and all(shape == (40, 40) for _, shape in shapes), (fn.__name__, shapes)
    L = jax.vmap(jax.vmap(linalg.cholesky))(C)
    np.testing.assert_allclose(L, jnp.linalg.cholesky(C), rtol=1e-6, atol=1e-6)
    x = jax.vmap(jax.vmap(linalg.cho_solve))(L, b)
    np.testing.assert_allclose(jnp.einsum("abij,abj->abi", C, x), b, atol=1e-3)


def _matrices_per_lapack_call(fn, *args) -> set[tuple]:
    """Operand shapes of the LAPACK calls in ``fn(*args)`` (asserting there is at least one)."""
    shapes = _lapack_operand_shapes(jax.make_jaxpr(fn)(*args).jaxpr)
    assert shapes
    return {shape for _, shape in shapes}


@pytest.mark.parametrize("with_mean", [False, True])
def test_vmapped_reml_nll_and_its_gradient_take_one_matrix_per_lapack_call(with_mean):
    # the simulator's construction vmaps reml_nll (and its gradient) over runs; with batched
    # LAPACK calls it hung on 2 cores (two batched solves in one program, see linalg's note)
    with jax.enable_x64(True):
        K = jnp.asarray(_kernel_matrix(24, 0.4, 0.0))
        ys = jax.random.normal(jax.random.key(0), (5, 24))
        masks = jnp.arange(24)[None, :] < jnp.array([24, 20, 12, 3, 1])[:, None]
        H = jnp.ones((24, 2)).at[:, 1].set(jnp.linspace(0, 1, 24)) if with_mean else None

        def total(log_noise, ys, masks):
            noise = jnp.full((24,), jnp.exp(log_noise))
            nll = jax.vmap(lambda y, m: gp.reml_nll(K, noise, y, m, H)[0])(ys, masks)
            return jnp.sum(nll)

        value_and_grad = jax.jit(jax.value_and_grad(total))
        shapes = _matrices_per_lapack_call(value_and_grad, -3.0, ys, masks)
        assert shapes == {(24, 24)}, shapes
        # the gradient is still right: against one observation set at a time, and differences
        value, grad = value_and_grad(-3.0, ys, masks)
        one_at_a_time = [value_and_grad(-3.0, ys[i : i + 1], masks[i : i + 1]) for i in range(5)]
        np.testing.assert_allclose(value, sum(v for v, _ in one_at_a_time), rtol=1e-12)
        np.testing.assert_allclose(grad, sum(g for _, g in one_at_a_time), rtol=1e-10)
        step = 1e-6
        plus, minus = value_and_grad(-3.0 + step, ys, masks), value_and_grad(-3.0 - step, ys, masks)
        np.testing.assert_allclose(grad, (plus[0] - minus[0]) / (2 * step), rtol=1e-6)


def test_cho_solve_gradient_matches_autodiff_of_lapack_solves():
    with jax.enable_x64(True):
        L = jnp.linalg.cholesky(jnp.asarray(_kernel_matrix(16, 0.5, 1e-2)))
        for b in (jnp.linspace(-1, 1, 16), jnp.ones((16, 3)).at[:, 1].set(jnp.arange(16.0))):
            ours = lambda L, b: jnp.sum(jnp.sin(linalg.cho_solve(L, b)))
            theirs = lambda L, b: jnp.sum(jnp.sin(jax.scipy.linalg.cho_solve((L, True), b)))
            for got, want in zip(
                jax.grad(ours, (0, 1))(L, b), jax.grad(theirs, (0, 1))(L, b), strict=True
            ):
                np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_the_simulator_s_vmapped_curve_posterior_takes_one_matrix_per_lapack_call():
    from recipes_jax.simulator import interpolant

    with jax.enable_x64(True):
        u = jnp.linspace(0.0, 1.0, 12)
        dev = jax.random.normal(jax.random.key(1), (4, 12))
        mask = jnp.arange(12)[None, :] < jnp.array([12, 8, 5, 2])[:, None]
        log_params = jnp.log(jnp.array([0.1, 0.2, 0.5, 0.01]))
        one = functools.partial(interpolant._run_curve_posterior, log_params, u, u[::3])
        shapes = _matrices_per_lapack_call(jax.vmap(one), dev, mask)
        assert shapes == {(12, 12)}, shapes
        mean, var = interpolant._curve_posterior(log_params, u, dev, mask, u[::3])
        for r in range(4):
            np.testing.assert_allclose(mean[r], one(dev[r], mask[r])[0], rtol=1e-10, atol=1e-12)
        assert np.all(np.asarray(var) >= 0)


def test_a_failed_factor_stays_detectable():
    # jnp.linalg.cholesky fills the factor's lower triangle with NaN when it fails
    L = jnp.linalg.cholesky(jnp.asarray(_kernel_matrix(64, 0.5, 0.0)) - 0.5 * jnp.eye(64))
    assert np.isnan(np.asarray(L)[np.tril_indices(64)]).all()
    assert np.isnan(np.asarray(linalg.triangular_inverse(L))[np.tril_indices(64)]).all()
    assert jnp.all(jnp.isnan(linalg.inverse_from_cholesky(L)))


@pytest.mark.parametrize("size", [1, 2, 5, 12])
def test_small_spd_solve_matches_numpy_and_differentiates(size):
    with jax.enable_x64(True):
        M = np.random.default_rng(size).standard_normal((size + 4, size))
        A = M.T @ M + 0.1 * np.eye(size)
        B = np.random.default_rng(0).standard_normal((size, 3))
        solve = jax.jit(linalg.small_spd_solve)  # jitted: op by op, size 12 took ~40 s
        x, logdet = solve(jnp.asarray(A), jnp.asarray(B))
        np.testing.assert_allclose(x, np.linalg.solve(A, B), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(logdet, np.linalg.slogdet(A)[1], rtol=1e-12)
        vector, _ = solve(jnp.asarray(A), jnp.asarray(B[:, 0]))
        np.testing.assert_allclose(vector, np.linalg.solve(A, B[:, 0]), rtol=1e-10, atol=1e-12)
        # d/dt of sum((A + t I)^-1 b) at t = 0 is -sum(A^-2 b)
        grad = jax.jit(
            jax.grad(lambda t: jnp.sum(linalg.small_spd_solve(A + t * jnp.eye(size), B[:, 0])[0]))
        )(0.0)
        Ainv = np.linalg.inv(A)
        np.testing.assert_allclose(grad, -np.sum(Ainv @ Ainv @ B[:, 0]), rtol=1e-8)
        jaxpr = str(jax.make_jaxpr(lambda a: linalg.small_spd_solve(a, B)[0])(A))
        assert "triangular_solve" not in jaxpr and "cholesky" not in jaxpr


@pytest.mark.parametrize(
    "n, block", [(1, 128), (100, 128), (256, 128), (300, 128), (512, 128), (45, 8)]
)
def test_times_lower_transposed_is_the_dense_product_without_the_upper_triangle(n, block):
    rng = np.random.default_rng(n)
    A = rng.standard_normal((3, 17, n))  # leading batch axes pass through
    T = rng.standard_normal((n, n))  # the strict upper triangle must be ignored
    with jax.enable_x64(True):
        got = linalg.times_lower_transposed(jnp.asarray(A), jnp.asarray(T), block)
    np.testing.assert_allclose(got, A @ np.tril(T).T, rtol=0, atol=1e-12 * n)


def test_times_lower_transposed_skips_the_zero_triangle():
    """At N = 512 in 128-column blocks the product does 10/16 of a dense product's
    multiply-adds (XLA's own count of the compiled programs)."""
    A = jnp.ones((256, 512), jnp.float32)
    T = jnp.ones((512, 512), jnp.float32)

    def flops(fn):
        analysis = jax.jit(fn).lower(A, T).compile().cost_analysis()
        return (analysis[0] if isinstance(analysis, list) else analysis)["flops"]

    blocked = flops(lambda a, t: linalg.times_lower_transposed(a, t, 128))
    dense = flops(lambda a, t: a @ t.T)
    assert blocked == pytest.approx(dense * 10 / 16, rel=0.02), (blocked, dense)
