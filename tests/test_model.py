"""The GP surrogate (gp.GP, Observations, Posterior) against a plain numpy implementation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import recipes_jax as rj
from recipes_jax import gp, kernels


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


SPACE = rj.Space.paper()
MODEL = gp.GP(kernels.paper_kernel(), SPACE.num_domains)


def make_data(n, seed=0, noise=0.01):
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(5), n)
    m = rng.choice(SPACE.scales, n)
    s = rng.choice(SPACE.steps, n)
    coef = np.array([0.1, -0.05, 0.02, 0.03, -0.1])
    y = np.log(w + 1e-3) @ coef + 1.0 / np.log(m) + 100.0 / np.sqrt(s)
    y = y + noise * rng.normal(size=n)
    return np.asarray(SPACE.encode(w, m, s)), y


def perturbed_params(seed):
    flat, unravel = jax.flatten_util.ravel_pytree(MODEL.init(jnp.float64))
    noise = np.random.default_rng(seed).normal(scale=0.5, size=flat.shape)
    return unravel(flat + noise)


def numpy_posterior(model, params, x, y, xq):
    """Textbook GP regression with a GLS constant mean, in numpy."""
    kernel, amplitude, noise = model.hyperparameters(params)
    # the paper kernel is a product of ARD RBFs = one ARD RBF over all columns
    parts = [kernel.kernel1.kernel1, kernel.kernel1.kernel2, kernel.kernel2]
    ls = np.concatenate([np.asarray(p.lengthscale) for p in parts])
    cols = np.concatenate([np.asarray(p.columns) for p in parts])

    def k(a, b):
        a, b = a[:, cols] / ls, b[:, cols] / ls
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return float(amplitude) * np.exp(-0.5 * d2)

    loc, scale = y.mean(), y.std()
    z = (y - loc) / scale
    C = k(x, x) + float(noise) * np.eye(len(y))
    Ci = np.linalg.inv(C)
    one = np.ones(len(y))
    beta = (one @ Ci @ z) / (one @ Ci @ one)
    Ks = k(xq, x)
    mean = beta + Ks @ Ci @ (z - beta)
    var = float(amplitude) - np.einsum("qn,nm,qm->q", Ks, Ci, Ks)
    return loc + scale * mean, scale**2 * var


def test_posterior_matches_numpy_to_1e8():
    x, y = make_data(25)
    xq, _ = make_data(40, seed=1)
    params = perturbed_params(3)
    post = MODEL.condition(params, gp.observations(x, y))
    mean, var = gp.predict(post, jnp.asarray(xq))
    ref_mean, ref_var = numpy_posterior(MODEL, params, x, y, xq)
    np.testing.assert_allclose(mean, ref_mean, atol=1e-8, rtol=0)
    np.testing.assert_allclose(var, ref_var, atol=1e-8, rtol=0)


def test_padding_has_no_effect_to_1e9():
    x, y = make_data(20)
    xq, _ = make_data(30, seed=2)
    params = perturbed_params(4)
    tight = gp.observations(x, y)
    padded = gp.observations(x, y, capacity=33)
    # garbage in the padded rows must not matter
    padded = padded._replace(x=padded.x.at[20:].set(0.37), y=padded.y.at[20:].set(1e6))
    a, b = MODEL.condition(params, tight), MODEL.condition(params, padded)
    for got, ref in zip(gp.predict(b, xq), gp.predict(a, xq), strict=True):
        np.testing.assert_allclose(got, ref, atol=1e-9, rtol=0)
    _, cov_a = gp.predict_covariance(a, xq)
    _, cov_b = gp.predict_covariance(b, xq)
    np.testing.assert_allclose(cov_b, cov_a, atol=1e-9, rtol=0)
    assert abs(float(MODEL.loss(params, tight)) - float(MODEL.loss(params, padded))) < 1e-9


def test_append_fills_free_rows_skips_nonfinite_and_drops_when_full():
    obs = gp.empty_observations(4, 7, jnp.float64)
    obs = gp.append(obs, jnp.ones((2, 7)), jnp.array([1.0, jnp.nan]))
    assert int(obs.count) == 1 and float(obs.y[0]) == 1.0
    obs = gp.append(obs, 2 * jnp.ones(7), 2.0)
    obs = gp.append(obs, 3 * jnp.ones((3, 7)), jnp.array([3.0, 4.0, 5.0]))
    assert int(obs.count) == 4
    np.testing.assert_array_equal(obs.y, [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(obs.x[1], 2.0 * np.ones(7))
    jitted = jax.jit(gp.append)(obs, jnp.zeros(7), 9.0)
    np.testing.assert_array_equal(jitted.y, obs.y)


def test_evict_frees_the_lowest_priority_rows_and_append_refills_them():
    obs = gp.empty_observations(4, 2, jnp.float64)
    obs = gp.append(obs, jnp.arange(8.0).reshape(4, 2), jnp.array([1.0, 2.0, 3.0, 4.0]))
    priority = jnp.array([5.0, 1.0, 3.0, 1.0])
    same = jax.jit(gp.evict)(obs, 0, priority)
    np.testing.assert_array_equal(same.mask, obs.mask)
    freed = jax.jit(gp.evict)(obs, jnp.asarray(2), priority)
    np.testing.assert_array_equal(freed.mask, [True, False, True, False])  # ties: row order
    assert int(freed.count) == 2
    refilled = gp.append(freed, -jnp.ones((3, 2)), jnp.array([7.0, 8.0, 9.0]))
    np.testing.assert_array_equal(refilled.y, [1.0, 7.0, 3.0, 8.0])  # 9.0 does not fit
    np.testing.assert_array_equal(refilled.x[1], [-1.0, -1.0])
    assert bool(refilled.mask.all())


def test_covariance_diagonal_and_samples_agree_with_predict():
    x, y = make_data(15)
    xq, _ = make_data(6, seed=5)
    post = MODEL.condition(perturbed_params(1), gp.observations(x, y))
    mean, var = gp.predict(post, xq)
    mean_c, cov = gp.predict_covariance(post, xq)
    np.testing.assert_allclose(mean_c, mean, atol=1e-12)
    np.testing.assert_allclose(np.diag(cov), var, atol=1e-10)
    draws = gp.sample(post, jax.random.key(0), xq, 40_000)
    np.testing.assert_allclose(draws.mean(0), mean, atol=4 * np.sqrt(var.max() / 40_000) + 1e-9)
    emp = np.cov(np.asarray(draws).T)
    np.testing.assert_allclose(emp, cov, atol=0.05 * np.abs(cov).max())


def test_fit_improves_likelihood_and_warm_start_keeps_it():
    x, y = make_data(40)
    obs = gp.observations(x, y, capacity=48)
    start_loss = float(MODEL.loss(MODEL.init(jnp.float64), obs))
    # the defaults as start 0 (what init=None means): both fits share one compiled program
    params, loss = MODEL.fit(
        obs, jax.random.key(0), MODEL.init(jnp.float64), num_starts=4, max_steps=30
    )
    assert float(loss) < start_loss - 0.2
    assert float(loss) == pytest.approx(float(MODEL.loss(params, obs)), abs=1e-9)
    # warm start: the previous optimum is start 0, so the result can only be as good or better
    params2, loss2 = MODEL.fit(obs, jax.random.key(1), params, num_starts=4, max_steps=30)
    assert float(loss2) <= float(loss) + 1e-12
    post = MODEL.condition(params2, obs)
    mean, _ = gp.predict(post, x)
    assert np.sqrt(np.mean((np.asarray(mean) - y) ** 2)) < 0.05 * np.std(y) + 0.02


def test_adam_fit_also_works():
    x, y = make_data(40)
    obs = gp.observations(x, y, capacity=48)
    start_loss = float(MODEL.loss(MODEL.init(jnp.float64), obs))
    _, loss = MODEL.fit(obs, jax.random.key(0), num_starts=4, max_steps=30, method="adam")
    assert float(loss) < start_loss - 0.2
    with pytest.raises(ValueError, match="unknown fit method"):
        MODEL.fit(obs, jax.random.key(0), method="sgd")


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("case", ["single", "constant", "duplicates", "tiny", "huge"])
def test_degenerate_data_gives_finite_posterior(case, dtype):
    x, y = make_data(12)
    if case == "single":
        x, y = x[:1], y[:1]
    elif case == "constant":
        y = np.full_like(y, 3.0)
    elif case == "duplicates":
        x = np.concatenate([x, x, x])
        y = np.concatenate([y, y + 1e-3, y])
    elif case == "tiny":
        y = 1e-8 * y
    elif case == "huge":
        y = 1e8 * y
    obs = gp.observations(jnp.asarray(x, dtype), jnp.asarray(y, dtype), capacity=len(y) + 3)
    params = MODEL.init(dtype)
    post = MODEL.condition(params, obs)
    mean, var = gp.predict(post, jnp.asarray(x, dtype))
    assert mean.dtype == dtype
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(var)) and np.all(var >= 0)
    assert np.isfinite(float(MODEL.loss(params, obs)))
    np.testing.assert_allclose(mean, y, atol=0.05 * np.abs(y).max() + 1e-3 * abs(y[0]))


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="unknown mean"):
        gp.GP(kernels.paper_kernel(), 5, mean="quadratic")
    with pytest.raises(ValueError, match="noise_floor"):
        gp.GP(kernels.paper_kernel(), 5, noise_floor=0.0)
    with pytest.raises(ValueError, match="capacity"):
        gp.observations(np.zeros((3, 7)), np.zeros(3), capacity=2)


def test_linear_mean_fits_a_linear_function_exactly():
    rng = np.random.default_rng(0)
    x, _ = make_data(30)
    coef = rng.normal(size=7)
    y = x @ coef + 2.0
    model = gp.GP(kernels.paper_kernel(), 5, mean="linear")
    params = model.init(jnp.float64)
    params["amplitude"] = jnp.asarray(-5.0)  # tiny kernel: the mean must do the work
    post = model.condition(params, gp.observations(x, y))
    xq, _ = make_data(10, seed=9)
    mean, _ = gp.predict(post, xq)
    np.testing.assert_allclose(mean, xq @ coef + 2.0, atol=1e-3 * np.abs(y).max())


def test_float64_posterior_cast_to_float32_scores_accurately():
    """Fit in float64, score candidates in float32 (what the acquisition search does)."""
    x, y = make_data(60)
    xq, _ = make_data(500, seed=11)
    post = MODEL.condition(perturbed_params(2), gp.observations(x, y, capacity=64))
    mean64, var64 = gp.predict(post, xq)
    mean32, var32 = gp.predict(post.astype(jnp.float32), jnp.asarray(xq, jnp.float32))
    assert mean32.dtype == jnp.float32
    spread = float(np.std(y))
    # measured: max error 2.5e-4 x spread on the mean (alpha is large under these params)
    np.testing.assert_allclose(mean32, mean64, atol=5e-4 * spread)
    np.testing.assert_allclose(var32, var64, atol=5e-4 * spread**2)


def test_observations_of_the_wrong_shape_are_refused():
    x, y = make_data(5)
    with pytest.raises(ValueError, match=r"expects \[N, 7\].*space.encode"):
        MODEL.condition(MODEL.init(jnp.float64), gp.observations(x[:, :5], y))
    bad = gp.observations(x, y)._replace(y=jnp.zeros(4))
    with pytest.raises(ValueError, match="disagree on N"):
        MODEL.loss(MODEL.init(jnp.float64), bad)


def test_grid_cross_covariance_and_projection_equal_the_pointwise_ones():
    x, y = make_data(20)
    obs = gp.observations(x, y)
    obs = gp.Observations(  # 4 padded rows
        jnp.concatenate([obs.x, jnp.zeros((4, obs.x.shape[1]))]),
        jnp.concatenate([obs.y, jnp.zeros(4)]),
        jnp.concatenate([obs.mask, jnp.zeros(4, bool)]),
    )
    model = gp.GP(kernels.mfms_kernel(), SPACE.num_domains)
    post = model.condition(perturbed_params_of(model, 2), obs)
    rng = np.random.default_rng(5)
    W = jnp.asarray(rng.dirichlet(np.ones(5), 7))
    fidelities = jnp.asarray(SPACE.encode(np.zeros((3, 5)), [20, 150, 1000], [6500, 13000, 19500]))
    fidelities = fidelities[:, -2:]
    decisions, _ = rj.optimize.grid_decisions(W, fidelities)
    cross = gp.grid_cross_covariance(post, W, fidelities)
    np.testing.assert_allclose(cross, gp.cross_covariance(post, decisions), rtol=1e-12, atol=1e-15)
    assert np.all(np.asarray(cross)[:, 20:] == 0.0)  # padded rows
    for a, b in zip(gp.project(post, decisions, cross), gp.project(post, decisions), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    # one fidelity at a time (map_grid / grid_predict) gives the same numbers
    mean, var = gp.grid_predict(post, W, fidelities)
    assert mean.shape == var.shape == (3, 7)
    expected_mean, expected_var = gp.predict(post, decisions)
    np.testing.assert_allclose(mean.ravel(), expected_mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(var.ravel(), expected_var, rtol=1e-10, atol=1e-12)
    rows = gp.map_grid(post, W, fidelities, lambda i, X, Ks, V: (i, X, Ks))
    np.testing.assert_array_equal(rows[0], np.arange(3))
    np.testing.assert_array_equal(rows[1].reshape(21, -1), decisions)
    np.testing.assert_allclose(rows[2].reshape(21, -1), cross, rtol=1e-12, atol=1e-15)


def perturbed_params_of(model, seed):
    flat, unravel = jax.flatten_util.ravel_pytree(model.init(jnp.float64))
    noise = np.random.default_rng(seed).normal(scale=0.3, size=flat.shape)
    return unravel(flat + noise)
