import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recipes_jax import gp


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def random_spd(n, seed=0):
    a = np.random.default_rng(seed).normal(size=(n, n))
    return a @ a.T / n + 0.1 * np.eye(n)


def test_masked_rows_have_no_effect_on_likelihood_or_posterior():
    rng = np.random.default_rng(0)
    n, keep = 9, np.array([1, 1, 0, 1, 0, 1, 1, 0, 1], bool)
    K, y, noise = random_spd(n), rng.normal(size=n), rng.uniform(0.01, 0.1, n)
    H = rng.normal(size=(n, 2))
    nll_masked, aux = gp.reml_nll(
        jnp.asarray(K), jnp.asarray(noise), jnp.asarray(y), jnp.asarray(keep), jnp.asarray(H)
    )
    idx = np.nonzero(keep)[0]
    nll_small, aux_small = gp.reml_nll(
        jnp.asarray(K[np.ix_(idx, idx)]),
        jnp.asarray(noise[idx]),
        jnp.asarray(y[idx]),
        jnp.ones(len(idx), bool),
        jnp.asarray(H[idx]),
    )
    assert abs(float(nll_masked) - float(nll_small)) < 1e-9
    np.testing.assert_allclose(aux["alpha"][idx], aux_small["alpha"], atol=1e-9)
    np.testing.assert_allclose(aux["beta"], aux_small["beta"], atol=1e-9)
    assert np.all(np.asarray(aux["alpha"])[~keep] == 0)
    # garbage in padded rows changes nothing
    y_garbage = np.where(keep, y, 1e6)
    nll_garbage, _ = gp.reml_nll(
        jnp.asarray(K),
        jnp.asarray(noise),
        jnp.asarray(y_garbage),
        jnp.asarray(keep),
        jnp.asarray(H),
    )
    assert float(nll_garbage) == pytest.approx(float(nll_masked), abs=1e-9)


def test_reml_matches_numpy_formula():
    rng = np.random.default_rng(1)
    n = 6
    K, y, noise = random_spd(n, 1), rng.normal(size=n), np.full(n, 0.05)
    C = K + np.diag(noise)
    expected = 0.5 * y @ np.linalg.solve(C, y) + 0.5 * np.linalg.slogdet(C)[1]
    nll, _ = gp.reml_nll(jnp.asarray(K), jnp.asarray(noise), jnp.asarray(y), jnp.ones(n, bool))
    assert float(nll) == pytest.approx(expected, abs=1e-10)


def test_cholesky_with_jitter_rescues_singular_matrices_and_has_exact_gradients():
    ones = jnp.ones((4, 4))
    L, jitter = gp.cholesky_with_jitter(ones)
    assert np.isfinite(L).all() and float(jitter) > 0
    np.testing.assert_allclose(L @ L.T, ones + jitter * jnp.eye(4), atol=1e-12)
    K = jnp.asarray(random_spd(5))
    L, jitter = gp.cholesky_with_jitter(K)
    assert float(jitter) == 0.0
    f = lambda K: jnp.sum(jnp.log(jnp.diag(gp.cholesky_with_jitter(K)[0])))
    g = lambda K: jnp.sum(jnp.log(jnp.diag(jnp.linalg.cholesky(K))))
    np.testing.assert_allclose(jax.grad(f)(K), jax.grad(g)(K), atol=1e-12)
    np.testing.assert_allclose(jax.jacfwd(f)(K), jax.jacfwd(g)(K), atol=1e-12)


def test_minimize_finds_the_minimum_and_bounded_round_trips():
    target = jnp.array([1.0, -2.0, 0.5])
    loss = lambda p: jnp.sum((p - target) ** 2) + 0.1 * jnp.sum(p**4)
    p, value = jax.jit(lambda p0: gp.minimize(loss, p0))(jnp.zeros(3))
    assert np.linalg.norm(jax.grad(loss)(p)) < 1e-6
    assert float(value) == pytest.approx(float(loss(p)))
    best, _ = gp.minimize_from_starts(loss, np.array([[5.0, 5.0, 5.0], [0.0, 0.0, 0.0]]))
    np.testing.assert_allclose(best, p, atol=1e-5)
    x = jnp.array([0.1, 0.5, 0.9])
    np.testing.assert_allclose(gp.bounded(gp.unbounded(x, 0.0, 1.0), 0.0, 1.0), x, atol=1e-12)


# On f(p) = |p|^2 / 2 with direction k * grad, the loss along the line is
# f(p) (1 - s k)^2: its minimum is at s = 1 / k.
LINE_SEARCH_CASES = {
    # k: (the step size the rule takes, or None for no move; why)
    1.0: (1.0, "unit step meets sufficient decrease"),
    1.52: (1.0, "unit step falls short of sufficient decrease but is the lowest of the three"),
    1.8: (0.3, "unit step improves too little; 0.3 is lower"),
    2.5: (0.3, "unit step overshoots (loss goes up); 0.3 is lower"),
    50.0: (None, "every step size overshoots: stay put"),
}


def _quadratic_line_search(p, k, count=None):
    def loss(q):
        if count is not None:
            jax.debug.callback(lambda: count.append(1))
        return 0.5 * jnp.sum(q**2)

    return gp.line_search_step(loss, p, loss(p), p, k * p)


def test_line_search_step_takes_the_rule_s_step_batched_or_not():
    p = jnp.array([0.6, -0.8, 0.3])
    ks = jnp.asarray(list(LINE_SEARCH_CASES))
    batched = jax.jit(jax.vmap(_quadratic_line_search, (None, 0)))(p, ks)  # eager rule
    for i, (k, (step, why)) in enumerate(LINE_SEARCH_CASES.items()):
        moved, value, grad = jax.jit(_quadratic_line_search)(p, k)  # lazy
        expected = p if step is None else p - step * k * p
        np.testing.assert_allclose(moved, expected, rtol=1e-12, err_msg=why)
        np.testing.assert_allclose(value, 0.5 * np.sum(expected**2), rtol=1e-12, err_msg=why)
        np.testing.assert_allclose(grad, expected, rtol=1e-12, err_msg=why)
        for got, want in zip(batched, (moved, value, grad), strict=True):
            np.testing.assert_allclose(got[i], want, rtol=1e-12, err_msg=why)


def test_line_search_step_evaluates_the_other_step_sizes_only_when_the_first_fails():
    p = jnp.array([0.6, -0.8, 0.3])
    counts = {}
    for k in (1.0, 2.5):
        count = []
        jax.block_until_ready(
            jax.jit(lambda p, k, count=count: _quadratic_line_search(p, k, count))(p, k)
        )
        counts[k] = len(count)
    # the value at p, then: the unit step with its gradient; or three values and a gradient
    assert counts == {1.0: 2, 2.5: 5}


@pytest.mark.parametrize("with_mean", [False, True])
def test_restricted_nll_value_and_gradient_match_autodiff_of_reml_nll(with_mean):
    rng = np.random.default_rng(3)
    n, keep = 10, np.array([1, 1, 1, 0, 1, 1, 0, 1, 1, 1], bool)
    A = rng.normal(size=(n, n))
    y, H = rng.normal(size=n), rng.normal(size=(n, 2)) if with_mean else None
    noise = jnp.full(n, 0.05)

    def K_of(t):
        return (A * t) @ (A * t).T / n + 0.1 * jnp.eye(n)

    def reference(t, y):
        return gp.reml_nll(K_of(t), noise, y, jnp.asarray(keep), H)[0]

    def fast(t, y):
        return gp.restricted_nll(K_of(t), noise, y, jnp.asarray(keep), H)

    t = jnp.asarray(rng.uniform(0.5, 1.5, n))
    # jitted: op by op, each primitive of them would compile on its own (seconds)
    assert float(jax.jit(fast)(t, y)) == pytest.approx(float(jax.jit(reference)(t, y)), rel=1e-9)
    for argnum in (0, 1):
        np.testing.assert_allclose(
            jax.jit(jax.grad(fast, argnum))(t, jnp.asarray(y)),
            jax.jit(jax.grad(reference, argnum))(t, jnp.asarray(y)),
            rtol=1e-7,
            atol=1e-9,
        )
    # a non-positive-definite matrix gives +inf, never NaN
    bad = gp.restricted_nll(-jnp.eye(n), jnp.zeros(n), jnp.asarray(y), jnp.ones(n, bool))
    assert float(bad) == np.inf
