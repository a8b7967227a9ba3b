"""Strategies: the shared interface, pending proposals, learning curves, checkpoints."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import recipes_jax as rj
from recipes_jax.strategies.hyperband import hyperband_schedule

METRIC = "eval/RedPajamaStackExchange/CrossEntropyLoss"
#: small search settings so that tests compile and run quickly
LEAN = dict(
    capacity=48,
    num_candidates=128,
    top_k=2,
    refine_steps=5,
    fit_starts=1,
    fit_steps=5,
    recommend_candidates=128,
    recommend_refine_steps=5,
)


@functools.cache
def all_strategies(space):
    """One object per strategy, shared by the tests so each compiles once (run_campaign,
    sweep and :func:`jitted` keep their compiled programs per strategy object)."""
    return (
        rj.random_search(space),
        rj.hyperband(space),
        rj.single_fidelity_bo(space, num_initial=2, **LEAN),
        rj.mf_bo_steps(space, num_initial=2, **LEAN),
        rj.mfms_bo(space, num_initial=3, **LEAN),
    )


def shared(space, name):
    return next(s for s in all_strategies(space) if s.name == name)


@functools.cache
def jitted(strategy):
    return jax.jit(strategy.ask), jax.jit(strategy.tell)


def evaluate(truth, proposal):
    w = proposal.mixture[None]
    return truth(w, proposal.scale[None], proposal.steps[None].astype(w.dtype))[0]


def check_proposal(space, p):
    w = np.asarray(p.mixture)
    assert w.shape == (space.num_domains,)
    assert np.all(w >= 0) and abs(w.sum() - 1.0) < 1e-6
    assert float(p.scale) in space.scales
    assert int(p.steps) in space.steps
    np.testing.assert_allclose(float(p.cost), float(space.cost(p.scale, p.steps)), rtol=1e-6)


def test_strategies_ask_valid_proposals_and_recommend_a_mixture(world, truth):
    """Step by step through the jitted functions (every strategy also runs whole campaigns in
    test_campaign.py; the GP ones share one implementation, so mfms_bo stands for them here)."""
    space = world.space
    with jax.enable_x64(True):
        for name in ("random_search", "hyperband", "mfms_bo"):
            strategy = shared(space, name)
            ask, tell = jitted(strategy)
            state = strategy.init(jax.random.key(0))
            for i in range(6):
                p, state = ask(state, jax.random.key(i))
                check_proposal(space, p)
                assert int(p.index) == i
                state = tell(state, p, evaluate(truth, p))
            w = np.asarray(jax.jit(strategy.recommend)(state))
            assert w.shape == (5,) and np.all(w >= 0) and abs(w.sum() - 1) < 1e-6, strategy.name


def test_random_search_recommends_its_best_run_and_respects_maximize(world):
    space = world.space
    maximize_space = rj.Space.paper("eval/hellaswag/accuracy")
    assert maximize_space.maximize
    for sp, pick in ((space, np.argmin), (maximize_space, np.argmax)):
        strategy = rj.random_search(sp)
        state = strategy.init(jax.random.key(0))
        seen, values = [], [0.5, 0.2, 0.9, 0.4]
        for i, v in enumerate(values):
            p, state = strategy.ask(state, jax.random.key(i))
            state = strategy.tell(state, p, v)
            seen.append(np.asarray(p.mixture))
        np.testing.assert_array_equal(strategy.recommend(state), seen[pick(values)])


def test_recommendation_prefers_the_highest_fidelity_reached(world):
    """Random search / Hyperband recommend the best run at the highest fidelity reached, even
    when a cheaper run looked better."""
    strategy = rj.hyperband(world.space)
    state = strategy.init(jax.random.key(0))
    p0, state = strategy.ask(state, jax.random.key(0))  # rung 0: short run
    state = strategy.tell(state, p0, 0.1)
    short = p0._replace(steps=jnp.asarray(19_500, jnp.int32), index=jnp.asarray(999, jnp.int32))
    long = short._replace(mixture=jnp.full(5, 0.2))
    state = strategy.tell(state, long, 3.0)
    np.testing.assert_allclose(strategy.recommend(state), np.full(5, 0.2))


def test_hyperband_schedule_and_promotions(world):
    space = world.space
    schedule = hyperband_schedule(space)
    np.testing.assert_array_equal(schedule.levels, [200, 700, 2200, 6500, 19_500])
    bracket0 = schedule.bracket == 0
    counts = np.bincount(schedule.rung[bracket0])
    np.testing.assert_array_equal(counts, [81, 27, 9, 3, 1])
    strategy = rj.hyperband(space)
    state = strategy.init(jax.random.key(0))
    ask, tell = jax.jit(strategy.ask), jax.jit(strategy.tell)
    rung0 = []
    # value: distance of the mixture's first weight from 0.3 (any deterministic function)
    f = lambda p: float(abs(p.mixture[0] - 0.3))
    for i in range(81):
        p, state = ask(state, jax.random.key(i))
        assert int(p.steps) == 200
        rung0.append((f(p), np.asarray(p.mixture)))
        state = tell(state, p, f(p))
    best27 = sorted(rung0, key=lambda t: t[0])[:27]
    for j in range(27):
        p, state = ask(state, jax.random.key(100 + j))
        assert int(p.steps) == 700
        np.testing.assert_array_equal(p.mixture, best27[j][1])
        state = tell(state, p, f(p))


def test_pending_proposals_differ_and_are_retired_on_tell(world, truth):
    space = world.space
    with jax.enable_x64(True):
        strategy = shared(space, "mfms_bo")
        ask, tell = jitted(strategy)
        state = strategy.init(jax.random.key(0))
        for i in range(6):
            p, state = ask(state, jax.random.key(i))
            state = tell(state, p, evaluate(truth, p))
        # a batch of three asks before any tell (same key: only the believer separates them)
        batch = []
        for _ in range(3):
            p, state = ask(state, jax.random.key(42))
            batch.append(p)
        assert int(state.pending.active.sum()) == 3
        decisions = {(tuple(np.round(np.asarray(p.mixture), 6)), float(p.scale)) for p in batch}
        assert len(decisions) == 3, "kriging believer should spread a batch"
        state = tell(state, batch[1], evaluate(truth, batch[1]))  # out of order
        assert int(state.pending.active.sum()) == 2
        assert int(batch[1].index) not in np.asarray(state.pending.index[state.pending.active])
        # more pending than slots: the extra ones are simply not believed, asks still work
        for j in range(7):
            p, state = ask(state, jax.random.key(50 + j))
            check_proposal(space, p)
        assert int(state.pending.active.sum()) == 8  # max_pending


def test_learning_curve_adds_one_observation_per_checkpoint_reached(world):
    space = world.space
    with jax.enable_x64(True):
        strategy = shared(space, "mfms_bo")
        assert strategy.checkpoints == (6500, 13_000, 19_500)
        ask, tell = jitted(strategy)  # (compiled once for the tests that share them)
        state = strategy.init(jax.random.key(0))
        p, state = ask(state, jax.random.key(0))
        p = p._replace(steps=jnp.asarray(13_000, jnp.int32))
        curve = rj.LearningCurve(
            jnp.asarray([6500, 13_000, 19_500, 13_000]), jnp.asarray([3.0, 2.5, 2.0, 2.5])
        )
        told = tell(state, p, curve)
        assert int(told.obs.count) == 3  # 6500, 13000, and the final 13000; not 19500
        steps = np.asarray(space.decode_fidelity(*told.obs.x[:3, -2:].T)[1])
        np.testing.assert_allclose(np.sort(steps), [6500, 13_000, 13_000], rtol=1e-9)
        assert int(tell(state, p, 2.5).obs.count) == 1
        with pytest.raises(ValueError, match="LearningCurve"):
            strategy.tell(state, p, jnp.asarray([1.0, 2.0]))


def test_landscape_scores_a_proposal_as_ask_did(world, truth):
    space = world.space
    with jax.enable_x64(True):
        strategy = shared(space, "mfms_bo")
        ask, tell = jitted(strategy)
        landscape = jax.jit(strategy.landscape)
        state = strategy.init(jax.random.key(0))
        for i in range(5):
            p, state = ask(state, jax.random.key(i))
            state = tell(state, p, evaluate(truth, p))
        # no pending runs: the mean at the recommendation is the recommended value
        land = landscape(state, state.recommendation[None])
        np.testing.assert_allclose(land.mean[0], state.recommended_value, rtol=1e-9)
        assert land.std[0] > 0 and land.acquisition.shape == (21, 1)
        # with the parameters ask fitted, the landscape gives the score that chose the run
        p, asked = ask(state, jax.random.key(9))
        land = landscape(state._replace(params=asked.params), p.mixture[None])
        f = np.flatnonzero((land.scales == p.scale) & (land.steps == p.steps))
        assert f.shape == (1,)
        np.testing.assert_allclose(land.acquisition[f[0], 0], p.score, rtol=1e-6)
        np.testing.assert_allclose(land.cost[f[0]], p.cost, rtol=1e-9)
    assert rj.random_search(space).landscape is None


@pytest.mark.parametrize("acquisition", ["ei", "kg"])
def test_the_grid_screen_scores_as_the_pointwise_score_for_every_acquisition(
    world, truth, acquisition
):
    """Each acquisition's grid path (one fidelity at a time) gives the value of the pointwise
    score that refinement uses: the landscape at a proposal equals its score."""
    space = world.space
    scales, steps = space.fidelity_grid()
    strategy = rj.mfms_bo(
        space, acquisition=acquisition, num_initial=3, fidelities=(scales, steps), **LEAN
    )
    with jax.enable_x64(True):
        ask, tell = jax.jit(strategy.ask), jax.jit(strategy.tell)
        state = strategy.init(jax.random.key(0))
        for i in range(4):
            p, state = ask(state, jax.random.key(i))
            state = tell(state, p, evaluate(truth, p))
        p, asked = ask(state, jax.random.key(9))
        land = jax.jit(strategy.landscape)(state._replace(params=asked.params), p.mixture[None])
        f = np.flatnonzero((land.scales == p.scale) & (land.steps == p.steps))
        assert f.shape == (1,) and np.isfinite(p.score)
        np.testing.assert_allclose(land.acquisition[f[0], 0], p.score, rtol=1e-6)


def test_non_finite_values_are_not_learned_from(world):
    with jax.enable_x64(True):
        strategy = shared(world.space, "mfms_bo")
        state = strategy.init(jax.random.key(0))
        ask, tell = jitted(strategy)
        for i, v in enumerate([jnp.nan, jnp.inf, 1.0]):
            p, state = ask(state, jax.random.key(i))
            state = tell(state, p, v)
        assert int(state.obs.count) == 1
        assert np.all(np.isfinite(np.asarray(state.recommendation)))


@pytest.mark.parametrize("make", ["mfms_bo", "hyperband"])
def test_save_load_resume_gives_the_identical_continuation(world, truth, tmp_path, make):
    space = world.space
    with jax.enable_x64(True):
        strategy = shared(space, make)
        ask, tell = jitted(strategy)

        def run(state, keys):
            out = []
            for k in keys:
                p, state = ask(state, k)
                state = tell(state, p, evaluate(truth, p))
                out.append(np.asarray(p.mixture))
            return state, out

        keys = [jax.random.key(i) for i in range(8)]
        state, _ = run(strategy.init(jax.random.key(0)), keys[:4])
        rj.save_state(tmp_path / "state.npz", state)
        straight, expected = run(state, keys[4:])
        loaded = rj.load_state(tmp_path / "state.npz", strategy.init(jax.random.key(1)))
        resumed, got = run(loaded, keys[4:])
        np.testing.assert_array_equal(np.stack(got), np.stack(expected))
        leaves = zip(
            jax.tree_util.tree_leaves(resumed), jax.tree_util.tree_leaves(straight), strict=True
        )
        for a, b in leaves:
            np.testing.assert_array_equal(a, b)
        other = (
            rj.mfms_bo(space, **{**LEAN, "capacity": 32})
            if make == "mfms_bo"
            else rj.hyperband(space, eta=2)
        )
        with pytest.raises(ValueError, match="differently configured"):
            rj.load_state(tmp_path / "state.npz", other.init(jax.random.key(0)))


def test_bad_configuration_errors(world):
    space = world.space
    with pytest.raises(ValueError, match="unknown acquisition"):
        rj.mfms_bo(space, acquisition="nope")
    with pytest.raises(ValueError, match="not one of the space's scales"):
        rj.bayes_opt(space, fidelities=([33.0], [19_500]))
    with pytest.raises(ValueError, match="step grid"):
        rj.mfms_bo(space, checkpoints=(123,))
    with pytest.raises(ValueError, match="eta"):
        rj.hyperband(space, eta=1)
    with pytest.raises(ValueError, match="local_candidates"):
        rj.mfms_bo(space, local_candidates=-1)
    with pytest.raises(ValueError, match=r"recommend_min_weight must be in \[0, 1/K\)"):
        rj.mfms_bo(space, recommend_min_weight=0.2)
    with pytest.raises(ValueError, match="recommend_min_weight"):
        rj.mfms_bo(space, recommend_min_weight=-1e-3)


def test_a_vertex_optimum_is_recommended_exactly(world):
    """On a metric falling linearly toward one domain the optimum is that vertex; the
    recommendation lands on it exactly (no weight left between 0 and the floor), and its
    reported value is the GP's belief there, near the true 2.0. With the floor at 0 the
    softmax polish leaves dust on the other domains, which is what the floor is for."""
    space = world.space
    slope = jnp.asarray([0.3, 0.5, 0.2, 0.4, -1.0])

    def recommend_after_tells(min_weight):
        strategy = rj.single_fidelity_bo(
            space, num_initial=2, recommend_min_weight=min_weight, **LEAN
        )
        ask, tell = jax.jit(strategy.ask), jax.jit(strategy.tell)
        state = strategy.init(jax.random.key(0))
        for i in range(8):
            p, state = ask(state, jax.random.key(i))
            state = tell(state, p, 3.0 + p.mixture @ slope)
        return np.asarray(state.recommendation), state

    with jax.enable_x64(True):
        floored, state = recommend_after_tells(1e-4)
        dusty, _ = recommend_after_tells(0.0)
    np.testing.assert_array_equal(floored, [0.0, 0.0, 0.0, 0.0, 1.0])
    assert abs(float(state.recommended_value) - 2.0) < 0.05, float(state.recommended_value)
    assert np.any((dusty > 0.0) & (dusty < 1e-4)), dusty


def test_the_bounded_screen_picks_what_the_full_screen_does(world, truth, monkeypatch):
    """mfms_bo scores mixtures in blocks, best target EI first, until no other can reach the
    top_k (``optimize.bounded_screen``). In every ask of a campaign, the screen (in small
    blocks, so that it stops early) hands refinement the same top_k (fidelity, mixture)
    pairs, with the same scores, as scoring every mixture does: so the ask proposes what a
    full screen would. Both are computed in the same compiled ask."""
    from recipes_jax import optimize

    space = world.space
    asks = []
    screen = optimize.bounded_screen

    def checked(evaluate, mixture_bound, fidelity_offset, top_k, **kwargs):
        values = screen(evaluate, mixture_bound, fidelity_offset, top_k, block_size=8)
        full = evaluate(jnp.arange(mixture_bound.shape[0]))
        full = jnp.where(jnp.isfinite(full), full, -jnp.inf)
        scored = jnp.sum(jnp.any(jnp.isfinite(values), axis=0))
        jax.debug.callback(
            lambda *a: asks.append([np.asarray(x) for x in a]),
            scored,
            *optimize.small_top_k(values.ravel(), top_k),
            *optimize.small_top_k(full.ravel(), top_k),
        )
        return values

    monkeypatch.setattr(optimize, "bounded_screen", checked)
    with jax.enable_x64(True):
        strategy = rj.mfms_bo(space, num_initial=3, **LEAN)  # traced with the check above
        ask, tell = jax.jit(strategy.ask), jitted(shared(space, "mfms_bo"))[1]
        state = strategy.init(jax.random.key(0))
        for i in range(12):
            p, state = ask(state, jax.random.key(i))
            state = tell(state, p, evaluate(truth, p))
    everything = LEAN["num_candidates"] + 1  # + the recommendation
    assert len(asks) == 9  # the asks after the 3-run design
    for _, values, picks, full_values, full_picks in asks:
        assert set(picks.tolist()) == set(full_picks.tolist())
        np.testing.assert_allclose(values, full_values, rtol=1e-12, atol=0)
    counts = [int(a[0]) for a in asks]
    assert min(counts) < everything // 2, counts  # the blocked screen did stop early
