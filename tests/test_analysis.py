"""analysis: the dense optimum search, regret, step-function curves, speedup and its bootstrap,
JSON conversion and the plots."""

from __future__ import annotations

import json
import math
import warnings
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recipes_jax import analysis as an

TARGET = (1000.0, 19_500)
W_STAR = np.array([0.1, 0.2, 0.3, 0.15, 0.25])
CURVATURE = np.array([1.0, 2.0, 3.0, 4.0, 5.0])


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def bowl(w, m, s):
    """Quadratic with its minimum 1.0 at the interior mixture W_STAR; ignores the fidelity."""
    w = jnp.asarray(w)
    center = jnp.asarray(W_STAR, w.dtype)
    return 1.0 + jnp.sum(jnp.asarray(CURVATURE, w.dtype) * (w - center) ** 2, axis=-1) + 0 * m


def edge(w, m, s):
    """Squared distance to a point outside the simplex whose projection on it is (.5, .5, 0, 0)."""
    w = jnp.asarray(w)
    return jnp.sum((w - jnp.asarray([0.6, 0.6, -0.1, -0.1], w.dtype)) ** 2, axis=-1)


def linear(w, m, s):
    """Minimum at the vertex e_2 (the smallest coefficient)."""
    w = jnp.asarray(w)
    return w @ jnp.asarray([3.0, 2.0, 0.5, 4.0], w.dtype)


# ----------------------------------------------------------------------------- find_optimum


def test_find_optimum_interior_at_default_size(x64):
    opt = an.find_optimum(bowl, 5, *TARGET, jax.random.key(0))
    assert opt.num_points >= 1_000_000
    assert opt.mixture.shape == (5,) and opt.mixture.dtype == np.float64
    np.testing.assert_allclose(opt.mixture.sum(), 1.0, atol=1e-12)
    np.testing.assert_allclose(opt.mixture, W_STAR, atol=1e-3)
    assert opt.value == pytest.approx(1.0, abs=1e-9)
    # a million uniform points alone land about 1e-4 above the minimum; refinement must improve
    assert opt.screened_value > opt.value
    assert opt.screened_value - 1.0 < 1e-2


@pytest.mark.parametrize(
    ("truth", "expected"),
    [(edge, [0.5, 0.5, 0.0, 0.0]), (linear, [0.0, 0.0, 1.0, 0.0])],
    ids=["edge", "vertex"],
)
def test_find_optimum_on_the_boundary(x64, truth, expected):
    opt = an.find_optimum(truth, 4, *TARGET, jax.random.key(1), num_points=20_000)
    np.testing.assert_allclose(opt.mixture, expected, atol=1e-3)
    assert opt.value == pytest.approx(float(truth(jnp.asarray([expected]), 0, 0)[0]), abs=1e-6)
    assert opt.value <= opt.screened_value
    # the optimum's face is reached exactly, not approached by a softmax
    assert np.all(opt.mixture[np.asarray(expected) == 0.0] == 0.0), opt.mixture


def test_find_optimum_maximize_and_no_refinement(x64):
    flipped = lambda w, m, s: -bowl(w, m, s)
    opt = an.find_optimum(flipped, 5, *TARGET, jax.random.key(2), maximize=True, num_points=5000)
    np.testing.assert_allclose(opt.mixture, W_STAR, atol=1e-3)
    assert opt.value == pytest.approx(-1.0, abs=1e-8)
    assert opt.value >= opt.screened_value
    raw = an.find_optimum(bowl, 5, *TARGET, jax.random.key(2), num_points=5000, refine_steps=0)
    assert raw.value == raw.screened_value
    assert raw.num_points == 5000 + 5000 // 8 + 5


def test_find_optimum_ignores_non_finite_and_is_deterministic(x64):
    def holey(w, m, s):
        return jnp.where(w[:, 0] > 0.5, jnp.nan, bowl(w, m, s))

    a = an.find_optimum(holey, 5, *TARGET, jax.random.key(3), num_points=5000)
    b = an.find_optimum(holey, 5, *TARGET, jax.random.key(3), num_points=5000)
    np.testing.assert_array_equal(a.mixture, b.mixture)
    assert np.isfinite(a.value) and a.value == pytest.approx(1.0, abs=1e-8)
    with pytest.raises(ValueError, match="non-finite at every"):
        an.find_optimum(lambda w, m, s: jnp.full(w.shape[0], jnp.nan), 3, *TARGET,
                        jax.random.key(0), num_points=100)  # fmt: skip


def test_find_optimum_float32_without_x64():
    opt = an.find_optimum(bowl, 5, *TARGET, jax.random.key(0), num_points=20_000)
    assert opt.mixture.dtype == np.float32
    np.testing.assert_allclose(opt.mixture, W_STAR, atol=1e-3)


def test_find_optimum_bad_arguments():
    with pytest.raises(ValueError, match="num_domains"):
        an.find_optimum(bowl, 0, *TARGET, jax.random.key(0))
    with pytest.raises(ValueError, match="num_points"):
        an.find_optimum(bowl, 5, *TARGET, jax.random.key(0), num_points=0)


# ----------------------------------------------------------------------------- regret


def test_regret_is_zero_at_the_optimum_and_positive_elsewhere(x64, rng):
    w = rng.dirichlet(np.ones(5), (3, 7))
    w[1, 2] = W_STAR
    r = an.regret(bowl, w, *TARGET, 1.0)
    assert r.shape == (3, 7) and r.dtype == np.float64
    assert r[1, 2] == pytest.approx(0.0, abs=1e-15)
    expected = np.sum(CURVATURE * (w - W_STAR) ** 2, axis=-1)
    np.testing.assert_allclose(r, expected, rtol=1e-12, atol=1e-15)
    # maximizing -bowl: optimum -1, regret = optimum - value, the same numbers
    flipped = lambda w, m, s: -bowl(w, m, s)
    np.testing.assert_allclose(an.regret(flipped, w, *TARGET, -1.0, maximize=True), r, atol=1e-15)
    # not clipped: an optimum value that is too good shows up as negative regret, and beyond
    # what a search could miss (1e-4 x |optimum|) it warns: a wrong direction, say
    with pytest.warns(UserWarning, match="maximize=False right"):
        assert an.regret(bowl, W_STAR, *TARGET, 1.001)[()] == pytest.approx(-1e-3)
    with pytest.warns(UserWarning, match="accuracies need maximize=True"):
        an.regret(flipped, w, *TARGET, -1.0)  # maximized metric scored as a loss
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        an.regret(bowl, W_STAR, *TARGET, 1.0 + 1e-5)  # a search error this small is quiet


def test_regret_batches_and_shapes(x64, rng):
    w = rng.dirichlet(np.ones(5), 50)
    np.testing.assert_allclose(
        an.regret(bowl, w, *TARGET, 1.0, batch=16), an.regret(bowl, w, *TARGET, 1.0), atol=0
    )
    with pytest.raises(ValueError, match=r"\[\.\.\., K\]"):
        an.regret(bowl, np.float64(0.3), *TARGET, 1.0)


# ----------------------------------------------------------------------------- curves


def test_regret_at_costs_is_a_step_function():
    cost = np.array([[0.1, 0.3, 0.3, 0.6], [0.2, 0.25, 0.25, 0.25]])
    regret = np.array([[5.0, 4.0, 3.0, 2.0], [1.0, 0.5, 9.0, 9.0]])
    active = np.array([[True] * 4, [True, True, False, False]])
    grid = np.array([0.05, 0.1, 0.2, 0.3, 0.59, 0.6, 1.0])
    out = an.regret_at_costs(cost, regret, grid, active=active)
    inf = np.inf
    np.testing.assert_array_equal(out, [[inf, 5, 5, 3, 3, 2, 2], [inf, inf, 1, 0.5, 0.5, 0.5, 0.5]])
    # without the mask the inactive asks' regret (9) counts once their cost is reached
    assert an.regret_at_costs(cost, regret, grid)[1, 3] == 9
    # one seed: [T] -> [G]
    np.testing.assert_array_equal(an.regret_at_costs(cost[0], regret[0], grid), out[0])


def test_regret_at_costs_unsorted_costs_and_errors():
    # per-ask costs (trace.proposals.cost) where cumulative ones belong gave a speedup of 19.8
    # for 3.97 without a word; costs must not drop along a seed's active asks
    with pytest.raises(ValueError, match=r"seed 1's cost drops to 0.2 at ask 1 .*cumulative sum"):
        an.regret_at_costs([[0.1, 0.2], [0.5, 0.2]], np.ones((2, 2)), [0.1, 0.3, 0.6, 1.0])
    # equal costs (a free ask) and inactive asks (their cost is ignored) are fine
    out = an.regret_at_costs(
        [0.5, 0.5, 0.1, 0.9], [3.0, 2.0, 7.0, 1.0], [0.1, 0.6, 1.0], active=[1, 1, 0, 1]
    )
    np.testing.assert_array_equal(out, [np.inf, 2.0, 1.0])
    with pytest.raises(ValueError, match="same shape"):
        an.regret_at_costs(np.ones((2, 3)), np.ones((2, 4)), [1.0])
    with pytest.raises(ValueError, match="NaN"):
        an.regret_at_costs([0.1, np.nan], [1.0, 1.0], [1.0])
    with pytest.raises(ValueError, match="ascending"):
        an.regret_at_costs([0.1], [1.0], [1.0, 0.5])
    with pytest.raises(ValueError, match=r"\[S, T\]"):
        an.regret_at_costs(np.ones((1, 2, 3)), np.ones((1, 2, 3)), [1.0])


def test_regret_curves_from_a_trace(x64, rng):
    w = rng.dirichlet(np.ones(5), (2, 3))
    trace = SimpleNamespace(
        cost=np.array([[0.1, 0.2, 0.3], [0.2, 0.4, 0.4]]),
        recommendation=w,
        active=np.array([[True, True, True], [True, True, False]]),
    )
    grid = np.array([0.15, 0.35, 1.0])
    r = an.regret(bowl, w, *TARGET, 1.0)
    out = an.regret_curves(trace, bowl, grid, *TARGET, 1.0)
    np.testing.assert_allclose(out, [[r[0, 0], r[0, 2], r[0, 2]], [np.inf, r[1, 0], r[1, 1]]])


def test_cost_grid():
    g = an.cost_grid(2.0, num=5, min_cost=0.02)
    np.testing.assert_allclose(g, [0.02, 0.02 * 10**0.5, 0.2, 0.2 * 10**0.5, 2.0])
    assert an.cost_grid(3.0)[0] == pytest.approx(3e-3) and an.cost_grid(3.0).shape == (200,)
    np.testing.assert_array_equal(an.cost_grid(1.0, num=1), [1.0])
    for bad in [dict(max_cost=0.0), dict(max_cost=1.0, min_cost=2.0), dict(max_cost=1, num=0)]:
        with pytest.raises(ValueError):
            an.cost_grid(**bad)


def test_quantile_curves_match_numpy_and_handle_inf(rng):
    curves = rng.normal(size=(11, 6))
    q = an.quantile_curves(curves)
    assert set(q) == {"median", "q10", "q25", "q50", "q75", "q90"}
    np.testing.assert_allclose(q["q25"], np.quantile(curves, 0.25, axis=0))
    np.testing.assert_allclose(q["median"], np.median(curves, axis=0))
    inf = np.inf
    with_inf = np.array([[1.0, 1.0, inf, 1.0], [2.0, inf, inf, 3.0], [inf, inf, inf, np.nan]])
    q = an.quantile_curves(with_inf, quantiles=(0.25, 0.75))
    np.testing.assert_array_equal(q["median"], [2.0, inf, inf, np.nan])
    np.testing.assert_array_equal(q["q25"], [1.5, 1.0 + inf, inf, np.nan])
    np.testing.assert_array_equal(q["q75"], [inf, inf, inf, np.nan])
    with pytest.raises(ValueError, match=r"\[S, G\]"):
        an.quantile_curves(np.ones(3))


def test_cost_to_reach():
    grid = np.array([1.0, 2.0, 3.0, 4.0])
    curve = np.array([5.0, 3.0, 4.0, 1.0])
    assert an.cost_to_reach(grid, curve, 3.0) == 2.0
    assert an.cost_to_reach(grid, curve, 3.5) == 2.0  # first time, though it gets worse again
    assert an.cost_to_reach(grid, curve, 1.0) == 4.0
    assert an.cost_to_reach(grid, curve, 0.5) == math.inf
    curves = np.stack([curve, [np.inf, np.inf, 0.0, 0.0]])
    np.testing.assert_array_equal(an.cost_to_reach(grid, curves, 3.0), [2.0, 3.0])
    np.testing.assert_array_equal(an.cost_to_reach(grid, curves, [0.5, 6.0]), [math.inf, 3.0])
    # no recommendation yet (+inf) reaches no level, not even +inf: a baseline that never
    # recommended anything used to "reach" its own level of inf at the first grid cost
    assert an.cost_to_reach(grid, np.full(4, np.inf), np.inf) == math.inf
    assert an.cost_to_reach(grid, [np.inf, np.inf, 7.0, 1.0], np.inf) == 3.0
    with pytest.raises(ValueError, match="G = 4"):
        an.cost_to_reach(grid, curve[:3], 1.0)


# ----------------------------------------------------------------------------- speedup


def synthetic_runs(rng, seeds, asks=40):
    """B-like runs: per-seed random costs and noisy decreasing regrets [S, T]."""
    cost = np.cumsum(rng.uniform(0.005, 0.05, (seeds, asks)), axis=1)
    regret = np.minimum.accumulate(rng.lognormal(0, 0.5, (seeds, asks)) / cost, axis=1)
    return cost, regret


def test_speedup_of_a_method_at_half_the_cost_is_two(rng):
    cost_b, regret_b = synthetic_runs(rng, 30)
    # A: B's runs at half the cost of every ask, so A's median curve at cost c is exactly B's
    # at 2c up to half of B's budget; after that A goes on improving with the budget it saved
    more = cost_b.max() / 2 + np.cumsum(np.full((30, 10), 0.01), axis=1)
    cost_a = np.concatenate([cost_b / 2, more], axis=1)
    regret_a = np.concatenate([regret_b, regret_b[:, -1:] * np.linspace(0.9, 0.5, 10)], axis=1)
    grid = 2.0 ** (np.arange(-300, 60) / 32)  # doubling a cost is exactly 32 grid steps
    out = an.speedup(cost_a, regret_a, cost_b, regret_b, grid=grid, levels=[0.5, 2.0])
    assert out["speedup"] == pytest.approx(2.0)
    assert out["cost_b"] == pytest.approx(2 * out["cost_a"])
    assert out["level"] == pytest.approx(np.median(regret_b[:, -1]))
    assert out["ci_low"] < 2.0 < out["ci_high"]
    assert 1.0 < out["ci_low"] and out["ci_high"] < 4.0
    assert [e["speedup"] for e in out["levels"]] == pytest.approx([2.0, 2.0])
    assert all(e["ci_low"] <= 2.0 <= e["ci_high"] for e in out["levels"])
    assert out["num_seeds_a"] == out["num_seeds_b"] == 30 and out["num_bootstrap"] == 1000


def test_speedup_of_identical_methods_is_one_and_deterministic(rng):
    cost, regret = synthetic_runs(rng, 40)
    out = an.speedup(cost, regret, cost, regret, num_bootstrap=300, seed=7)
    assert out["speedup"] == 1.0 and out["cost_a"] == out["cost_b"]
    assert out["ci_low"] <= 1.0 <= out["ci_high"]
    assert out == an.speedup(cost, regret, cost, regret, num_bootstrap=300, seed=7)
    other = an.speedup(cost, regret, cost, regret, num_bootstrap=300, seed=8)
    assert (other["ci_low"], other["ci_high"]) != (out["ci_low"], out["ci_high"])


def test_speedup_when_a_never_reaches_the_level(rng):
    cost, regret = synthetic_runs(rng, 20)
    out = an.speedup(cost, regret + 100.0, cost, regret, num_bootstrap=50, levels=[-1.0])
    assert out["speedup"] == 0.0 and out["cost_a"] == math.inf and np.isfinite(out["cost_b"])
    assert out["ci_low"] == out["ci_high"] == 0.0
    never = out["levels"][0]  # neither reaches a negative regret
    assert math.isnan(never["speedup"]) and math.isnan(never["ci_low"])
    out = an.speedup(cost, regret, cost, regret + 100.0, num_bootstrap=0, levels=[1e-9])
    assert math.isnan(out["ci_low"])
    # B never recommended anything (its final median is +inf): A's lead is infinite, not 1x
    nothing = np.full_like(regret, np.inf)
    assert an.speedup(cost, regret, cost, nothing, num_bootstrap=20)["speedup"] == math.inf
    assert math.isnan(an.speedup(cost, nothing, cost, nothing, num_bootstrap=20)["speedup"])


def test_speedup_refuses_nan_regrets_and_can_pair_the_seeds(rng):
    cost, regret = synthetic_runs(rng, 16)
    bad = regret.copy()
    bad[3, 10:] = np.nan  # gave speedup NaN with a finite interval from the resamples without it
    for args in ((cost, regret, cost, bad), (cost, bad, cost, regret)):
        with pytest.raises(ValueError, match=r"is NaN at seed\(s\) \[3\]"):
            an.speedup(*args)
    # B needs exactly twice A's cost on every seed, and seeds differ in difficulty: pairing the
    # seeds cancels the difficulty, resampling them independently does not
    hard = rng.uniform(0.3, 3.0, (16, 1))
    steps = np.tile(np.arange(1.0, 161.0), (16, 1))  # A goes on to 160, B stops at 40 asks
    a, b = (steps, hard / steps), (2 * steps[:, :40], hard / steps[:, :40])
    grid = 2.0 ** (np.arange(-40, 320) / 32)  # doubling a cost is exactly 32 grid steps
    paired = an.speedup(*a, *b, grid=grid, paired=True, seed=1)
    independent = an.speedup(*a, *b, grid=grid, seed=1)
    assert paired["speedup"] == independent["speedup"] == pytest.approx(2.0)
    assert paired["ci_low"] == pytest.approx(2.0) and paired["ci_high"] == pytest.approx(2.0)
    assert independent["ci_low"] < 1.6 and independent["ci_high"] > 2.5
    assert paired["paired"] is True and independent["paired"] is False
    with pytest.raises(ValueError, match="as many seeds"):
        an.speedup(*a, b[0][:8], b[1][:8], paired=True)


def test_speedup_bootstrap_matches_a_plain_loop(rng):
    cost_a, regret_a = synthetic_runs(rng, 10, asks=20)
    cost_b, regret_b = synthetic_runs(rng, 9, asks=12)
    regret_a[3, :4] = np.inf
    grid = an.cost_grid(1.5, num=64, min_cost=1e-3)
    fixed = 10.0
    out = an.speedup(
        cost_a, regret_a, cost_b, regret_b, grid=grid, num_bootstrap=200, seed=3, levels=[fixed]
    )
    curves_a = an.regret_at_costs(cost_a, regret_a, grid)
    curves_b = an.regret_at_costs(cost_b, regret_b, grid)
    gen = np.random.default_rng(3)
    ia, ib = gen.integers(0, 10, (200, 10)), gen.integers(0, 9, (200, 9))
    ratios, fixed_ratios = [], []
    for r in range(200):
        med_a = np.median(curves_a[ia[r]], axis=0)
        med_b = np.median(curves_b[ib[r]], axis=0)
        for level, into in ((med_b[-1], ratios), (fixed, fixed_ratios)):
            with np.errstate(invalid="ignore", divide="ignore"):
                into.append(
                    an.cost_to_reach(grid, med_b, level) / an.cost_to_reach(grid, med_a, level)
                )
    for got, want in ((out, ratios), (out["levels"][0], fixed_ratios)):
        want = np.array(want)
        assert np.all(np.isfinite(want)) and np.ptp(want) > 0
        low, high = np.quantile(want, [0.025, 0.975])
        assert got["ci_low"] == pytest.approx(low) and got["ci_high"] == pytest.approx(high)


def test_speedup_rejects_bad_shapes(rng):
    cost, regret = synthetic_runs(rng, 3)
    with pytest.raises(ValueError, match=r"cost_a must be \[S, T\]"):
        an.speedup(cost[0], regret[0], cost, regret)
    with pytest.raises(ValueError, match="same shape"):
        an.speedup(cost, regret[:, :-1], cost, regret)


# ----------------------------------------------------------------------------- JSON and plots


def test_to_jsonable():
    opt = an.Optimum(np.array([0.5, 0.5]), 1.5, 10, np.float32(2.0))
    data = {
        "opt": opt,
        "x": jnp.array([1.0, 2.0]),
        "bad": np.array([np.nan, np.inf, -np.inf, 1.0]),
        "flags": np.array([True, False]),
        1: (np.int64(3), None),
    }
    out = an.to_jsonable(data)
    assert out == {
        "opt": {"mixture": [0.5, 0.5], "value": 1.5, "num_points": 10, "screened_value": 2.0},
        "x": [1.0, 2.0],
        "bad": [None, "inf", "-inf", 1.0],
        "flags": [True, False],
        "1": [3, None],
    }
    json.dumps(out, allow_nan=False)
    with pytest.raises(TypeError):
        an.to_jsonable(object())


def test_plot_regret_writes_png_and_json(tmp_path, rng):
    pytest.importorskip(
        "matplotlib", reason="plots need matplotlib: pip install 'recipes-jax[plot]'"
    )
    cost, regret = synthetic_runs(rng, 7)
    grid = an.cost_grid(cost.max(), num=50, min_cost=1e-3)
    curves = an.regret_at_costs(cost, regret, grid)
    curves[0, 10:] = 0.0  # exact zeros must not break the log axis
    path = an.plot_regret(
        {"a": (grid, curves), "b": (grid, curves * 2)}, tmp_path / "sub" / "r.png", title="t"
    )
    assert path == tmp_path / "sub" / "r.png" and path.read_bytes()[:4] == b"\x89PNG"
    data = json.loads(path.with_suffix(".json").read_text())
    assert data["title"] == "t" and set(data["methods"]) == {"a", "b"}
    median = an.quantile_curves(curves)["median"]
    got = np.array([np.inf if v == "inf" else v for v in data["methods"]["a"]["median"]])
    np.testing.assert_allclose(got, median)
    assert data["methods"]["b"]["num_seeds"] == 7
    with pytest.raises(ValueError, match="json"):
        an.plot_regret({"a": (grid, curves)}, tmp_path / "r.json")
    with pytest.raises(ValueError, match=r"regrets must be \[S, 50\]"):
        an.plot_regret({"a": (grid, curves[:, :3])}, tmp_path / "x.png")


def test_plot_fidelities_writes_png_and_json(tmp_path):
    pytest.importorskip(
        "matplotlib", reason="plots need matplotlib: pip install 'recipes-jax[plot]'"
    )
    from recipes_jax.space import Space

    space = Space.paper()
    scale = np.array([20.0, 60.0, 150.0, 1000.0, 1000.0])
    steps = np.array([100, 1000, 5000, 19_500, 19_500])
    cost = np.cumsum(np.asarray(space.cost(scale, steps)))
    active = np.array([True, True, True, True, False])
    path = an.plot_fidelities(scale, steps, cost, tmp_path / "f.png", space, active=active)
    assert path.read_bytes()[:4] == b"\x89PNG"
    data = json.loads(path.with_suffix(".json").read_text())
    assert data["scale"] == scale.tolist() and data["active"] == active.tolist()
    assert data["space"]["target"] == [1000.0, 19_500]
    with pytest.raises(ValueError, match="one campaign"):
        an.plot_fidelities(scale[None], steps[None], cost[None], tmp_path / "g.png")


def test_plot_ternary_draws_finite_values_and_says_when_there_are_too_few():
    pytest.importorskip(
        "matplotlib", reason="plots need matplotlib: pip install 'recipes-jax[plot]'"
    )
    from matplotlib.figure import Figure

    grid = an.simplex_grid(12)
    values = grid @ np.array([1.0, 2.0, 3.0])
    values[:5] = np.nan  # left blank
    ax = Figure().subplots()
    an.plot_ternary(ax, grid, values, labels=("a", "b", "c"), points=grid[:3], star=grid[7])
    # matplotlib's "x and y arrays must have a length of at least 3" said nothing of NaN
    values[:-2] = np.nan
    with pytest.raises(ValueError, match=r"at least 3 finite values.*2 of 91 are finite"):
        an.plot_ternary(Figure().subplots(), grid, values)
