"""suggest: a ledger folded into an mfms_bo state, and the next runs proposed from it."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import recipes_jax as rj
from recipes_jax import ledger, space_file
from recipes_jax.campaign import _evaluate
from recipes_jax.suggest import next_ids, replay, suggest
from tests.test_strategies import LEAN, METRIC

SPACE = space_file.parse_space(space_file.EXAMPLE)
OPTIONS = {**LEAN, "num_initial": 4}


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def as_ledger_run(strategy, proposal, report, run_id):
    final = float(report.values[-1])
    curve = tuple(
        (int(s), float(v))
        for s, v in zip(report.steps[:-1], report.values[:-1], strict=True)
        if np.isfinite(v)
    )
    return ledger.LedgerRun(
        id=run_id,
        status="done",
        mixture=tuple(np.asarray(proposal.mixture).tolist()),
        scale=float(proposal.scale),
        steps=int(proposal.steps),
        value=final,
        curve=curve,
    )


def test_replaying_a_campaign_from_its_ledger_gives_the_same_observations():
    truth = rj.worlds.default().truth(METRIC)
    strategy = rj.mfms_bo(SPACE, **OPTIONS)
    state = strategy.init(jax.random.key(0))
    ask, tell = jax.jit(strategy.ask), jax.jit(strategy.tell)
    runs = []
    for t in range(7):
        proposal, state = ask(state, jax.random.key(t))
        _, _, report = _evaluate(strategy, truth, proposal, jax.random.key(99), 0.0)
        state = tell(state, proposal, report)
        runs.append(as_ledger_run(strategy, proposal, report, f"r{t + 1}"))
    replayed = replay(strategy, runs, jax.random.key(0))
    for a, b in zip(state.obs, replayed.obs, strict=True):
        np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), atol=1e-12)
    assert int(replayed.num_asked) == 7 and int(replayed.num_told) == 7
    assert float(replayed.spent) == pytest.approx(float(state.spent))
    assert not np.any(np.asarray(replayed.pending.active))


@pytest.mark.slow
def test_suggest_record_loop_on_a_ledger(tmp_path):
    truth = jax.jit(rj.worlds.default().truth(METRIC))
    path = tmp_path / "runs.csv"
    for round_ in range(3):
        runs = ledger.read_ledger(path, SPACE)
        new = suggest(SPACE, runs, 3, jax.random.key(round_), **OPTIONS)
        assert [r.id for r in new] == next_ids([r.id for r in runs], 3)
        ledger.write_ledger(path, SPACE, [*runs, *new])
        for i, r in enumerate(new):
            w = np.asarray(r.mixture)
            assert np.all(w >= 0) and abs(w.sum() - 1) < 1e-9
            assert r.scale in SPACE.scales and r.steps in SPACE.steps
            if round_ == 2 and i == 0:  # one failure: kept, never modeled
                ledger.record(path, SPACE, r.id, status="failed")
                continue
            y = float(truth(jnp.asarray(w)[None], jnp.array([r.scale]), jnp.array([r.steps]))[0])
            ledger.record(path, SPACE, r.id, value=y)
    runs = ledger.read_ledger(path, SPACE)
    assert len(runs) == 9 and sum(r.informs_model for r in runs) == 8
    # past the 4-run initial design: proposals are the acquisition's, with finite scores; a
    # second batch without results in between proposes other runs (held pending)
    first = suggest(SPACE, runs, 2, jax.random.key(7), **OPTIONS)
    assert all(math.isfinite(r.score) for r in first)
    pending = [*runs, *first]
    second = suggest(SPACE, pending, 2, jax.random.key(8), **OPTIONS)
    assert {r.id for r in second}.isdisjoint({r.id for r in first})
    for a in first:
        for b in second:
            assert np.abs(np.subtract(a.mixture, b.mixture)).max() > 1e-6 or (
                (a.scale, a.steps) != (b.scale, b.steps)
            )


def test_next_ids_never_reuse_an_id():
    assert next_ids([], 2) == ["r1", "r2"]
    assert next_ids(["r1", "r7", "warmup", "r3"], 2) == ["r8", "r9"]


def test_suggest_command(tmp_path, capsys):
    from recipes_jax.cli import main

    space, runs = tmp_path / "space.toml", tmp_path / "runs.csv"
    assert main(["init", "--space", str(space)]) == 0
    argv = ["suggest", "--space", str(space), "--ledger", str(runs), "--preset", "quick"]
    assert main([*argv, "-n", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 new pending runs" in out and "r2" in out
    assert [r.status for r in ledger.read_ledger(runs, SPACE)] == ["pending", "pending"]
    assert main([*argv, "-n", "0"]) == 2
    assert "at least one run" in capsys.readouterr().err


def done_run(i, space=SPACE):
    """A finished run at the cheapest scale with a three-point learning curve."""
    w = np.full(space.num_domains, 0.1 / (space.num_domains - 1))
    w[i % space.num_domains] = 0.9
    steps = space.steps[-1]
    curve = ((steps // 3, 3.0 + i / 100), (2 * steps // 3, 2.8 + i / 100))
    return ledger.LedgerRun(
        f"r{i + 1}", "done", tuple(w), space.scales[0], steps, 2.7 + i / 100, curve=curve
    )


def test_suggest_keeps_every_ledger_observation_and_holds_every_pending_run():
    """The quick preset's buffer holds 32 rows and mfms_bo holds 8 pending runs; a ledger
    with more must not lose any of them silently (they once were: the cheapest rows were
    evicted and pending runs beyond 8 dropped)."""
    from recipes_jax.suggest import _sized_to_fit

    finished = [done_run(i) for i in range(20)]  # 3 observations each: 60 rows
    pending = [
        ledger.LedgerRun(f"p{i}", "pending", r.mixture, r.scale, r.steps)
        for i, r in enumerate(finished[:10])
    ]
    options = {**OPTIONS, "capacity": 32, "max_pending": 8}
    strategy = _sized_to_fit(SPACE, [*finished, *pending], 3, options)
    state = replay(strategy, [*finished, *pending], jax.random.key(0))
    assert int(state.obs.count) == 60
    assert int(np.sum(np.asarray(state.pending.active))) == 10
    assert state.pending.active.shape[0] >= 13  # the 10 held plus the 3 to be proposed
    # options that already fit are left alone
    small = _sized_to_fit(SPACE, finished[:2], 1, options)
    shapes = jax.eval_shape(small.init, jax.random.key(0))
    assert shapes.obs.x.shape[0] == 32 and shapes.pending.active.shape[0] == 8


def test_suggest_command_keeps_a_result_recorded_while_it_computes(tmp_path, capsys, monkeypatch):
    """suggest reads the ledger, computes for a minute, then writes: a record made meanwhile
    used to be overwritten by the copy it read at the start."""
    import recipes_jax.suggest as suggest_module
    from recipes_jax.cli import main

    space, runs = tmp_path / "space.toml", tmp_path / "runs.csv"
    assert main(["init", "--space", str(space)]) == 0
    pending = ledger.LedgerRun("r1", "pending", (0.2,) * 5, 20.0, 6500)
    ledger.write_ledger(runs, SPACE, [pending])
    real_suggest = suggest_module.suggest

    def suggest_while_someone_records(*args, **kwargs):
        new = real_suggest(*args, **kwargs)
        assert main(["record", "--space", str(space), "--ledger", str(runs), "--id", "r1",
                     "--value", "2.5", "--note", "meanwhile"]) == 0  # fmt: skip
        ledger.write_ledger(runs, SPACE, [*ledger.read_ledger(runs, SPACE), replace_id(new[0])])
        return new

    def replace_id(run):  # another suggest took the id this one chose
        return ledger.LedgerRun(run.id, "pending", run.mixture, run.scale, run.steps)

    monkeypatch.setattr(suggest_module, "suggest", suggest_while_someone_records)
    argv = ["suggest", "--space", str(space), "--ledger", str(runs), "--preset", "quick"]
    assert main([*argv, "-n", "1"]) == 0
    captured = capsys.readouterr()
    assert "changed while the runs were chosen" in captured.err
    back = ledger.read_ledger(runs, SPACE)
    assert [r.id for r in back] == ["r1", "r2", "r3"]  # the clashing new id was renumbered
    assert back[0].status == "done" and back[0].value == 2.5 and back[0].note == "meanwhile"
    assert back[2].mixture == back[1].mixture and back[2].status == "pending"
