import jax
import jax.numpy as jnp
import numpy as np
import pytest

import recipes_jax as rj

from .conftest import small_design

METRIC = "eval/RedPajamaStackExchange/CrossEntropyLoss"


@pytest.fixture(scope="module")
def noise_free_table(default_world):
    return small_design(default_world, runs=12, noise=0.0, cut=0.3)


@pytest.fixture(scope="module")
def sim(noise_free_table):
    return rj.Simulator(noise_free_table, METRIC)


def test_reproduces_a_noise_free_table_at_its_knots(noise_free_table, sim):
    values, mask = noise_free_table.curve(METRIC)
    r, j = np.nonzero(mask)
    pred = np.asarray(
        sim(noise_free_table.mixtures[r], noise_free_table.scales[r], noise_free_table.steps[j])
    )
    rel = np.abs(pred - values[r, j]) / np.abs(values[r, j])
    assert rel.max() < 1e-3, f"worst relative error {rel.max():.2e}"


def test_interpolates_between_knots_towards_the_truth(default_world, noise_free_table, sim, rng):
    """Between scales and steps the simulator stays close to the world it was drawn from."""
    truth = jax.jit(default_world.truth(METRIC))
    w = rng.dirichlet(np.ones(5), 400)
    m = np.full(400, 400.0)  # between the table's 150M and 1B
    s = np.full(400, 9_000.0)  # between step knots
    pred, true = np.asarray(sim(w, m, s)), np.asarray(truth(w, m, s))
    assert np.corrcoef(pred, true)[0, 1] > 0.8
    assert np.abs(pred - true).mean() < 0.1


def test_inputs_may_be_numpy_or_jax_and_shapes_broadcast(sim, rng):
    w = rng.dirichlet(np.ones(5), 7)
    a = sim(w, np.full(7, 150.0), np.full(7, 5_000))
    b = sim(jnp.asarray(w), jnp.full(7, 150.0), jnp.full(7, 5_000.0))
    c = sim(w, 150.0, 5_000)
    assert a.shape == (7,)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(a, c, rtol=1e-6)
    assert sim(w[0], 150.0, 5_000).shape == (1,)


def test_query_mixtures_are_renormalized_and_one_mixture_broadcasts(sim, rng):
    """A mixture whose sum is off by less than the tolerance is accepted, so it must get the
    answer of the renormalized mixture (it got the raw weights' answer, 1e-3 off); one mixture
    at several scales is a batch, and batches that do not match say which argument is off."""
    w = rng.dirichlet(np.ones(5), 4)
    np.testing.assert_allclose(sim(w * 1.009, 150.0, 5_000), sim(w, 150.0, 5_000), rtol=1e-6)
    m, s = np.array([60.0, 150.0, 400.0]), np.array([2_000, 5_000, 9_000])
    np.testing.assert_allclose(sim(w[0], m, s), sim(np.repeat(w[:1], 3, 0), m, s), rtol=1e-6)
    with pytest.raises(ValueError, match=r"mixtures \(4, 5\), scales \(3,\) and steps \(3,\) do"):
        sim(w, m, s)
    with pytest.raises(ValueError, match="do not form one batch"):
        sim(w, np.full((4, 1), 150.0), 5_000)


def test_options_are_checked_however_they_are_set(sim):
    for bad in (-1.0, float("nan"), "loud", True):
        with pytest.raises(ValueError, match="noise_sd must be"):
            sim.with_options(noise_sd=bad)
    assert sim.with_options(noise_sd="table").noise_sd == pytest.approx(sim.info["noise_sd"])


def test_jit_and_vmap_give_the_eager_answer(sim, rng):
    w = rng.dirichlet(np.ones(5), 6)
    m = np.array([20.0, 60.0, 150.0, 400.0, 1000.0, 700.0])
    s = np.array([500.0, 2000.0, 9000.0, 18_500.0, 3500.0, 12_000.0])
    eager = np.asarray(sim(w, m, s))
    jitted = jax.jit(lambda sim_, w_, m_, s_: sim_(w_, m_, s_))(sim, w, m, s)  # a pytree argument
    vmapped = jax.vmap(lambda w_, m_, s_: sim(w_[None], m_[None], s_[None])[0])(w, m, s)
    np.testing.assert_allclose(jitted, eager, rtol=1e-5)
    np.testing.assert_allclose(vmapped, eager, rtol=1e-5)


def test_out_of_range_queries_raise_clamp_or_give_nan_under_jit(sim, rng):
    w = rng.dirichlet(np.ones(5), 2)
    with pytest.raises(ValueError, match="scale 5000M is outside the table's scales"):
        sim(w, np.array([150.0, 5000.0]), np.array([2000, 2000]))
    with pytest.raises(ValueError, match="query 1: 50 steps is outside"):
        sim(w, np.array([150.0, 150.0]), np.array([2000, 50]))
    with pytest.raises(ValueError, match="negative weight"):
        sim(np.array([[1.2, -0.2, 0, 0, 0]]), 150.0, 2000)
    with pytest.raises(ValueError, match="5 weights"):
        sim(np.array([[0.5, 0.5]]), 150.0, 2000)
    inside_jit = jax.jit(lambda w_, m_, s_: sim(w_, m_, s_))(
        w, jnp.array([150.0, 5000.0]), jnp.array([2000.0, 2000.0])
    )
    assert np.isfinite(inside_jit[0]) and np.isnan(inside_jit[1])
    clamped = sim.with_options(clamp=True)
    np.testing.assert_allclose(
        clamped(w, np.array([5000.0, 150.0]), np.array([18_500, 10.0])),
        sim(w, np.array([1000.0, 150.0]), np.array([18_500, 500])),
        rtol=1e-6,
    )
    assert sim.step_range(150.0) == (500, 18_500)


def test_observation_noise_is_an_option(sim, rng):
    noisy = sim.with_options(noise_sd=0.05)
    w = rng.dirichlet(np.ones(5), 2000)
    with pytest.raises(ValueError, match="pass key="):
        noisy(w, 150.0, 2000)
    diff = np.asarray(noisy(w, 150.0, 2000, key=jax.random.key(0)) - sim(w, 150.0, 2000))
    assert diff.std() == pytest.approx(0.05, rel=0.1)
    assert float(sim(w[:1], 150.0, 2000)[0]) == float(sim(w[:1], 150.0, 2000)[0])  # off by default


def test_float32_queries_match_float64(noise_free_table, sim, rng):
    with jax.enable_x64(True):
        sim64 = rj.Simulator(noise_free_table, METRIC)
        w = rng.dirichlet(np.ones(5), 50)
        y64 = np.asarray(sim64(w, 300.0, 7000.0))
        assert sim64.params.alpha.dtype == jnp.float64
    assert sim.params.alpha.dtype == jnp.float32
    y32 = np.asarray(sim(w, 300.0, 7000.0))
    np.testing.assert_allclose(y32, y64, rtol=1e-5)


def test_float32_queries_keep_their_precision_when_the_inputs_are_nearly_parallel(rng):
    """A small noise-free table whose fit puts the kernel's bias coordinate at its bound (100):
    every input is then nearly parallel, and a cosine near 1 kept only ~1e-7 absolute
    precision in float32, which cost 2e-4 relative error in the answers."""
    w = np.random.default_rng(0).dirichlet(np.ones(3), 20)
    scales, steps = np.repeat([20.0, 150.0], 10), np.array([100, 300, 1000])
    coef = np.linspace(-0.5, 0.5, 3)
    loss = lambda w, m, s: (
        2.0 + 3.0 * (m / 20) ** -0.1 * (s / 100) ** -0.15 + w @ coef + 0.3 * w[..., 0] ** 2
    )
    values = loss(w[:, None, :], scales[:, None], steps[None, :].astype(float))[..., None]
    table = rj.RunTable(
        mixtures=w, scales=scales, steps=steps, values=values, mask=None,
        domains=["a", "b", "c"], metrics=["loss"],
    )  # fmt: skip
    with jax.enable_x64(True):
        sim64 = rj.Simulator(table)
        q = rng.dirichlet(np.ones(3), 1000)
        m, s = rng.choice([20.0, 150.0], 1000), rng.integers(100, 1001, 1000)
        y64 = np.asarray(sim64(q, m, s))
    assert sim64.info["feature_bias"] > 50  # the case this test is about
    # the float32 Simulator a float32 construction gives: the same fit, its arrays cast
    arrays, static = sim64.tree_flatten()
    sim32 = rj.Simulator.tree_unflatten(static, jax.tree.map(lambda x: x.astype("float32"), arrays))
    assert sim32.params.alpha.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(sim32(q, m, s)), y64, rtol=2e-5)


def test_queries_are_the_gp_prediction_at_the_table_scales_and_knots(noise_free_table):
    """The query path splits the arc-cosine kernel into a linear part (summed at fitting time)
    and a bend; at a table scale and a step knot that must equal the GP's posterior mean
    written out with the whole kernel."""
    from recipes_jax.kernels import ArcCosine
    from recipes_jax.simulator.interpolant import mixture_scale_features

    with jax.enable_x64(True):
        sim64 = rj.Simulator(noise_free_table, METRIC)
        p = sim64.params
        w = np.random.default_rng(3).dirichlet(np.ones(5), 40)
        for t, j in [(0, 3), (1, len(p.log_steps) - 1), (2, len(p.log_steps) // 2)]:
            scale, steps = np.exp(p.log_scales[t]), np.exp(p.log_steps[j])
            features = mixture_scale_features(
                jnp.asarray(w),
                jnp.full(len(w), p.log_scales[t]),
                p.warp_power,
                p.inv_lengthscale,
                p.feature_center,
                p.feature_bias,
            )
            coef = p.scale_rows[t] * p.alpha[j]  # [R]
            want = p.intercept[j, t] + ArcCosine.gram(features, p.run_features) @ coef
            got = sim64(w, np.full(len(w), scale), np.full(len(w), steps))
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-9)


def test_metric_choice_is_checked(noise_free_table):
    with pytest.raises(ValueError, match="choose one with metric="):
        rj.Simulator(noise_free_table)
    with pytest.raises(KeyError, match="did you mean"):
        rj.Simulator(noise_free_table, "eval/RedPajamaStackExchange/CrossEntropy")


@pytest.mark.parametrize(
    "layout", ["one scale, one step", "one scale, many steps", "many scales, one step"]
)
def test_single_scale_and_single_step_tables_work(layout, rng):
    K, R = 4, 30
    w = rng.dirichlet(np.ones(K), R)
    f = lambda w, m, s: 3.0 + np.log(w[:, 0] + 0.05) * 0.3 - 0.1 * np.log(m) - 0.2 * np.log(s)
    if layout == "one scale, one step":
        scales, steps = np.full(R, 1.0), np.array([1000])
    elif layout == "one scale, many steps":
        scales, steps = np.full(R, 60.0), np.array([100, 300, 1000, 3000])
    else:
        scales, steps = np.repeat([20.0, 60.0, 150.0], R // 3), np.array([1000])
    values = np.stack([f(w, scales, np.full(R, s)) for s in steps], axis=1)[:, :, None]
    table = rj.RunTable(
        mixtures=w,
        scales=scales,
        steps=steps,
        values=values,
        mask=None,
        domains=list("abcd"),
        metrics=["loss"],
    )
    sim = rj.Simulator(table)
    q = rng.dirichlet(np.ones(K), 20)
    m = np.full(20, scales[0])
    s = np.full(20, float(steps[-1]))
    pred = np.asarray(sim(q, m, s))
    assert np.isfinite(pred).all()
    assert np.corrcoef(pred, f(q, m, s))[0, 1] > 0.95


@pytest.mark.parametrize("layout", ["each scale at its own step", "runs at different steps"])
def test_tables_of_final_values_only_work(layout, rng):
    """Runs that report one value each (their final one), at steps that differ between scales
    or between runs, leave no learning curve to fit; construction used to crash on them."""
    K, R = 3, 36
    w = rng.dirichlet(np.ones(K), R)
    f = lambda w, m, s: 3.0 + np.log(w[:, 0] + 0.05) * 0.3 - 0.1 * np.log(m) - 0.2 * np.log(s)
    steps = np.array([1000, 3000, 10_000])
    if layout == "each scale at its own step":
        scales, at = np.repeat([20.0, 60.0, 150.0], R // 3), np.repeat([0, 1, 2], R // 3)
    else:
        scales, at = np.full(R, 60.0), rng.integers(0, 3, R)
    values = np.full((R, 3, 1), np.nan)
    values[np.arange(R), at, 0] = f(w, scales, steps[at])
    table = rj.RunTable(
        mixtures=w, scales=scales, steps=steps, values=values, mask=None,
        domains=list("abc"), metrics=["loss"],
    )  # fmt: skip
    sim = rj.Simulator(table)
    assert np.isfinite(sim.info["noise_sd"])
    # noise-free runs are reproduced (to within 1% of the metric's spread over mixtures, ~0.9,
    # where one run per step leaves the scale's curve and the runs' offsets confounded)
    atol = 1e-3 if layout == "each scale at its own step" else 1e-2
    np.testing.assert_allclose(sim(w, scales, steps[at]), values[np.arange(R), at, 0], atol=atol)
    q = rng.dirichlet(np.ones(K), 20)
    m, s = np.full(20, scales[-1]), np.full(20, float(steps[at[-1]]))
    assert np.corrcoef(np.asarray(sim(q, m, s)), f(q, m, s))[0, 1] > 0.95


def test_a_domain_no_run_uses_is_ignored_with_a_warning(rng):
    """Runs that never use a domain say nothing about it. The fit cannot learn its lengthscale,
    and the arc-cosine kernel grows with |x|: before this was handled, a query putting weight
    on such a domain got an unbounded answer (on Olmix's real runs, -5.3 for a task whose
    values lie in 1.3-1.8). Now the domain is named in a warning and ``info``, and queries
    answer from their other weights."""
    R = 40
    w = np.zeros((R, 4))
    w[:, :3] = rng.dirichlet(np.ones(3), R)  # domain "d" is never used
    f = lambda w: 2.0 + 0.5 * np.sqrt(w[:, 0]) - 0.3 * w[:, 1] ** 2
    table = rj.RunTable(
        mixtures=w,
        scales=np.full(R, 30.0),
        steps=np.array([1000]),
        values=f(w)[:, None, None],
        mask=None,
        domains=list("abcd"),
        metrics=["loss"],
    )
    with pytest.warns(UserWarning, match=r"'d' \(always 0\).*ignores their weights"):
        sim = rj.Simulator(table)
    assert sim.info["unvaried_domains"] == ["d"]
    assert sim.info["lengthscale"][3] == float("inf")
    assert np.isfinite(sim.info["lengthscale"][:3]).all()
    q = rng.dirichlet(np.ones(4), 200)
    q[:, 3] = np.linspace(0.0, 0.9, 200)
    q[:, :3] *= ((1 - q[:, 3]) / q[:, :3].sum(1))[:, None]
    pred = np.asarray(sim(q, 30.0, 1000))
    values = f(w)
    spread = values.max() - values.min()
    assert np.isfinite(pred).all()
    assert values.min() - spread <= pred.min() and pred.max() <= values.max() + spread
    # the other weights still decide the answer
    on_table = rng.dirichlet(np.ones(3), 50)
    pred_on = np.asarray(sim(np.pad(on_table, ((0, 0), (0, 1))), 30.0, 1000))
    assert np.corrcoef(pred_on, f(on_table))[0, 1] > 0.95


def test_olmix_runs_load_and_a_run_using_an_unseen_domain_gets_a_sane_answer():
    # Real runs with many sparse domains: 127 runs over 24 domains. One run alone uses
    # 'fashion_and_beauty'; fitted without it, the simulator must still answer that run's
    # mixture sanely (it answered -5.3 for arc_easy, whose values lie in 1.27-1.79, before
    # unvaried domains were ignored).
    from .conftest import data_file

    d = data_file("olmix")
    table = rj.RunTable.from_wide_csvs(
        d / "dclm_ratios.csv",
        d / "dclm_metrics.csv",
        run_column="run",
        scale="30M",
        step=1,
        ignore_columns=["", "name", "index"],
    )
    assert (table.num_runs, len(table.domains), table.num_metrics) == (127, 24, 110)
    task = "arc_easy:rc::olmes"
    uses = table.mixtures[:, table.domains.index("fashion_and_beauty")] > 0
    assert uses.sum() == 1
    with pytest.warns(UserWarning, match="'fashion_and_beauty' \\(always 0\\)"):
        sim = rj.Simulator(table.select_runs(~uses), task)
    y = table.curve(task)[0][:, 0]
    pred = float(np.asarray(sim(table.mixtures[uses], 30.0, 1))[0])
    assert abs(pred - y[uses][0]) < y.std(), (pred, y[uses][0], y.std())


def test_regmix_simulator_predicts_held_out_mixtures():
    # Real runs: 512 training mixtures over 17 Pile domains -> the 256 test mixtures. Guards
    # the interpolant's hyperparameter fit: a line search that stalled at its start once
    # dropped this to R^2 0.76 without any other test noticing.
    from scipy.stats import spearmanr

    from .conftest import data_file

    d = data_file("regmix", "data")
    train = rj.RunTable.from_wide_csvs(
        d / "train_mixture_1m.csv", d / "train_pile_loss_1m.csv", scale="1M", step=1
    )
    test = rj.RunTable.from_wide_csvs(
        d / "test_mixture_1m.csv", d / "test_pile_loss_1m.csv", scale="1M", step=1
    )
    metric = "metric/the_pile_pile_cc_val_loss"
    sim = rj.Simulator(train, metric)
    pred = np.asarray(sim(test.mixtures, 1.0, 1), np.float64)
    true = test.curve(metric)[0][:, 0]
    r2 = 1 - np.mean((pred - true) ** 2) / np.var(true)
    assert r2 >= 0.97, r2  # issue 2's goal; measured 0.989
    assert spearmanr(pred, true)[0] >= 0.99
