"""The speedup benchmark: tables on known inputs, the paper world's trust rule, a quick run."""

import json

import jax
import numpy as np
import pytest

import recipes_jax as rj
from recipes_jax import benchmark, campaign
from recipes_jax.cli import main


def _result(name, cost, regret, seeds=8, noise=0.0, seed=0):
    """A MethodResult whose seeds all follow regret(cost), times a per-seed factor."""
    rng = np.random.default_rng(seed)
    factor = 1.0 + noise * rng.standard_normal((seeds, 1))
    cost = np.broadcast_to(cost, (seeds, len(cost))).copy()
    return benchmark.MethodResult(
        name,
        cost,
        np.broadcast_to(regret, cost.shape) * factor,
        np.ones(cost.shape, bool),
        np.zeros(cost.shape),
        np.zeros(cost.shape),
        1.0,
        2.0,
    )


def test_compare_reads_speedups_and_budgets_off_known_curves():
    cost = np.arange(1.0, 51.0)
    slow = _result("random_search", cost, 1.0 / cost)
    # mfms_bo reaches every regret level at a quarter of the cost
    fast = _result("mfms_bo", cost / 4.0, 1.0 / cost)
    # hyperband: twice as fast as random search
    mid = _result("hyperband", cost / 2.0, 1.0 / cost)
    tables = benchmark.compare([fast, slow, mid], num_bootstrap=50)
    speedups = {s["baseline"]: s for s in tables["speedups"]}
    assert speedups["random_search"]["speedup"] == pytest.approx(4.0, rel=0.03)
    assert speedups["hyperband"]["speedup"] == pytest.approx(2.0, rel=0.03)
    assert speedups["random_search"]["level"] == pytest.approx(1.0 / 50)
    methods = {m["method"]: m for m in tables["methods"]}
    # regret at budget 10: random search's last ask with cost <= 10 is cost 10 -> 1/10;
    # mfms_bo's at budget 5 is ask 20 (cost 20 / 4) -> 1/20
    assert methods["random_search"]["regret_at"]["10"]["median"] == pytest.approx(0.1)
    assert methods["mfms_bo"]["regret_at"]["5"]["median"] == pytest.approx(1.0 / 20)
    assert methods["mfms_bo"]["median_spent"] == pytest.approx(12.5)
    goal = benchmark.goal_check(tables["speedups"])
    assert goal["vs_random_search"]["met"] is False  # 4x < 5x
    assert goal["vs_best_mf_baseline"]["baseline"] == "hyperband"
    assert goal["vs_best_mf_baseline"]["met"] is False  # 2x < 3x
    text = benchmark.format_tables("x/y", {**tables, "goal": goal})
    assert "NOT MET" in text and "hyperband" in text


def test_compare_needs_the_reference_method():
    cost = np.arange(1.0, 5.0)
    with pytest.raises(ValueError, match="reference method 'mfms_bo'"):
        benchmark.compare([_result("random_search", cost, 1.0 / cost)])


def test_paper_world_refuses_a_pickle_unless_trusted(tmp_path):
    path = tmp_path / "runs.pkl"
    path.write_bytes(b"not loaded")
    with pytest.raises(ValueError, match="loading a pickle runs code"):
        benchmark.paper_problem("stackexchange", path)
    with pytest.raises(ValueError, match="unknown objective 'loss'"):
        benchmark.paper_problem("loss", path)
    with pytest.raises(FileNotFoundError, match="needs the paper's run table"):
        benchmark.paper_problem("stackexchange", tmp_path / "absent.pkl")


def test_compile_sweep_equals_sweep(world, truth):
    strategy = rj.random_search(world.space)
    keys = jax.random.split(jax.random.key(3), 3)
    run, seconds = campaign.compile_sweep(strategy, truth, 4.0, keys, batch_size=2)
    expected = rj.sweep(strategy, truth, 4.0, keys, batch_size=2)
    assert seconds > 0
    jax.tree_util.tree_map(np.testing.assert_array_equal, run(), expected)


@pytest.mark.slow
def test_quick_benchmark_command_writes_tables_plots_and_json(tmp_path, capsys):
    methods = "mfms_bo,random_search,hyperband"
    argv = ["benchmark", "--quick", "--methods", methods, "--out", str(tmp_path)]
    assert main([*argv, "--objectives", "hellaswag", "--seeds", "3"]) == 0
    out = capsys.readouterr().out
    assert "default/hellaswag" in out and "speedup of mfms_bo over" in out
    report = json.loads((tmp_path / "speedup.json").read_text())
    (problem,) = report["problems"]
    assert problem["maximize"] is True and problem["world"] == "default"
    assert {m["method"] for m in problem["methods"]} == set(methods.split(","))
    assert {s["baseline"] for s in problem["speedups"]} == {"random_search", "hyperband"}
    for m in problem["methods"]:
        assert m["seeds"] == 3 and m["median_spent"] <= 5.0
        assert set(m["regret_at"]) == {"5"}
        regret = m["regret_at"]["5"]["median"]
        assert regret is not None and float(regret) >= 0.0
    assert (tmp_path / problem["plot"]).stat().st_size > 0
    assert (tmp_path / problem["fidelity_plot"]).stat().st_size > 0
    assert report["machine"]["x64"] is True
    assert not jax.config.jax_enable_x64  # the command leaves the global flag alone
    assert main(["benchmark", "--quick", "--worlds", "paper"]) == 2
    assert "--paper-runs PATH" in capsys.readouterr().err
    assert main(["benchmark", "--quick", "--methods", "random_search"]) == 2
    assert "must include mfms_bo" in capsys.readouterr().err


def test_compiled_sweep_reports_xla_memory_and_campaigns_use_cpu_options(world, truth):
    strategy = rj.random_search(world.space)
    keys = jax.random.split(jax.random.key(3), 4)
    run, _ = campaign.compile_sweep(strategy, truth, 4.0, keys, batch_size=2)
    memory = run.memory()
    assert memory is not None and set(memory) == {"temp", "argument", "output", "code"}
    assert memory["output"] > 0 and all(v >= 0 for v in memory.values())
    if jax.default_backend() == "cpu":
        assert campaign.compiler_options() in (None, campaign.CPU_COMPILER_OPTIONS)


def _load_throughput_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "throughput.py"
    spec = importlib.util.spec_from_file_location("throughput_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _campaign_row(seeds, run_s):
    return {
        "seeds": seeds,
        "devices": 1,
        "batch_size": seeds,
        "seeds_in_flight": seeds,
        "asks_per_seed": 100,
        "compile_s": 30.0,
        "run_s": run_s,
        "s_per_seed": run_s / seeds,
        "ms_per_seed_ask": 1e3 * run_s / (100 * seeds),
        "seed_asks_per_s": 100 * seeds / run_s,
        "peak_rss_mb": 2000.0,
        "xla_memory": {"temp": 2**30, "output": 2**24, "argument": 0, "code": 0},
    }


@pytest.mark.parametrize(
    "run_s, queries_per_s, verdict", [(42.0, 2e8, "MET"), (75.0, 5e7, "NOT MET")]
)
def test_throughput_summary_gives_a_verdict_on_each_gpu_goal(run_s, queries_per_s, verdict):
    throughput = _load_throughput_script()
    simulator = [
        {"batch": B, "queries_per_s": q, "dtype": "float32", "run_s": B / q, "first_call_s": 1.0}
        for B, q in ((10**5, queries_per_s / 10), (10**7, queries_per_s))
    ]
    results = {
        "machine": {"backend": "gpu"},
        "campaigns": [_campaign_row(64, 10.0), _campaign_row(1024, run_s)],
        "simulator": simulator,
    }
    lines = [line for line in throughput._summarize(results, 64) if line.startswith("goal (GPU)")]
    assert len(lines) == 2, lines
    assert (
        lines[0].startswith("goal (GPU): 1,024 seeds x 100 asks") and f"{run_s:.1f} s" in lines[0]
    )
    assert "batch 10,000,000" in lines[1]
    assert all(line.endswith(f" {verdict}") for line in lines), lines
    results["machine"]["backend"] = "cpu"  # the GPU goals are judged on a GPU only
    assert not [line for line in throughput._summarize(results, 64) if "(GPU)" in line]


def test_the_gpu_check_script_parses_and_states_its_usage():
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)  # syntax only
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "usage: bash benchmarks/gpu_check.sh prepare|run" in done.stderr


def test_compare_measures_over_the_whole_budget_and_goal_check_sees_unknowns():
    # the baseline reaches 0.01 at 60 units, mfms_bo at 30; with a budget of 100 the speedup
    # used to be read off a grid ending at the largest report budget (50): 1.0 at level 1.0
    cost = np.arange(1.0, 101.0)
    base = _result("random_search", cost, np.where(cost < 60, 1.0, 0.01))
    ours = _result("mfms_bo", cost, np.where(cost < 30, 0.5, 0.01))
    budgets = [b for b in benchmark.REPORT_BUDGETS if b <= 100.0]
    (s,) = benchmark.compare([ours, base], budgets=budgets, budget=100.0, num_bootstrap=20)[
        "speedups"
    ]
    assert s["level"] == pytest.approx(0.01) and s["speedup"] == pytest.approx(2.0, rel=0.02)
    # an unknown (NaN) speedup over one multi-fidelity baseline is the least-beaten one, so
    # the goal cannot be judged "met" on the other baseline
    nan = {"speedup": float("nan"), "ci_low": float("nan")}
    goal = benchmark.goal_check(
        [
            {"baseline": "hyperband", "speedup": 9.0, "ci_low": 8.0},
            {"baseline": "mf_bo_steps", **nan},
        ]
    )
    assert goal["vs_best_mf_baseline"]["baseline"] == "mf_bo_steps"
    assert goal["vs_best_mf_baseline"]["met"] is False


def test_benchmark_without_matplotlib_keeps_its_results(tmp_path, monkeypatch):
    """The plots came before speedup.json, so without the plot extra a finished run raised
    ImportError and left no results."""
    space = rj.Space.paper()
    optimum = rj.analysis.Optimum(np.full(5, 0.2), 1.0, 1, 1.0)
    problem = benchmark.Problem("default", "stackexchange", "m", space, None, None, optimum)
    cost = np.arange(1.0, 11.0)
    results = {
        "mfms_bo": _result("mfms_bo", cost / 2, 1.0 / cost, seeds=2),
        "random_search": _result("random_search", cost, 1.0 / cost, seeds=2),
    }
    monkeypatch.setattr(
        benchmark, "run_method", lambda p, strategy, *a, **k: results[strategy.name]
    )
    monkeypatch.setattr(rj.analysis, "can_plot", lambda: False)
    lines = []
    report = benchmark.run_benchmark(
        [lambda: problem],
        methods=["mfms_bo", "random_search"],
        seeds=2,
        budget=10.0,
        out_dir=tmp_path,
        num_bootstrap=10,
        log=lines.append,
    )
    saved = json.loads((tmp_path / "speedup.json").read_text())
    assert saved["problems"][0]["speedups"][0]["speedup"] == pytest.approx(2.0, rel=0.03)
    assert "plot" not in saved["problems"][0] and len(report["problems"]) == 1
    assert any("no plots: matplotlib is not installed" in line for line in lines)
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize(
    "option, message",
    [
        (["--seeds", "0"], "--seeds must be >= 1; got 0"),
        (["--budget", "0"], "--budget must be a positive number of target runs; got 0.0"),
        (["--budget", "-3"], "got -3.0"),
    ],
)
def test_benchmark_command_refuses_zero_seeds_and_budgets(option, message, capsys):
    # `--seeds 0` used to run 128 seeds (or 4 with --quick): `args.seeds or default`
    assert main(["benchmark", "--quick", *option]) == 2
    assert message in capsys.readouterr().err
