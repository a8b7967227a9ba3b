import numpy as np

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
    pkl = tmp_path / "runs.pkl"
    pkl.write_bytes(b"x")
    assert main(["convert", str(pkl), "-o", str(tmp_path / "o.npz")]) == 2
    assert "pickle files can run arbitrary code" in capsys.readouterr().err


def test_demo_runs(capsys):
    assert main(["demo", "--batch", "2000", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "queries/s" in out and "Built the simulator" in out
