"""Acquisition functions against Monte Carlo estimates and high-precision references."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

import recipes_jax as rj
from recipes_jax import acquisition as acq
from recipes_jax import gp, kernels


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


MEANS = np.array([0.0, 0.3, -0.2, 1.5, 2.0])
STDS = np.array([1.0, 0.5, 0.1, 0.7, 0.05])
BEST = 0.1


def mc_draws(n=400_000, seed=0):
    return MEANS + STDS * np.random.default_rng(seed).normal(size=(n, len(MEANS)))


def test_ei_pi_ucb_match_monte_carlo():
    f = mc_draws()
    n = f.shape[0]
    improvement = np.maximum(BEST - f, 0.0)
    ei = np.asarray(acq.expected_improvement(MEANS, STDS, BEST))
    assert np.all(np.abs(ei - improvement.mean(0)) <= 4 * improvement.std(0) / np.sqrt(n))
    np.testing.assert_allclose(
        np.exp(acq.log_expected_improvement(MEANS, STDS, BEST)), ei, rtol=1e-12, atol=1e-300
    )
    pi = np.asarray(acq.probability_of_improvement(MEANS, STDS, BEST))
    np.testing.assert_allclose(pi, (f < BEST).mean(0), atol=4 * np.sqrt(0.25 / n))
    np.testing.assert_allclose(
        np.exp(acq.log_probability_of_improvement(MEANS, STDS, BEST)), pi, atol=1e-300
    )
    # UCB (minimization) is the beta-quantile-style lower bound, negated
    beta = 4.0
    lcb = np.quantile(f, special.ndtr(-2.0), axis=0)
    np.testing.assert_allclose(-acq.upper_confidence_bound(MEANS, STDS, beta), lcb, atol=0.01)


def log_h_reference(z):
    """log(phi(z) + z Phi(z)) by the asymptotic series (z << 0) or directly."""
    if z < -10:
        series = sum(
            (-1) ** k * np.prod(np.arange(1, 2 * k + 2, 2)) / z ** (2 * k) for k in range(10)
        )
        return -0.5 * z * z - 0.5 * math.log(2 * math.pi) - 2 * math.log(-z) + math.log(series)
    return math.log(math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi) + z * special.ndtr(z))


def test_log_h_is_finite_increasing_and_smooth_along_the_whole_tail():
    """float32 gave -inf (NaN gradients) at half the points between z = -1333 and -2896, and
    wrong values with NaN gradients near z = -13.1 (float32) and -37.6 (float64), where
    jax.scipy.special.erfcx returns 0."""
    z = -np.concatenate([np.linspace(1.0, 60.0, 5901), np.geomspace(60.0, 1e5, 4001)])[::-1]
    for dtype in (jnp.float32, jnp.float64):
        with jax.enable_x64(dtype == jnp.float64):
            zz = jnp.asarray(z, dtype)
            value = np.asarray(jax.vmap(acq.log_h)(zz), np.float64)
            slope = np.asarray(jax.vmap(jax.grad(acq.log_h))(zz), np.float64)
        assert np.isfinite(value).all() and np.isfinite(slope).all(), dtype
        assert np.all(np.diff(value) >= 0), dtype  # a better z never ranks below a worse one
        # Phi(z) / h(z) lies between |z| and |z| + 2/|z| for z <= -1 (the min / max clamps
        # halved it at z = -1, a tie)
        assert np.all(slope >= -z * (1 - 1e-5)) and np.all(slope <= (-z + 2 / -z) * (1 + 1e-5))


@pytest.mark.parametrize(
    "z",
    [-1e4, -2000.0, -1500.0, -200.0, -40.0, -38.0, -37.6, -13.1, -12.0, -5.0, -1.0, -0.3, 0, 2, 9],
)
def test_log_ei_is_accurate_far_in_the_tail(z):
    ref = log_h_reference(z)
    got64 = float(acq.log_h(jnp.float64(z)))
    assert got64 == pytest.approx(ref, rel=1e-12, abs=1e-12)
    got32 = float(acq.log_h(jnp.float32(z)))
    assert np.isfinite(got32) and got32 == pytest.approx(ref, rel=2e-6, abs=2e-6)
    # gradients stay finite (acquisition refinement differentiates through it)
    assert np.isfinite(float(jax.grad(acq.log_h)(jnp.float32(z))))
    # the derivative, d log h / dz = Phi(z) / h(z), about |z| far out, to float32's precision
    step = 1e-6 * max(1.0, abs(z))
    slope = (log_h_reference(z + step) - log_h_reference(z - step)) / (2 * step)
    assert float(jax.grad(acq.log_h)(jnp.float32(z))) == pytest.approx(slope, rel=1e-4)
    # plain EI underflows at z = -40 (exp(-800)); log EI keeps ranking candidates
    if z == -40.0:
        assert float(acq.expected_improvement(40.0, 1.0, 0.0)) == 0.0
        assert float(acq.log_expected_improvement(40.0, 1.0, 0.0)) == pytest.approx(ref)


def test_cost_cooling_decays_from_one_to_zero():
    alphas = acq.cost_cooling_exponent(jnp.array([2.0, 2.0, 26.0, 50.0, 60.0]), 50.0, 2.0)
    np.testing.assert_allclose(alphas, [1.0, 1.0, 0.5, 0.0, 0.0])
    ei, cost = 0.3, 0.01
    assert float(acq.cost_cooled(ei, cost, 1.0)) == pytest.approx(30.0)
    assert float(acq.cost_cooled(ei, cost, 0.0)) == pytest.approx(0.3)
    assert float(acq.cost_cooled(math.log(ei), cost, 0.5, log_space=True)) == pytest.approx(
        math.log(ei / math.sqrt(cost))
    )


SPACE = rj.Space.paper()
MODEL = gp.GP(kernels.paper_kernel(), SPACE.num_domains)
# zero mean: the knowledge-gradient formula conditions the latent GP with the mean held fixed
ZERO_MEAN = gp.GP(kernels.paper_kernel(), SPACE.num_domains, mean="zero")


def fitted_posterior(n=20, seed=0, model=MODEL):
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(5), n)
    m = rng.choice(SPACE.scales, n)
    s = rng.choice(SPACE.steps, n)
    y = (
        np.log(w + 1e-3) @ np.array([0.1, -0.05, 0.02, 0.03, -0.1])
        + 1 / np.log(m)
        + 10 / np.sqrt(s)
    )
    obs = gp.observations(SPACE.encode(w, m, s), y)
    params = model.init(jnp.float64)
    params["noise"] = jnp.asarray(-2.0)  # a visible noise level
    return model.condition(params, obs), obs


def candidates(seed=1, q=6):
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(5), q)
    x = np.asarray(SPACE.encode(w, np.full(q, 150.0), np.full(q, 6500)))
    x_target = np.asarray(SPACE.encode(w, np.full(q, 1000.0), np.full(q, 19_500)))
    return x, x_target


def test_target_correlation_and_augmented_ei_match_monte_carlo():
    post, _ = fitted_posterior()
    x, x_target = candidates()

    @jax.jit  # one program: op by op, every primitive of these would compile on its own
    def ours(post):
        corr, _, _ = acq.target_correlation(post, x, x_target)
        draws = gp.sample(post, jax.random.key(0), jnp.concatenate([x, x_target]), 100_000)
        mean_t, var_t = gp.predict(post, x_target)
        best = mean_t - 0.3 * jnp.sqrt(var_t)  # per candidate, so no EI is negligible
        aei = acq.augmented_expected_improvement(post, x, x_target, best)
        _, var_x = gp.predict(post, x)
        # at the target fidelity itself the correlation is 1: AEI = EI * noise factor < EI
        full = acq.augmented_expected_improvement(post, x_target, x_target, best)
        ei = acq.expected_improvement(mean_t, jnp.sqrt(var_t), best)
        return corr, draws, best, aei, var_x, full, ei

    corr, draws, best, aei, var_x, full, ei = map(np.asarray, ours(post))
    q = x.shape[0]
    emp = [np.corrcoef(draws[:, i], draws[:, q + i])[0, 1] for i in range(q)]
    np.testing.assert_allclose(corr, emp, atol=0.01)
    ei_mc = np.maximum(best - draws[:, q:], 0).mean(0)
    noise = float(post.noise) * float(post.y_scale) ** 2
    expected = ei_mc * np.maximum(emp, 0) * (1 - np.sqrt(noise / (var_x + noise)))
    assert np.sum(expected > 0) >= 2  # (negatively correlated candidates are worth 0)
    np.testing.assert_allclose(aei, expected, rtol=0.03, atol=1e-3 * expected.max())
    assert np.all(full <= ei) and np.all(full >= 0.5 * ei)


def test_knowledge_gradient_matches_fantasy_monte_carlo():
    post, obs = fitted_posterior(n=15, model=ZERO_MEAN)
    rng = np.random.default_rng(1)
    # a competitive target set: the 6 mixtures with the lowest predicted target values
    w = rng.dirichlet(np.ones(5), 300)
    target = lambda w: np.asarray(SPACE.encode(w, np.full(len(w), 1000.0), np.full(len(w), 19_500)))
    order = np.argsort(np.asarray(gp.predict(post, target(w))[0]))[:6]
    target_set = target(w[order])
    x = np.asarray(SPACE.encode(w[order[:2]], np.full(2, 700.0), np.full(2, 13_000)))
    x_target = target_set[:2]
    kg = np.asarray(acq.knowledge_gradient(post, x, target_set, x_target, num_quadrature=64))
    assert np.all(kg > 1e-3 * float(post.y_scale))
    params = ZERO_MEAN.init(jnp.float64)
    params["noise"] = jnp.asarray(-2.0)
    grown = gp.observations(obs.x, obs.y, capacity=obs.capacity + 1)

    # brute force: draw y at x from the posterior predictive, re-condition the GP exactly and
    # take the best posterior mean over the set (standardization held fixed, as in the formula)
    @jax.jit
    def new_minimum(y_new, x_new):
        fixed = (post.y_loc, post.y_scale)
        p = ZERO_MEAN.condition(params, gp.append(grown, x_new, y_new), fixed)
        return gp.predict(p, jnp.asarray(target_set))[0].min()

    before = float(gp.predict(post, target_set)[0].min())
    for i in range(2):
        mean_x, var_x = gp.predict(post, x[i : i + 1], include_noise=True)
        ys = float(mean_x[0]) + math.sqrt(float(var_x[0])) * rng.normal(size=4000)
        mins = np.array([float(new_minimum(y, jnp.asarray(x[i]))) for y in ys])
        mc = before - mins.mean()
        assert kg[i] == pytest.approx(mc, abs=4 * mins.std() / np.sqrt(len(ys)))
