"""The run ledger: round trips, record, and errors that name the line, column and fix."""

import math

import pytest

from recipes_jax import ledger, space_file
from recipes_jax.ledger import LedgerRun

SPACE = space_file.parse_space(space_file.EXAMPLE)
K = SPACE.num_domains


def run(i, status="pending", scale=20.0, steps=500, **kw):
    w = [0.0] * K
    w[i % K] = 0.6
    w[(i + 1) % K] = 0.4
    return LedgerRun(id=f"r{i}", status=status, mixture=tuple(w), scale=scale, steps=steps, **kw)


def test_round_trip_keeps_every_field_and_columns_of_your_own(tmp_path):
    path = tmp_path / "runs.csv"
    runs = [
        run(0, "done", value=2.91, curve=((500, 2.91),), score=-3.2, note="first, with comma"),
        run(1, "pending", scale=150, steps=1000),
        run(2, "diverged", value=math.inf, extra={"host": "node7"}),
        run(3, "failed", note="OOM"),
    ]
    ledger.write_ledger(path, SPACE, runs)
    back = ledger.read_ledger(path, SPACE)
    assert [r.id for r in back] == ["r0", "r1", "r2", "r3"]
    assert back[0].value == 2.91 and back[0].curve == ((500, 2.91),) and back[0].score == -3.2
    assert back[0].note == "first, with comma" and back[0].informs_model
    assert back[1].cost == pytest.approx(float(SPACE.cost(150, 1000)))
    assert back[2].value == math.inf and back[2].extra == {"host": "node7"}
    assert not back[2].informs_model and not back[3].informs_model
    assert path.read_text().splitlines()[0] == ",".join([*ledger.columns(SPACE), "host"])


def test_absent_or_empty_ledger_has_no_runs(tmp_path):
    assert ledger.read_ledger(tmp_path / "absent.csv", SPACE) == []
    (tmp_path / "empty.csv").write_text("")
    assert ledger.read_ledger(tmp_path / "empty.csv", SPACE) == []


def test_record_a_value_a_curve_a_divergence_and_a_failure(tmp_path):
    path = tmp_path / "runs.csv"
    ledger.write_ledger(path, SPACE, [run(i, steps=1000) for i in range(4)])
    assert ledger.record(path, SPACE, "r0", value=2.5).status == "done"
    got = ledger.record(path, SPACE, "r1", curve=[(500, 3.0), (1000, 2.7)])
    assert got.status == "done" and got.value == 2.7
    assert ledger.record(path, SPACE, "r2", value=math.nan, curve=[(500, math.inf)]).status == (
        "diverged"
    )
    assert ledger.record(path, SPACE, "r3", status="failed", note="node died").status == "failed"
    back = {r.id: r for r in ledger.read_ledger(path, SPACE)}
    assert back["r0"].value == 2.5 and back["r1"].curve == ((500, 3.0), (1000, 2.7))
    assert back["r3"].note == "node died"
    with pytest.raises(ValueError, match="already recorded as done; pass --force"):
        ledger.record(path, SPACE, "r0", value=2.4)
    assert ledger.record(path, SPACE, "r0", value=2.4, overwrite=True).value == 2.4
    with pytest.raises(ValueError, match=r"no run 'r9' in .* \(did you mean"):
        ledger.record(path, SPACE, "r9", value=1.0)
    with pytest.raises(ValueError, match="beyond the run's 1000 steps"):
        ledger.record(path, SPACE, "r1", curve=[(1500, 2.0)], overwrite=True)
    with pytest.raises(ValueError, match="give its value"):
        ledger.record(path, SPACE, "r2", overwrite=True)
    # a refused record leaves the file as it was
    assert {r.id: r for r in ledger.read_ledger(path, SPACE)}["r1"].value == 2.7


HEADER = ",".join(ledger.columns(SPACE))
ROW = "r0,done,20,500,0.2,0.2,0.2,0.2,0.2,2.9,,,,"


@pytest.mark.parametrize(
    "text, match",
    [
        (HEADER.replace(",w:RedPajamaBook", "") + "\n", r"missing columns \['w:RedPajamaBook'\]"),
        (HEADER + ",id\n", r"duplicate columns \['id'\]"),
        (f"{HEADER}\n{ROW}\n{ROW}\n", "line 3: duplicate id 'r0' \\(also on line 2\\)"),
        (f"{HEADER}\n{ROW.replace(',2.9,', ',abc,')}\n", "line 2, column 'value': value 'abc'"),
        (f"{HEADER}\n{ROW.replace('0.2,', 'x,', 1)}\n", "column 'w:RedPajamaWikipedia'"),
        (f"{HEADER}\n{ROW.replace(',done,', ',finished,')}\n", "status 'finished' is not one"),
        (f"{HEADER}\n{ROW.replace(',2.9,', ',,')}\n", "a done run needs a finite value"),
        (f"{HEADER}\n{ROW.replace(',2.9,', ',inf,')}\n", "status 'diverged'"),
        (f"{HEADER}\n{ROW.replace(',20,', ',25,')}\n", "line 2: .*25"),
        (f"{HEADER}\n{ROW.replace(',500,', ',550,')}\n", "line 2: .*550"),
        (f"{HEADER}\n{ROW.replace(',500,', ',5e2.5,')}\n", "column 'steps'"),
        (f"{HEADER}\n{ROW.replace('0.2,0.2,0.2', '0.5,0.5,0.5')}\n", "line 2: .*sum"),
        (f"{HEADER}\n{ROW.replace('0.2,0.2,0.2', '-0.2,0.4,0.2')}\n", "line 2: .*negative"),
        (f"{HEADER}\n{ROW.replace(',,,', ',500:2.9,,')}\n", "column 'curve': .*step=value"),
        (f"{HEADER}\n{ROW},extra\n", "check for stray commas"),
        (f"{HEADER}\n{ROW.replace('r0,', ',', 1)}\n", "empty id"),
    ],
)
def test_bad_ledgers_name_the_line_column_and_fix(tmp_path, text, match):
    path = tmp_path / "runs.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        ledger.read_ledger(path, SPACE)
    assert path.read_text() == text  # never touched


def test_record_command_from_the_shell(tmp_path, capsys):
    from recipes_jax.cli import main

    space_path, path = tmp_path / "space.toml", tmp_path / "runs.csv"
    assert main(["init", "--space", str(space_path)]) == 0
    ledger.write_ledger(path, SPACE, [run(i, steps=1000) for i in range(3)])
    base = ["record", "--ledger", str(path), "--space", str(space_path)]
    assert main([*base, "--id", "r0", "--value", "2.31"]) == 0
    assert "run r0 recorded as done value 2.31" in capsys.readouterr().out
    curve_file = tmp_path / "curve.csv"
    curve_file.write_text("step,value\n500,3.1\n1000,2.8\n")
    assert main([*base, "--id", "r1", "--curve", str(curve_file)]) == 0
    assert main([*base, "--id", "r2", "--status", "failed", "--note", "node died"]) == 0
    back = {r.id: r for r in ledger.read_ledger(path, SPACE)}
    assert back["r1"].value == 2.8 and back["r1"].curve == ((500, 3.1), (1000, 2.8))
    assert back["r2"].status == "failed" and back["r2"].note == "node died"
    assert main([*base, "--id", "r0", "--value", "2.0"]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert main([*base, "--id", "r0", "--curve", "500=x"]) == 2
    assert "curve point '500=x'" in capsys.readouterr().err


def test_runs_from_a_run_table_start_a_ledger(tmp_path):
    import numpy as np

    import recipes_jax as rj

    values = np.array([[[3.0], [2.5], [np.nan]], [[np.nan], [np.nan], [np.nan]]])
    table = rj.RunTable(
        mixtures=[[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]],
        scales=[20.0, 60.0],
        steps=[100, 200, 300],
        values=values,
        mask=None,
        domains=["a", "b", "c"],
        metrics=["loss"],
        run_ids=["x", "y"],
    )
    space = rj.Space(domains=("c", "a", "b"), scales=(20, 60), steps=(100, 200, 300),
                     target=(60, 300))  # fmt: skip
    x, y = ledger.runs_from_table(table, space, "loss")
    assert (x.id, x.status, x.steps, x.value, x.curve) == ("x", "done", 200, 2.5, ((100, 3.0),))
    assert x.mixture == (0.0, 0.5, 0.5) and x.cost == pytest.approx(float(space.cost(20, 200)))
    assert y.status == "failed" and "no value of loss" in y.note and not y.informs_model
    path = tmp_path / "runs.csv"
    ledger.write_ledger(path, space, [x, y])
    assert ledger.read_ledger(path, space) == [x, y]
    with pytest.raises(ValueError, match="from_run_table"):
        ledger.runs_from_table(table, SPACE, "loss")
    with pytest.raises(KeyError, match="did you mean"):
        ledger.runs_from_table(table, space, "los")


def test_record_rules_for_nan_short_curves_and_corrections(tmp_path):
    path = tmp_path / "runs.csv"
    ledger.write_ledger(path, SPACE, [run(i, steps=1000) for i in range(3)])
    # an explicit nan is a run that blew up (it was refused as "no value given")
    assert ledger.record(path, SPACE, "r0", value=math.nan).status == "diverged"
    # a finite curve that stops early gives no final value: refused, not "diverged"
    with pytest.raises(ValueError, match=r"ends at step 500, before the run's 1000 steps"):
        ledger.record(path, SPACE, "r1", curve=[(500, 3.0)])
    assert ledger.record(path, SPACE, "r1", curve=[(500, 3.0)], status="failed").curve == (
        (500, 3.0),
    )
    # correcting a value keeps the curve (its last point corrected too) and the note
    ledger.record(path, SPACE, "r2", curve=[(500, 3.0), (1000, 2.61)], note="seed 0")
    fixed = ledger.record(path, SPACE, "r2", value=2.62, overwrite=True)
    assert fixed.value == 2.62 and fixed.note == "seed 0"
    assert fixed.curve == ((500, 3.0), (1000, 2.62))
    # a new curve that contradicts the value given beside it is refused
    with pytest.raises(ValueError, match=r"curve has 2.5 at its 1000 steps but the value"):
        ledger.record(path, SPACE, "r2", value=2.6, curve=[(1000, 2.5)], overwrite=True)
    ledger.record(path, SPACE, "r1", value=2.7, overwrite=True)
    back = {r.id: r for r in ledger.read_ledger(path, SPACE)}
    assert back["r1"].status == "done" and back["r1"].curve == ((500, 3.0),)


def test_a_ledger_saved_by_a_spreadsheet_reads_and_bad_bytes_are_located(tmp_path):
    path = tmp_path / "runs.csv"
    ledger.write_ledger(path, SPACE, [run(0, note="café")])
    text = path.read_text(encoding="utf-8")
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    assert ledger.read_ledger(tmp_path / "bom.csv", SPACE)[0].note == "café"
    (tmp_path / "cp1252.csv").write_bytes(text.encode("cp1252"))
    with pytest.raises(ValueError, match=r"not UTF-8 text: byte 0xe9 at line 2, column \d+"):
        ledger.read_ledger(tmp_path / "cp1252.csv", SPACE)


def test_writes_keep_links_permissions_and_the_umask(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        shared = tmp_path / "shared"
        shared.mkdir()
        target = shared / "runs.csv"
        ledger.write_ledger(target, SPACE, [run(0), run(1)])
        assert stat.S_IMODE(target.stat().st_mode) == 0o644  # not mkstemp's private 0600
        target.chmod(0o664)
        link = tmp_path / "runs.csv"
        link.symlink_to(target)
        ledger.record(link, SPACE, "r1", value=2.5)
        assert link.is_symlink()  # the link is kept and its target updated
        assert {r.id: r.status for r in ledger.read_ledger(target, SPACE)}["r1"] == "done"
        assert stat.S_IMODE(target.stat().st_mode) == 0o664
    finally:
        os.umask(old)


def test_a_held_lock_makes_other_writers_wait_then_proceed(tmp_path):
    import threading
    import time

    from recipes_jax.atomic import file_lock

    path = tmp_path / "runs.csv"
    ledger.write_ledger(path, SPACE, [run(0), run(1)])
    done = threading.Event()

    def record_r0():
        ledger.record(path, SPACE, "r0", value=2.5)
        done.set()

    with file_lock(path):
        worker = threading.Thread(target=record_r0)
        worker.start()
        time.sleep(0.5)
        assert not done.is_set()  # waiting for the lock
        with pytest.raises(TimeoutError, match="being updated by another command"):
            with file_lock(path, timeout_s=0.2):
                pass
    worker.join(timeout=30)
    assert done.is_set()
    assert ledger.read_ledger(path, SPACE)[0].status == "done"


def test_append_runs_keeps_what_others_wrote_and_renumbers_taken_ids(tmp_path):
    path = tmp_path / "runs.csv"
    ledger.write_ledger(path, SPACE, [run(0), run(1)])
    snapshot = ledger.read_ledger(path, SPACE)
    ledger.record(path, SPACE, "r1", value=2.5)  # someone else, meanwhile
    ledger.write_ledger(path, SPACE, [*ledger.read_ledger(path, SPACE), run(2)])
    before, added = ledger.append_runs(path, SPACE, [run(2), run(3)])
    assert not ledger.same_runs(before, snapshot) and ledger.same_runs(before[:1], snapshot[:1])
    assert [r.id for r in added] == ["r4", "r3"]
    back = ledger.read_ledger(path, SPACE)
    assert [r.id for r in back] == ["r0", "r1", "r2", "r4", "r3"]
    assert back[1].status == "done" and back[1].value == 2.5
