import json

import jax
import numpy as np
import pytest

import recipes_jax as rj
from recipes_jax.cli import main

from .conftest import small_design


def test_summary_simulate_and_convert(tmp_path, default_world, capsys):
    table = small_design(default_world, runs=8, noise=0.0)
    path = tmp_path / "t.npz"
    table.save(path)
    assert main(["summary", str(path)]) == 0
    assert "RunTable: 24 runs" in capsys.readouterr().out
    metric = "eval/RedPajamaStackExchange/CrossEntropyLoss"
    simulate = ["simulate", "--table", str(path), "--metric", metric, "--steps", "5000"]
    code = main([*simulate, "--mixture", "0.2,0.2,0.2,0.2,0.2", "--scale", "150"])
    out = capsys.readouterr().out
    assert code == 0 and "at scale 150M, 5000 steps" in out
    assert np.isfinite(float(out.rsplit(":", 1)[1]))
    code = main([*simulate, "--mixture", "0.2,0.2,0.2,0.2,0.2", "--scale", "5000"])
    assert code == 2 and "outside the table's scales" in capsys.readouterr().err
    code = main([*simulate, "--mixture", "0.5,0.6,0,0,0", "--scale", "150"])
    assert code == 2 and "summing to 1.1" in capsys.readouterr().err
    # a table of several metrics without --metric: the fix is a flag, not a keyword argument
    no_metric = ["simulate", "--table", str(path), "--steps", "5000", "--scale", "150"]
    assert main([*no_metric, "--mixture", "0.2,0.2,0.2,0.2,0.2"]) == 2
    err = capsys.readouterr().err
    assert "11 metrics; choose one with --metric, e.g. --metric '" in err
    pkl = tmp_path / "runs.pkl"
    pkl.write_bytes(b"x")
    assert main(["convert", str(pkl), "-o", str(tmp_path / "o.npz")]) == 2
    err = capsys.readouterr().err
    assert "pickle files can run arbitrary code" in err
    assert f"recipes-jax convert {pkl} --trusted -o {tmp_path / 'o.npz'}" in err


def test_user_warnings_print_as_one_line_naming_the_command(tmp_path, capsys):
    # A table whose runs never use domain 'c': the Simulator warns, and the command line
    # shows the warning as its own message, not as Python's "file:line: UserWarning" block.
    w = np.random.default_rng(0).dirichlet(np.ones(2), 12)
    table = rj.RunTable(
        mixtures=np.pad(w, ((0, 0), (0, 1))),
        scales=np.full(12, 30.0),
        steps=np.array([1]),
        values=(1.0 + w[:, :1])[:, :, None],
        mask=None,
        domains=["a", "b", "c"],
        metrics=["loss"],
    )
    path = tmp_path / "t.npz"
    table.save(path)
    args = ["simulate", "--table", str(path), "--mixture", "0.4,0.4,0.2", "--scale", "30"]
    assert main([*args, "--steps", "1"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("recipes-jax simulate: warning: metric 'loss': every run with data ")
    assert "'c' (always 0)" in err and "UserWarning" not in err and "cli.py" not in err


@pytest.mark.slow
def test_demo_runs_both_methods_and_writes_table_plot_and_json(tmp_path, capsys):
    out_dir = tmp_path / "demo"
    args = ["demo", "--seeds", "2", "--budget", "1", "--asks", "4", "--out", str(out_dir)]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "mfms_bo" in captured.out and "random_search" in captured.out
    assert "speedup of mfms_bo over" in captured.out and "regret@1" in captured.out
    # progress bars: every seed's asks on CPU (looped), one batch's asks where vmapped
    seeds = 2 if jax.default_backend() == "cpu" else 1
    assert f"{4 * seeds}/{4 * seeds} asks" in captured.err
    assert f"{seeds}/{seeds} asks" in captured.err
    report = json.loads((out_dir / "demo.json").read_text())
    assert [m["method"] for m in report["methods"]] == ["mfms_bo", "random_search"]
    assert report["methods"][0]["seeds"] == 2 and report["plot"] == "regret_vs_cost.png"
    assert (out_dir / "regret_vs_cost.png").stat().st_size > 1000
    assert main(["demo", "--seeds", "0"]) == 2
    assert "--seeds" in capsys.readouterr().err
