"""Training functions as objectives: report(), run_campaign (host callback), sweep (batched
callback under vmap) and run_loop (Python ask/tell, batches grouped by fidelity)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import recipes_jax as rj
from recipes_jax.objectives import report
from tests.test_strategies import shared


def _host_truth(truth, checkpoints=(6500, 13_000, 19_500)):
    """A stand-in training function over the world's law, recording every call."""
    calls = []

    def train(w, m, s, key):
        calls.append((float(m), int(s), np.asarray(w).shape))
        w = jnp.atleast_2d(jnp.asarray(w))
        points = [c for c in checkpoints if c < s] + [s]
        y = truth(
            jnp.repeat(w, len(points), 0), jnp.full(len(points), m), jnp.asarray(points, float)
        )
        return dict(zip(points, np.asarray(y).tolist(), strict=True))

    def train_batch(W, m, s, keys):
        calls.append((float(m), int(s), np.asarray(W).shape))
        q = W.shape[0]
        y = truth(jnp.asarray(W), jnp.full(q, m), jnp.full(q, float(s)))
        return np.asarray(y)

    return train, train_batch, calls


def test_report_accepts_numbers_curves_and_vectors():
    final, curve = report(2.5, 13_000, (6500, 13_000, 19_500))
    assert final == 2.5 and np.isnan(curve).all()
    final, curve = report({6500: 3.0, 13_000: 2.6, 999: 1.0}, 13_000, (6500, 13_000, 19_500))
    assert final == 2.6 and curve[0] == 3.0 and np.isnan(curve[1:]).all()
    lc = rj.LearningCurve(np.asarray([6500, 13_000]), np.asarray([3.0, 2.6]))
    assert report(lc, 13_000, (6500,))[0] == 2.6
    final, curve = report(np.array([3.0, 2.7, 9.0, 2.6]), 13_000, (6500, 13_000, 19_500))
    assert final == 2.6 and curve[0] == 3.0 and np.isnan(curve[1:]).all()
    assert np.isnan(report(float("nan"), 100, ())[0])  # a diverged run is reported, not hidden
    with pytest.raises(ValueError, match="no value at the run's 13000 steps"):
        report({6500: 3.0}, 13_000, (6500,))
    with pytest.raises(ValueError, match="shape"):
        report(np.ones(3), 13_000, (6500,))
    with pytest.raises(ValueError, match="callable"):
        rj.objective("train.py")


def test_run_campaign_and_sweep_call_the_training_function_on_the_host(world, truth):
    train, train_batch, calls = _host_truth(truth, checkpoints=())
    strategy = rj.random_search(world.space)
    with jax.enable_x64(True):
        plain = rj.run_campaign(strategy, truth, 3.0, jax.random.key(0))
        hosted = rj.run_campaign(strategy, rj.objective(train), 3.0, jax.random.key(0))
        assert len(calls) == 3  # one training run per ask
        np.testing.assert_allclose(hosted.values, plain.values, rtol=1e-12)
        np.testing.assert_array_equal(hosted.recommendation, plain.recommendation)
        # a batched function receives every seed's run of an ask at once under vmap
        keys = jax.random.split(jax.random.key(1), 5)
        calls.clear()
        swept = rj.sweep(strategy, rj.objective(train_batch, batched=True), 3.0, keys)
        assert [c[2] for c in calls] == [(5, 5)] * 3
        plain = rj.sweep(strategy, truth, 3.0, keys)
        # the same law evaluated by two different XLA programs (vectorized transcendental
        # functions differ in the last ~1e-8 even in float64)
        np.testing.assert_allclose(swept.values, plain.values, rtol=1e-7)
        np.testing.assert_array_equal(swept.proposals.mixture, plain.proposals.mixture)


def test_a_campaign_never_trains_a_run_past_its_budget(world, truth):
    """run_campaign and sweep called the training function for every ask of the scan, also
    those past the budget (inactive rows, thrown away): 8 trained runs for a budget of 3, or
    6 target runs of compute for a budget of 1. A key of another PRNG implementation (rbg)
    failed on the host ("expected key_data.shape to end with (2,)")."""
    train, train_batch, calls = _host_truth(truth, checkpoints=())
    strategy = rj.random_search(world.space)
    with jax.enable_x64(True):
        trace = rj.run_campaign(strategy, rj.objective(train), 3.0, jax.random.key(0), num_asks=8)
        assert int(trace.active.sum()) == 3 and len(calls) == 3
        calls.clear()
        keys = jax.random.split(jax.random.key(1), 4)
        for batched, fn in ((True, train_batch), (False, train)):
            swept = rj.sweep(strategy, rj.objective(fn, batched=batched), 2.5, keys, num_asks=6)
            trained = sum(c[2][0] if batched else 1 for c in calls)
            assert trained == int(swept.active.sum()) == 4 * 2, (batched, calls)
            calls.clear()
        rbg = rj.run_campaign(strategy, rj.objective(train), 2.0, jax.random.key(0, impl="rbg"))
        assert np.isfinite(rbg.values).all() and len(calls) == 2


def test_run_loop_trains_each_round_grouped_by_fidelity_and_keeps_the_budget(world, truth):
    train, train_batch, calls = _host_truth(truth)
    with jax.enable_x64(True):
        strategy = shared(world.space, "mfms_bo")  # 3-run design, learning curves
        lines = []
        trace = rj.run_loop(
            strategy, rj.objective(train_batch, batched=True), 0.6, jax.random.key(0),
            batch_size=4, num_asks=12, log=lines.append,
        )  # fmt: skip
        active = trace.active
        assert trace.cost.shape == (12,) and trace.recommendation.shape == (12, 5)
        assert active[:3].all() and np.all(np.diff(trace.cost) >= 0)
        assert trace.cost[-1] <= 0.6 * (1 + 1e-6) and len(lines) == active.sum()
        if not active.all():  # spending ends at the first run that does not fit
            assert not active[int(np.argmin(active)) :].any()
        # one call per (scale, steps) group of a round, never more runs than the round had
        assert sum(c[2][0] for c in calls) == active.sum()
        assert all(1 <= c[2][0] <= 4 for c in calls)
        assert np.isfinite(trace.values[active]).all() and np.isnan(trace.values[~active]).all()
        expect = truth(
            jnp.asarray(trace.proposals.mixture[active]),
            jnp.asarray(trace.proposals.scale[active]),
            jnp.asarray(trace.proposals.steps[active], float),
        )
        np.testing.assert_allclose(trace.values[active], expect, rtol=1e-12)
        # learning curves from an unbatched function reach the GP: one row per checkpoint
        calls.clear()
        trace = rj.run_loop(strategy, rj.objective(train), 5.0, jax.random.key(1), num_asks=6)
        reached = np.asarray(strategy.checkpoints)[None] < trace.proposals.steps[:, None]
        assert np.array_equal(np.isfinite(trace.curves), reached & trace.active[:, None])
        with pytest.raises(ValueError, match="batch_size"):
            rj.run_loop(strategy, rj.objective(train), 1.0, jax.random.key(0), batch_size=0)


def test_a_diverged_run_is_recorded_and_not_learned_from(world):
    def train(w, m, s, key):
        return float("nan") if m < 100 else 2.0 + float(np.asarray(w)[0])

    with jax.enable_x64(True):
        strategy = shared(world.space, "mfms_bo")
        trace = rj.run_loop(strategy, rj.objective(train), 5.0, jax.random.key(0), num_asks=6)
    small = trace.proposals.scale < 100
    assert np.isnan(trace.values[small & trace.active]).all()
    assert np.isfinite(trace.recommendation).all()
    assert np.isfinite(trace.proposals.mixture).all()


def test_results_that_are_not_a_metric_are_refused_with_the_fix():
    """A training function that forgets to `return` gave None, read as NaN: every run was
    recorded as diverged, silently."""
    from recipes_jax.objectives import _batch_results

    with pytest.raises(ValueError, match=r"returned None \(a missing `return`\?\)"):
        report(None, 100, ())
    with pytest.raises(ValueError, match=r"run 1 of its results is None"):
        _batch_results([1.0, None], 2, 0)
    with pytest.raises(ValueError, match=r"for 1 runs must return .*; it returned 2"):
        _batch_results([{100: 1.0}, {100: 2.0}], 1, 0)
    assert report({100: jnp.asarray([2.5])}, 100, ())[0] == 2.5  # as a bare [1] array is
    with pytest.raises(ValueError, match="value at step 100 is None; give one number per step"):
        report({100: None}, 100, ())
    with pytest.raises(ValueError, match=r"value at step 100 is .*give one number per step"):
        report({100: np.ones(2)}, 100, ())


def test_run_loop_hands_typed_keys_to_the_training_function_even_from_a_legacy_key():
    space = rj.Space(domains=["a", "b"], scales=[20], steps=[100], target=(20, 100))
    seen = []

    def train(w, m, s, keys):
        seen.append((keys.shape, jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key)))
        return np.sum(np.asarray(w) ** 2, axis=-1)

    obj = rj.objective(train, batched=True)
    for key in (jax.random.key(0), jax.random.PRNGKey(0)):
        rj.run_loop(rj.random_search(space), obj, 2.0, key, batch_size=2)
    assert seen == [((2,), True)] * 2  # one round of 2 runs per campaign


class DatasetMissing(OSError):
    """A user's own exception type, raised by their training function."""


def _failing_training(fail_at_call: int, batched: bool = False):
    calls = []

    def train(w, m, s, key):
        calls.append(float(m))
        if len(calls) == fail_at_call:
            raise DatasetMissing("shard 'wiki-07' is missing")
        return 3.0 if not batched else np.full(len(w), 3.0)

    return train, calls


@pytest.mark.parametrize("how", ["run_campaign", "progress", "sweep", "batched_sweep", "compiled"])
def test_an_exception_from_the_training_function_is_raised_as_itself(world, how, caplog):
    """Inside run_campaign's lax.scan the function runs in a host callback, where JAX turned its
    exception into its own runtime error: `except OSError` never matched. Now the function's
    own exception comes out, type and message intact, with a note naming the run, and the
    campaign stops at the failing run (no later run is trained), without JAX also logging the
    traceback the caller receives."""
    strategy = rj.random_search(world.space)
    train, calls = _failing_training(2, batched=how == "batched_sweep")
    obj = rj.objective(train, batched=how == "batched_sweep")
    keys = jax.random.split(jax.random.key(1), 3)
    run = {
        "run_campaign": lambda: rj.run_campaign(strategy, obj, 4.0, jax.random.key(0)),
        "progress": lambda: rj.run_campaign(
            strategy, obj, 4.0, jax.random.key(0), progress=lambda done, total: None
        ),
        "sweep": lambda: rj.sweep(strategy, obj, 4.0, keys),
        "batched_sweep": lambda: rj.sweep(strategy, obj, 4.0, keys),
        "compiled": lambda: rj.campaign.compile_sweep(strategy, obj, 4.0, keys)[0](),
    }[how]
    with pytest.raises(DatasetMissing, match="wiki-07") as raised:
        run()
    assert any("raised by training" in note and "steps" in note for note in raised.value.__notes__)
    assert len(calls) == 2
    assert "pure_callback failed" not in caplog.text  # JAX's log would only repeat it
    # errors of the library's own making, and campaigns that do not fail, are untouched
    with pytest.raises(ValueError, match="budget"):
        rj.run_campaign(strategy, obj, -1.0, jax.random.key(0))
    train, calls = _failing_training(0, batched=how == "batched_sweep")
    rj.run_campaign(
        strategy, rj.objective(train, batched=how == "batched_sweep"), 2.0, jax.random.key(0)
    )


def test_each_campaign_gets_its_own_training_exception_and_keeps_none(world):
    """Exceptions are matched to the campaign whose training function raised them: two
    campaigns failing at once with the same message used to swap exceptions (11 of 30 trials),
    a stale record could stand in for a later unrelated error, and unclaimed records kept a
    failed run's frames alive. KeyboardInterrupt comes back as itself too."""
    import threading

    from recipes_jax import host_errors

    strategy = rj.random_search(world.space)
    gate = {"barrier": threading.Barrier(1)}

    def failing(who):
        def train(w, m, s, key):
            gate["barrier"].wait(timeout=60)
            error = OSError("disk full")
            error.who = who
            raise error

        return rj.objective(train)

    objectives = {who: failing(who) for who in "AB"}
    for obj in objectives.values():  # compile first
        with pytest.raises(OSError):
            rj.run_campaign(strategy, obj, 1.0, jax.random.key(0))
    for _ in range(5):
        gate["barrier"], got = threading.Barrier(2), {}

        def run(who, got=got):
            try:
                rj.run_campaign(strategy, objectives[who], 1.0, jax.random.key(0))
            except OSError as error:
                got[who] = error.who

        threads = [threading.Thread(target=run, args=(who,)) for who in objectives]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert got == {"A": "A", "B": "B"}
    assert host_errors._recorded == {}  # nothing kept once the campaigns ended

    def interrupted(w, m, s, key):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rj.run_campaign(strategy, rj.objective(interrupted), 1.0, jax.random.key(0))
    # inside the caller's own jit (concrete arguments: nothing of its own is traced)
    train, calls = _failing_training(0)
    values = jax.jit(
        lambda: rj.run_campaign(strategy, rj.objective(train), 2.0, jax.random.key(0)).values
    )()
    assert np.all(np.asarray(values)[:2] == 3.0) and len(calls) == 2


def test_held_runs_are_retired_when_told_and_a_late_divergence_teaches_nothing(world):
    """A run folded in with hold was filed under the state's count, not its own index, so
    telling it later never retired it: it stayed pending (held at the data's mean) for good,
    and observe counted it as asked twice. A curve finite at its checkpoints and NaN at its end
    (a run that diverged late) put its early points into the GP, although a diverged run
    teaches nothing (as in a ledger)."""
    from recipes_jax.strategies.base import make_proposal

    space = world.space
    with jax.enable_x64(True):
        strategy = shared(space, "mfms_bo")
        hold, tell, observe = (jax.jit(f) for f in (strategy.hold, strategy.tell, strategy.observe))
        state = strategy.init(jax.random.key(0))
        runs = [make_proposal(space, jnp.eye(5)[i], 150.0, 13_000, 7) for i in range(3)]
        for run in runs:
            state = hold(state, run)
        assert int(state.num_asked) == 3 and int(state.pending.active.sum()) == 3
        state = tell(state, runs[1], 3.0)  # the held run, told as it was held
        assert int(state.pending.active.sum()) == 2 and int(state.obs.count) == 1
        state = observe(state, runs[0], 3.1)  # a held run, observed: not counted again
        assert int(state.num_asked) == 3 and int(state.pending.active.sum()) == 1
        assert int(state.obs.count) == 2
        state = observe(state, make_proposal(space, jnp.full(5, 0.2), 20.0, 100, 0), 4.0)
        assert int(state.num_asked) == 4 and int(state.pending.active.sum()) == 1
        # diverged at the end: none of its curve is learned, and it is no longer pending
        steps = jnp.asarray([*strategy.checkpoints, 13_000], jnp.int32)
        values = jnp.where(steps < 13_000, 3.0, jnp.nan)
        count = int(state.obs.count)
        state = tell(state, runs[2], rj.LearningCurve(steps, values))
        assert int(state.obs.count) == count and int(state.pending.active.sum()) == 0
        # finite at its end: every point up to its steps is learned
        run = make_proposal(space, jnp.full(5, 0.2), 150.0, 13_000, 9)
        state = observe(state, run, rj.LearningCurve(steps, jnp.where(steps <= 13_000, 3.0, 9.0)))
        assert int(state.obs.count) == count + int(jnp.sum(steps <= 13_000))
