"""Acquisition search: candidates on the simplex, refinement never lowers the value."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import recipes_jax as rj
from recipes_jax import acquisition as acq
from recipes_jax import gp, kernels, optimize


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def test_candidates_lie_on_the_simplex_and_cover_it():
    w = np.asarray(optimize.simplex_candidates(jax.random.key(0), 4096, 5))
    assert w.shape == (4096, 5)
    assert np.all(w >= 0) and np.allclose(w.sum(1), 1.0, atol=1e-12)
    # quasi-random half is uniform on the simplex: each weight has mean 1/K, Beta(1, K-1) law
    qr = np.asarray(optimize.quasi_random_simplex(jax.random.key(1), 2048, 5))
    np.testing.assert_allclose(qr.mean(0), 0.2, atol=0.01)
    np.testing.assert_allclose((qr[:, 0] < 0.05).mean(), 1 - 0.95**4, atol=0.02)
    # sparse draws reach near-vertices
    assert (w.max(1) > 0.9).sum() > 50


def test_uniform_simplex_has_dirichlet_one_moments():
    K = 5
    w = np.asarray(optimize.uniform_simplex(jax.random.key(2), (20_000,), K))
    assert np.all(w >= 0) and np.allclose(w.sum(1), 1.0)
    np.testing.assert_allclose(w.mean(0), 1 / K, atol=0.005)
    # Beta(1, K - 1) marginals: variance (K - 1) / (K^2 (K + 1))
    np.testing.assert_allclose(w.var(0), (K - 1) / (K**2 * (K + 1)), rtol=0.05)
    sharp = np.asarray(optimize.sharpened_simplex(jax.random.key(3), (2000,), K))
    assert np.median(sharp.max(1)) > 0.8  # dominated by one domain, like Dirichlet(0.2)


def test_around_simplex_stays_near_the_center_at_several_radii():
    with jax.enable_x64(True):
        center = jnp.asarray([0.6, 0.3, 0.1, 0.0, 0.0])  # on a face, as optima often are
        w = np.asarray(optimize.around_simplex(jax.random.key(4), center, 1000))
    assert w.shape == (1000, 5)
    assert np.all(w >= 0) and np.allclose(w.sum(1), 1.0, atol=1e-12)
    dist = np.abs(w - np.asarray(center)).sum(1)
    # several scales of step: some within 1e-2 of the center, some 0.1 and more away
    assert (dist < 1e-2).sum() > 100 and (dist > 0.1).sum() > 100 and dist.max() < 1.5
    # half keep the zero weights near zero (log-normal); the blends turn them on
    assert (w[:500, 3:] < 1e-9).all() and (w[500:, 3:] > 1e-6).all()
    assert not np.array_equal(w, optimize.around_simplex(jax.random.key(5), center, 1000))
    assert optimize.around_simplex(jax.random.key(4), center, 0).shape == (0, 5)


def peaked_score(target_w, fidelity_bonus):
    target_w = jnp.asarray(target_w)

    def score(X, i):
        return -jnp.sum(jnp.square(X[:, :-2] - target_w), axis=1) + fidelity_bonus[i]  # i: [B]

    return score


def test_maximize_finds_the_peak_and_refinement_never_lowers():
    target_w = np.array([0.5, 0.3, 0.1, 0.07, 0.03])
    fids = jnp.array([[0.0, 0.5], [0.5, 1.0], [1.0, 1.0]])
    bonus = jnp.array([0.0, 0.01, -0.01])
    result = jax.jit(
        lambda k: optimize.maximize(peaked_score(target_w, bonus), k, fids, 5, num_candidates=512)
    )(jax.random.key(0))
    assert int(result.fidelity_index) == 1
    assert float(result.value) >= float(result.screened_value)
    np.testing.assert_allclose(result.mixture, target_w, atol=0.02)
    assert float(jnp.sum(result.mixture)) == pytest.approx(1.0, abs=1e-12)
    assert np.all(np.asarray(result.mixture) >= 0)


def gp_score():
    space = rj.Space.paper()
    rng = np.random.default_rng(0)
    n = 30
    w = rng.dirichlet(np.ones(5), n)
    m = rng.choice(space.scales, n)
    s = rng.choice(space.steps, n)
    y = np.log(w + 1e-3) @ np.array([0.1, -0.05, 0.02, 0.03, -0.1]) + 1 / np.log(m)
    model = gp.GP(kernels.matern52_ard("mixture", "sqrt") * kernels.rbf("fidelity"), 5)
    post = model.condition(model.init(jnp.float64), gp.observations(space.encode(w, m, s), y))
    scales, steps = space.fidelity_grid()
    fids = space.encode(np.zeros((len(scales), 5)), scales, steps)[:, 5:]
    costs = space.cost(scales, steps)
    best = float(y.min())

    def score(X, i):
        mean, var = gp.predict(post, X)
        return acq.cost_cooled(
            acq.log_expected_improvement(mean, jnp.sqrt(var), best), costs[i], 0.5, log_space=True
        )

    return score, fids


@pytest.mark.parametrize("seed", range(4))
def test_refinement_on_a_gp_acquisition_never_lowers_it(seed):
    score, fids = gp_score()
    assert fids.shape == (21, 2)
    res = jax.jit(lambda k: optimize.maximize(score, k, fids, 5, num_candidates=256))(
        jax.random.key(seed)
    )
    assert float(res.value) >= float(res.screened_value)
    # the reported value is the acquisition at the returned point
    X = jnp.concatenate([res.mixture, fids[res.fidelity_index]])[None]
    value = score(X, res.fidelity_index[None])[0]
    assert float(value) == pytest.approx(float(res.value), rel=1e-9)
    assert np.all(np.asarray(res.mixture) >= 0)
    assert float(jnp.sum(res.mixture)) == pytest.approx(1.0, abs=1e-12)


def test_maximize_vmaps_over_keys():
    score, fids = gp_score()
    run = jax.jit(jax.vmap(lambda k: optimize.maximize(score, k, fids, 5, num_candidates=128)))
    res = run(jax.random.split(jax.random.key(0), 3))
    assert res.mixture.shape == (3, 5)
    assert np.all(np.asarray(res.value) >= np.asarray(res.screened_value))


def test_bad_search_arguments_are_refused():
    score = peaked_score(np.full(5, 0.2), jnp.zeros(3))
    with pytest.raises(ValueError, match=r"fidelities must be \[F, 2\]"):
        optimize.maximize(score, jax.random.key(0), jnp.zeros((3, 3)), 5)
    with pytest.raises(ValueError, match="top_k >= 1"):
        optimize.maximize(score, jax.random.key(0), jnp.zeros((3, 2)), 5, top_k=0)


@pytest.mark.parametrize("k", [1, 4, 9])
def test_small_top_k_matches_lax_top_k_with_ties_and_minus_inf(k):
    rng = np.random.default_rng(k)
    values = rng.integers(0, 4, 40).astype(np.float64)  # many ties
    values[rng.choice(40, 10, replace=False)] = -np.inf
    for v in (values, np.full(12, -np.inf)):
        got_values, got_indices = optimize.small_top_k(jnp.asarray(v), k)
        want_values, want_indices = jax.lax.top_k(jnp.asarray(v), k)
        np.testing.assert_array_equal(got_values, want_values)
        np.testing.assert_array_equal(got_indices, want_indices)
        assert len(set(np.asarray(got_indices).tolist())) == k


def bounded_grid(seed, F=5, C=70):
    """Scores [F, C] under the bound ``mixture_bound[c] + offset[f]`` (some entries on it,
    some -inf, one NaN bound), as augmented EI is under its mixture's target EI."""
    rng = np.random.default_rng(seed)
    mixture_bound = rng.normal(0.0, 3.0, C)
    offset = rng.uniform(0.0, 2.0, F)
    slack = rng.exponential(1.0, (F, C)) * (rng.random((F, C)) < 0.8)
    values = mixture_bound[None] + offset[:, None] - slack
    values[rng.random((F, C)) < 0.05] = -np.inf
    mixture_bound[rng.integers(C)] = np.nan  # no bound known: must be scored
    return values, mixture_bound, offset


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("block_size,top_k", [(1, 1), (8, 4), (32, 3), (200, 2)])
def test_bounded_screen_keeps_the_full_screens_top_k(seed, block_size, top_k):
    values, mixture_bound, offset = bounded_grid(seed)
    full = jnp.asarray(values)
    screened = optimize.bounded_screen(
        lambda idx: full[:, idx], jnp.asarray(mixture_bound), jnp.asarray(offset), top_k, block_size
    )
    got = optimize.small_top_k(screened.ravel(), top_k)
    want = optimize.small_top_k(full.ravel(), top_k)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])
    scored = np.isfinite(np.asarray(screened))
    np.testing.assert_array_equal(np.asarray(screened)[scored], values[scored])
    # the NaN-bound mixture is always scored; with small blocks most mixtures are not
    assert np.array_equal(
        np.isfinite(values[:, np.isnan(mixture_bound)]), scored[:, np.isnan(mixture_bound)]
    )
    if block_size <= 8:
        assert scored.any(axis=0).sum() < values.shape[1] // 2


def test_bounded_screen_vmaps_and_stops_when_the_bound_is_tight():
    grids = [bounded_grid(seed) for seed in range(3)]
    values, bounds, offsets = (jnp.asarray(np.stack(a)) for a in zip(*grids, strict=True))
    run = jax.vmap(
        lambda v, b, o: optimize.bounded_screen(lambda idx: v[:, idx], b, o, top_k=2, block_size=4)
    )
    batched = run(values, bounds, offsets)
    for i in range(3):
        one = optimize.bounded_screen(
            lambda idx, i=i: values[i][:, idx], bounds[i], offsets[i], top_k=2, block_size=4
        )
        np.testing.assert_array_equal(
            optimize.small_top_k(batched[i].ravel(), 2)[1], optimize.small_top_k(one.ravel(), 2)[1]
        )
    # scores equal to their bounds, best mixture first: one block settles the top 2 of 70
    C = 70
    bound = jnp.linspace(0.0, -10.0, C)
    tight = optimize.bounded_screen(
        lambda idx: jnp.broadcast_to(bound[idx], (2, idx.shape[0])), bound, jnp.zeros(2), 2, 4
    )
    assert int(jnp.sum(jnp.isfinite(tight).any(axis=0))) == 4


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    num_domains=st.integers(2, 17),
    log_floor=st.floats(-8.0, -1.0),
    num_dust=st.integers(0, 16),
)
def test_drop_small_weights_zeroes_the_dust_and_keeps_the_rest_in_proportion(
    seed, num_domains, log_floor, num_dust
):
    """Weights below the floor become exactly 0, the largest always survives, the survivors
    keep their ratios, and the result is on the simplex (also when every weight is dust)."""
    floor = 10.0**log_floor
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(num_domains), size=3)
    # put some weights just below / at the floor, and one mixture entirely of dust
    w[:, : min(num_dust, num_domains)] *= floor
    w[2] = floor * rng.uniform(0.1, 0.9, num_domains)
    w = w / w.sum(1, keepdims=True)
    out = np.asarray(optimize.drop_small_weights(jnp.asarray(w), floor))
    np.testing.assert_allclose(out.sum(1), 1.0, rtol=1e-12)
    keep = (w >= floor) | (w == w.max(1, keepdims=True))
    assert np.all(out[~keep] == 0.0)
    assert np.all(out[keep] > 0.0)
    assert np.all(np.argmax(out, 1) == np.argmax(w, 1))
    for row_in, row_out, k in zip(w, out, keep, strict=True):
        np.testing.assert_allclose(row_out[k] / row_out[k].sum(), row_in[k] / row_in[k].sum())
    # a floor of 0 changes nothing
    np.testing.assert_allclose(optimize.drop_small_weights(jnp.asarray(w), 0.0), w, rtol=1e-12)
