"""Edge cases of the public API that once failed obscurely (each found by an audit that used
the library as a notebook researcher would): wrong environments, legacy keys, degenerate
plots, float32 budgets, and arguments that used to be accepted and then misbehaved."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import recipes_jax as rj
from recipes_jax import analysis

# float32 makes space.cost(*target) 1.0000001 here (two ulps above 1)
SPACE = rj.Space(
    domains=["a", "b", "c"], scales=[20.0, 60.0, 150.0], steps=[100, 200, 400, 800],
    target=(150.0, 800),
)  # fmt: skip


def env(w, m, s):
    return jnp.sum((w - jnp.array([0.2, 0.3, 0.5])) ** 2, axis=-1)


def test_a_budget_of_n_target_runs_plans_n_runs_in_float32():
    assert float(SPACE.cost(*SPACE.target)) != 1.0  # the rounding this test is about
    for make in (rj.random_search, rj.single_fidelity_bo):
        assert [make(SPACE).default_num_asks(b) for b in (1.0, 9.0, 50.0, 200.0)] == [1, 9, 50, 200]
    trace = rj.run_campaign(rj.random_search(SPACE), env, 50.0, jax.random.key(0))
    assert trace.cost.shape == (50,) and bool(trace.active.all())


def test_an_environment_of_the_wrong_shape_is_named():
    wrong = lambda w, m, s: env(w, m, s)[:, None]  # [B, 1] instead of [B]
    with pytest.raises(ValueError, match=r"env must return one value per query.*not \(1,\)"):
        rj.run_campaign(rj.random_search(SPACE), wrong, 2.0, jax.random.key(0))


def test_sweeps_take_legacy_keys_and_refuse_none():
    strategy = rj.random_search(SPACE)
    typed = rj.sweep(strategy, env, 2.0, jax.random.split(jax.random.key(0), 2))
    legacy = rj.sweep(strategy, env, 2.0, jax.random.split(jax.random.PRNGKey(0), 2))
    np.testing.assert_array_equal(typed.values, legacy.values)
    with pytest.raises(ValueError, match="keys is empty"):
        rj.sweep(strategy, env, 2.0, jax.random.split(jax.random.key(0), 0))


@pytest.mark.parametrize("make", [rj.random_search, rj.hyperband])
def test_tell_takes_one_value_per_run(make):
    strategy = make(SPACE)
    proposal, state = strategy.ask(strategy.init(jax.random.key(0)), jax.random.key(1))
    for value in (jnp.array([1.0]), jnp.array([1.0, 2.0])):
        with pytest.raises(ValueError, match="tell takes one value per run"):
            strategy.tell(state, proposal, value)


@pytest.mark.parametrize("concentration", [0.0, -1.0, float("nan")])
def test_random_search_refuses_a_concentration_that_gives_no_mixtures(concentration):
    with pytest.raises(ValueError, match="concentration must be a positive number"):
        rj.random_search(SPACE, concentration=concentration)


def test_a_string_where_a_list_belongs_is_refused():
    with pytest.raises(ValueError, match=r"domains must be a list.*got the string 'web'"):
        rj.Space(domains="web", scales=[20], steps=[100], target=(20, 100))


@pytest.mark.parametrize("regrets", [np.full((3, 4), np.inf), np.zeros((3, 4))])
def test_plot_regret_with_nothing_to_draw_on_a_log_axis(tmp_path, regrets):
    """A budget below one target run leaves every regret inf, a solved problem every regret
    0: neither can go on a log axis, which crashed matplotlib after nothing was written."""
    grid = np.array([0.5, 1.0, 2.0, 4.0])
    png = analysis.plot_regret({"m": (grid, regrets)}, tmp_path / "regret.png")
    assert png.stat().st_size > 0
    data = json.loads((tmp_path / "regret.json").read_text())
    assert data["methods"]["m"]["num_seeds"] == 3


def test_a_campaign_inside_your_own_jit_or_vmap_over_budgets():
    """Inside a user's jit, run_campaign failed with "compiler_options can only be passed to
    top-level jax.jit" (options the user never gave); a vmap over budgets failed with a bare
    TracerArrayConversionError."""
    strategy = rj.random_search(SPACE)
    key = jax.random.key(3)
    top = rj.run_campaign(strategy, env, 3.0, key)
    inner = jax.jit(lambda k: rj.run_campaign(strategy, env, 3.0, k))(key)
    np.testing.assert_array_equal(inner.proposals.mixture, top.proposals.mixture)
    closed = jax.jit(lambda: rj.run_campaign(strategy, env, 3.0, key))()  # nothing traced
    np.testing.assert_array_equal(closed.proposals.mixture, top.proposals.mixture)
    np.testing.assert_allclose(inner.values, top.values, rtol=1e-6)
    budgets = jnp.array([1.0, 3.0])
    swept = jax.vmap(lambda b: rj.run_campaign(strategy, env, b, key, num_asks=4))(budgets)
    for i, b in enumerate(budgets):
        one = rj.run_campaign(strategy, env, float(b), key, num_asks=4)
        np.testing.assert_array_equal(swept.active[i], one.active)
    assert swept.active.sum(axis=1).tolist() == [1, 3]
    with pytest.raises(ValueError, match="needs num_asks="):
        jax.vmap(lambda b: rj.run_campaign(strategy, env, b, key))(budgets)
    with pytest.raises(ValueError, match="progress= reports from a running program"):
        jax.jit(lambda k: rj.run_campaign(strategy, env, 3.0, k, progress=print))(key)


def test_a_sweep_inside_your_own_jit_vmap_or_eval_shape():
    """Inside a user's jit or eval_shape, sweep failed with "compiler_options can only be
    passed to top-level jax.jit" (or, on several CPU devices, "Argument of type
    DynamicJaxprTracer is not a valid JAX type" from placing per-device arguments); it is now
    traced into the caller's program. (Several devices: the sharding test's subprocess.)"""
    from recipes_jax import campaign

    strategy = rj.random_search(SPACE)
    keys = jax.random.split(jax.random.key(4), 3)
    top = rj.sweep(strategy, env, 3.0, keys)
    inner = jax.jit(lambda k: rj.sweep(strategy, env, 3.0, k))(keys)
    np.testing.assert_array_equal(inner.proposals.mixture, top.proposals.mixture)
    np.testing.assert_array_equal(inner.cost, top.cost)
    closed = jax.jit(lambda: rj.sweep(strategy, env, 3.0, keys))()  # nothing of ours traced
    np.testing.assert_array_equal(closed.recommendation, top.recommendation)
    shapes = jax.eval_shape(lambda k: rj.sweep(strategy, env, 3.0, k), keys)
    assert shapes.cost.shape == top.cost.shape
    budgets = jnp.array([1.0, 3.0])
    swept = jax.vmap(lambda b: rj.sweep(strategy, env, b, keys, num_asks=4))(budgets)
    assert swept.active.sum(axis=2).tolist() == [[1, 1, 1], [3, 3, 3]]
    np.testing.assert_array_equal(swept.proposals.mixture[1, :, :3], top.proposals.mixture)
    with pytest.raises(ValueError, match=r"progress= reports .* call sweep at the top level"):
        jax.jit(lambda k: rj.sweep(strategy, env, 3.0, k, progress=print))(keys)
    with pytest.raises(ValueError, match="compile_sweep compiles ahead of time"):
        jax.jit(lambda k: campaign.compile_sweep(strategy, env, 3.0, k)[0]())(keys)
    scaled = lambda c: lambda w, m, s: env(w, m, s) * c  # closes over the vmap's tracer
    with pytest.raises(ValueError, match="compile_sweep compiles ahead of time"):
        jax.vmap(lambda c: campaign.compile_sweep(strategy, scaled(c), 3.0, keys)[0]().cost)(
            budgets
        )
    assert not campaign._under_jit()
    assert jax.jit(lambda: jnp.asarray(campaign._under_jit()))()
    assert not jax.vmap(lambda b: jnp.asarray(campaign._under_jit()))(budgets).any()


def test_huge_budgets_are_counted_exactly_and_refused_as_campaign_lengths():
    """A budget of 1e9 gave random search one run too many (a relative slack of 1e-9 is one
    run there) and made Hyperband tile 66 GB of costs on the host; a default campaign of
    millions of asks ran without a word."""
    space = rj.Space.paper()
    assert rj.random_search(space).default_num_asks(1e9) == 10**9
    assert rj.random_search(space).default_num_asks(50.0) == 50
    hyperband = rj.hyperband(space)
    assert hyperband.default_num_asks(1e9) > 10**9  # computed without a 66 GB array
    flat = lambda w, m, s: jnp.sum(w, axis=-1)
    with pytest.raises(ValueError, match=r"means 2,000,000 asks .* Give num_asks="):
        rj.run_campaign(rj.random_search(space), flat, 2e6, jax.random.key(0))
    with pytest.raises(ValueError, match="asks for hyperband"):
        rj.sweep(hyperband, flat, 1e6, jax.random.split(jax.random.key(0), 2))


def test_strategies_with_list_checkpoints_and_abstract_states():
    """checkpoints=[...] raised "unhashable type: 'list'" from the compiled-program cache;
    load_state(like=jax.eval_shape(init, key)) blamed the configuration or float64."""
    strategy = rj.random_search(SPACE)
    key = jax.random.key(0)
    for checkpoints in ([200, 400], np.array([200, 400])):
        trace = rj.run_campaign(strategy._replace(checkpoints=checkpoints), env, 2.0, key)
        assert trace.curves.shape == (2, 2)
    with pytest.raises(ValueError, match="whole step counts"):
        rj.run_campaign(strategy._replace(checkpoints=[200.5]), env, 2.0, key)
    with pytest.raises(ValueError, match="must be hashable"):
        rj.run_campaign(strategy._replace(name=["random"]), env, 2.0, key)


def test_load_state_takes_an_abstract_state(tmp_path):
    strategy = rj.random_search(SPACE)
    key = jax.random.key(0)
    state = strategy.init(key)
    rj.save_state(tmp_path / "state.npz", state)
    loaded = rj.load_state(tmp_path / "state.npz", jax.eval_shape(strategy.init, key))
    leaves = jax.tree_util.tree_leaves
    for a, b in zip(leaves(loaded), leaves(state), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
