"""Throughput: mfms_bo seed sweeps, the simulator, and the BoTorch loop, side by side.

Measures, on whatever machine it runs on (CPU by default; a GPU when JAX sees one):

- Campaign throughput: ``rj.sweep`` of mfms_bo (the speedup benchmark's ``standard`` preset,
  ``--asks`` asks per campaign, float64) on the paper world (a ``Simulator`` over
  ``surrogate_runs.pkl``, StackExchange CE) at each of ``--seeds`` seed counts. Compile time
  (``lower().compile()``) separate from run time; run time is the median of ``--repeats``
  runs (one run above 8 seeds). The budget is large enough that every ask is run, so seeds x
  asks counts real asks. Memory: peak host RSS of the process (each seed count runs in a
  fresh subprocess), XLA's memory plan (working buffers per call) and, on a GPU, the
  device's peak bytes in use.
- Compile time against the number of asks (1 seed): a campaign is one ``lax.scan``, so it
  should not grow.
- Simulator throughput: queries per second at batch sizes ``--sim-batches``.
- The BoTorch loop (``benchmarks/botorch_mfms.py``, same world, kernel, acquisition and
  candidate screen) for ``--botorch-seeds`` campaigns of ``--asks`` asks, run in the same
  invocation (after ours, never concurrently) with ``--botorch-python`` (an environment with
  ``pip install -e '.[botorch,paper]'``); per-seed times are compared with ours.

Prints a table and writes JSON (``--out``, rewritten atomically after every measurement)::

    python benchmarks/throughput.py --botorch-python /path/to/botorch-venv/bin/python
    python benchmarks/throughput.py --quick     # 1 and 4 seeds, 10 asks, small batches

Needs ``../shared/data/surrogate_runs.pkl`` (a pickle: loaded as trusted, it is ours).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results" / "throughput.json"
UNLIMITED_BUDGET = 1e6  # target-run units: far more than 100 asks can spend
ENVIRONMENT = ("MALLOC_ARENA_MAX", "XLA_FLAGS", "RECIPES_JAX_LAPACK_THREADS")
STEPS = ("campaigns", "compile", "memory", "simulator", "botorch", "botorch_every")


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _in_flight(env, devices: int, batch: int) -> int:
    """Seeds whose working sets are live at once on each device: one where seeds are looped."""
    from recipes_jax import campaign

    return 1 if campaign._loops_seeds(env, devices) else batch


def _setup(args):
    import jax

    from recipes_jax.cpu_devices import use_cpu_cores

    use_cpu_cores(args.cpu_devices)  # before JAX starts: seeds are spread over these

    jax.config.update("jax_enable_x64", True)  # a benchmark script may: GP fitting in float64
    from recipes_jax import benchmark

    problem = benchmark.paper_problem("stackexchange", args.paper_runs, trusted=True)
    return jax, benchmark, problem


def _strategy(benchmark, problem, args, asks):
    import recipes_jax as rj

    return rj.mfms_bo(problem.space, **{**benchmark.PRESETS[args.preset], "num_asks": asks})


def child_campaign(args) -> dict:
    """One seed count: compile, run, time, memory."""
    import numpy as np

    jax, benchmark, problem = _setup(args)
    from recipes_jax import campaign

    S = args.child_seeds
    strategy = _strategy(benchmark, problem, args, args.asks)
    keys = jax.random.split(jax.random.key(args.seed), S)
    devices = len(jax.devices())
    batch = min(-(-S // devices), args.batch_size)  # per device
    rss_before = _rss_mb()
    run, compile_s = campaign.compile_sweep(
        strategy, problem.env, UNLIMITED_BUDGET, keys, batch_size=batch
    )
    times = []
    for _ in range(args.repeats if S <= 8 else 1):
        start = time.perf_counter()
        traces = jax.block_until_ready(run())
        times.append(time.perf_counter() - start)
    run_s = float(np.median(times))
    asks = int(np.sum(np.asarray(traces.active)))
    device = jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    return {
        "seeds": S,
        "devices": devices,
        "batch_size": batch,
        "seeds_in_flight": _in_flight(problem.env, devices, batch),
        "per_device_programs": run.per_device_programs,
        "asks_per_seed": args.asks,
        "active_asks": asks,
        "compile_s": compile_s,
        "run_s": run_s,
        "run_s_all": times,
        "s_per_seed": run_s / S,
        "seed_asks_per_s": asks / run_s,
        "ms_per_seed_ask": 1e3 * run_s / asks,
        "rss_before_mb": rss_before,
        "peak_rss_mb": _peak_rss_mb(),
        "xla_memory": run.memory(),
        "device_peak_bytes": None if not stats else stats.get("peak_bytes_in_use"),
        "device": str(device),
    }


def child_compile(args) -> dict:
    """Compile time of a 1-seed campaign at several numbers of asks."""
    jax, benchmark, problem = _setup(args)
    from recipes_jax import campaign

    rows = []
    for asks in args.compile_asks:
        strategy = _strategy(benchmark, problem, args, asks)
        keys = jax.random.split(jax.random.key(args.seed), 1)
        _, seconds = campaign.compile_sweep(
            strategy, problem.env, UNLIMITED_BUDGET, keys, devices=1
        )
        rows.append({"asks": asks, "compile_s": seconds})
    return {"compile_vs_asks": rows}


def child_memory(args) -> dict:
    """XLA's memory plan (compile only) of an 8-seed batch at several buffer capacities."""
    jax, benchmark, problem = _setup(args)
    import recipes_jax as rj
    from recipes_jax import campaign

    keys = jax.random.split(jax.random.key(args.seed), 8)
    rows = []
    for capacity in args.memory_capacities:
        options = {**benchmark.PRESETS[args.preset], "num_asks": args.asks, "capacity": capacity}
        strategy = rj.mfms_bo(problem.space, **options)
        run, seconds = campaign.compile_sweep(
            strategy, problem.env, UNLIMITED_BUDGET, keys, devices=1, batch_size=8
        )
        rows.append(
            {
                "capacity": capacity,
                "seeds": 8,
                "in_flight": _in_flight(problem.env, 1, 8),
                "compile_s": seconds,
                **run.memory(),
            }
        )
    return {"memory_vs_capacity": rows}


def _time_simulator(problem, args, dtype_name: str) -> list[dict]:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from recipes_jax import optimize

    space = problem.space
    query = jax.jit(lambda w, m, s: problem.env(w, m, s))
    rng = np.random.default_rng(args.seed)
    rows = []
    for B in args.sim_batches:
        w = optimize.uniform_simplex(jax.random.key(args.seed), (B,), space.num_domains)
        m = jnp.asarray(rng.choice(np.asarray(space.scales), B), w.dtype)
        s = jnp.asarray(rng.choice(np.asarray(space.steps), B), w.dtype)
        start = time.perf_counter()
        jax.block_until_ready(query(w, m, s))
        first = time.perf_counter() - start
        times = []
        for _ in range(args.repeats if B <= 10**6 else 1):
            start = time.perf_counter()
            y = jax.block_until_ready(query(w, m, s))
            times.append(time.perf_counter() - start)
        run_s = float(np.median(times))
        assert str(y.dtype) == dtype_name, (y.dtype, dtype_name)
        rows.append(
            {
                "batch": B,
                "first_call_s": first,
                "run_s": run_s,
                "queries_per_s": B / run_s,
                "finite_fraction": float(np.mean(np.isfinite(np.asarray(y)))),
                "dtype": dtype_name,
            }
        )
    return rows


def child_simulator(args) -> dict:
    """Queries per second of the paper-world simulator at each batch size, in float32 (the
    library's default: built without x64) and in float64 (as campaigns here run it)."""
    import jax

    from recipes_jax import benchmark
    from recipes_jax.cpu_devices import use_cpu_cores

    use_cpu_cores(args.cpu_devices)  # as _setup below does, but before JAX starts

    problem32 = benchmark.paper_problem("stackexchange", args.paper_runs, trusted=True)
    rows = _time_simulator(problem32, args, "float32")
    del problem32
    _, _, problem64 = _setup(args)
    assert jax.config.jax_enable_x64
    return {"simulator": rows + _time_simulator(problem64, args, "float64")}


def _child(args, mode: str, **extra) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, *args.passthrough]
    for key, value in extra.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    # compile times are compiles, never reads of a persistent compilation cache
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if out.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_botorch(args, *, seeds: int, recommend_every: bool = False) -> dict:
    """The BoTorch loop for ``seeds`` campaigns of ``args.asks`` asks. By default it
    recommends only at the report budgets (the fastest BoTorch, so the conservative comparison);
    ``recommend_every``: after every tell, as recipes_jax's campaigns do."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "botorch.json"
        cmd = [
            str(args.botorch_python),
            str(ROOT / "benchmarks" / "botorch_mfms.py"),
            "--seeds",
            str(seeds),
            "--budget",
            str(UNLIMITED_BUDGET),
            "--max-asks",
            str(args.asks),
            "--threads",
            str(args.botorch_threads),
            "--paper-runs",
            str(args.paper_runs),
            "--out",
            str(out),
            *(["--recommend-every"] if recommend_every else []),
        ]
        start = time.perf_counter()
        # BoTorch's scipy keeps its usual BLAS threads (importing recipes_jax would set 1)
        env = dict(os.environ, RECIPES_JAX_LAPACK_THREADS="keep")
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
        if done.returncode:
            raise RuntimeError(f"BoTorch loop failed:\n{done.stderr[-4000:]}")
        report = json.loads(out.read_text())
    seeds = report["seeds"]
    walls = [s["wall_s"] for s in seeds]
    asks = [s["asks"] for s in seeds]
    import numpy as np

    return {
        "seeds": len(seeds),
        "asks_per_seed": asks,
        "wall_s_per_seed": walls,
        "median_s_per_seed": float(np.median(walls)),
        "median_s_per_ask": float(np.median([w / a for w, a in zip(walls, asks, strict=True)])),
        "threads": args.botorch_threads,
        "recommend_every_ask": recommend_every,
        "versions": report.get("versions"),
        "process_s": time.perf_counter() - start,
    }


def _write(path: Path, results: dict) -> None:
    from recipes_jax import analysis
    from recipes_jax.atomic import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(analysis.to_jsonable(results), indent=2).encode()
    atomic_write(path, lambda f: f.write(text), prefix=".throughput-")


def _summarize(results: dict, goal_seeds: int) -> list[str]:
    lines = []
    bt = results.get("botorch")
    for row in results["campaigns"]:
        ratio = bt["median_s_per_seed"] / row["s_per_seed"] if bt else None
        row["speedup_per_seed_vs_botorch"] = ratio
        per_ask = bt["median_s_per_ask"] / (row["ms_per_seed_ask"] / 1e3) if bt else None
        row["speedup_per_seed_ask_vs_botorch"] = per_ask
    lines.append(
        f"{'seeds':>6} {'devs':>4} {'batch':>6} {'flight':>6} {'compile s':>10} {'run s':>9} "
        f"{'s/seed':>8} "
        f"{'ms/seed-ask':>12} {'seed-asks/s':>12} {'peak RSS MB':>12} {'XLA temp MB':>12} "
        f"{'vs BoTorch':>11}"
    )
    for r in results["campaigns"]:
        temp = (r["xla_memory"] or {}).get("temp", float("nan")) / 2**20
        ratio = r["speedup_per_seed_vs_botorch"]
        lines.append(
            f"{r['seeds']:>6} {r.get('devices', 1):>4} {r['batch_size']:>6} "
            f"{r.get('seeds_in_flight', r['batch_size']):>6} "
            f"{r['compile_s']:>10.1f} {r['run_s']:>9.1f} "
            f"{r['s_per_seed']:>8.3f} {r['ms_per_seed_ask']:>12.2f} "
            f"{r['seed_asks_per_s']:>12.1f} {r['peak_rss_mb']:>12.0f} {temp:>12.0f} "
            f"{'-' if ratio is None else f'{ratio:.0f}x':>11}"
        )
    for label, b in (("", bt), (", recommending after every tell", results.get("botorch_every"))):
        if b:
            lines.append(
                f"BoTorch loop{label}: {b['seeds']} seeds x {b['asks_per_seed']} asks, "
                f"{b['median_s_per_seed']:.1f} s per seed ({b['median_s_per_ask']:.2f} s/ask), "
                f"torch threads {b['threads']}"
            )
    for r in results["campaigns"]:
        memory = r["xla_memory"] or {}
        if memory:
            # XLA's plan is per device: each holds its share of the seeds' traces
            in_flight = r.get("seeds_in_flight", r["batch_size"])
            devices = r.get("devices", 1)
            trace_per_seed = memory["output"] * devices / r["seeds"]
            per_seed = memory["temp"] / in_flight + trace_per_seed
            r["bytes_per_seed_in_flight"] = per_seed
            r["trace_bytes_per_seed"] = trace_per_seed
            lines.append(
                f"memory, {r['seeds']} seeds, per device ({in_flight} in flight): XLA working "
                f"buffers {memory['temp'] / 2**20:.1f} MB + traces "
                f"{memory['output'] / 2**20:.1f} MB = {per_seed / 2**20:.1f} MB per seed in "
                f"flight (traces {trace_per_seed / 2**10:.0f} KB per seed)"
            )
    for row in results.get("memory_vs_capacity", []):
        in_flight = row.get("in_flight", row["seeds"])
        lines.append(
            f"memory, capacity {row['capacity']:>4} rows, {row['seeds']} seeds "
            f"({in_flight} in flight): XLA working buffers {row['temp'] / 2**20:.1f} MB "
            f"({row['temp'] / in_flight / 2**20:.1f} MB per seed in flight)"
        )
    for row in results.get("compile_vs_asks", []):
        lines.append(f"compile, 1 seed, {row['asks']:>4} asks: {row['compile_s']:.1f} s")
    for row in results.get("simulator", []):
        lines.append(
            f"simulator {row.get('dtype', '')} batch {row['batch']:>11,d}: "
            f"{row['queries_per_s']:.3g} queries/s "
            f"({row['run_s'] * 1e3:.1f} ms; first call {row['first_call_s']:.2f} s)"
        )
    goal = [r for r in results["campaigns"] if r["seeds"] == goal_seeds]
    if goal and bt:
        ratio = goal[0]["speedup_per_seed_vs_botorch"]
        verdict = "MET" if ratio >= 200 else "NOT MET"
        lines.append(
            f"goal: {goal_seeds}-seed sweep >= 200x per seed vs BoTorch: {ratio:.0f}x {verdict}"
        )
    compiles = [r["compile_s"] for r in results["campaigns"]]
    compiles += [r["compile_s"] for r in results.get("compile_vs_asks", [])]
    if compiles:
        worst = max(compiles)
        lines.append(
            f"goal: compile < 60 s: worst {worst:.1f} s {'MET' if worst < 60 else 'NOT MET'}"
        )
    if results.get("machine", {}).get("backend") == "gpu":
        for r in results["campaigns"]:
            if r["seeds"] >= 1024 and r["asks_per_seed"] >= 100:
                verdict = "MET" if r["run_s"] < 60 else "NOT MET"
                lines.append(
                    f"goal (GPU): {r['seeds']:,} seeds x {r['asks_per_seed']} asks < 60 s after "
                    f"compilation: {r['run_s']:.1f} s {verdict}"
                )
        simulator = results.get("simulator", [])
        if simulator:
            best = max(simulator, key=lambda row: row["queries_per_s"])
            verdict = "MET" if best["queries_per_s"] >= 1e8 else "NOT MET"
            lines.append(
                f"goal (GPU): simulator >= 1e8 queries/s: {best['queries_per_s']:.3g} "
                f"({best['dtype']}, batch {best['batch']:,}) {verdict}"
            )
    results["summary"] = lines
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--asks", type=int, default=100)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=64,
        help="seeds per batch (vmapped on GPU; CPU loops over them)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--cpu-devices",
        type=int,
        default=None,
        help="JAX CPU devices for the campaign sweeps (default: one per core)",
    )
    parser.add_argument("--preset", default="standard")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compile-asks", type=int, nargs="+", default=[10, 30, 100])
    parser.add_argument("--memory-capacities", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument(
        "--steps",
        nargs="+",
        choices=STEPS,
        default=list(STEPS),
        help="measurements to run; the others are kept from an existing --out file",
    )
    parser.add_argument(
        "--sim-batches", type=int, nargs="+", default=[10**3, 10**4, 10**5, 10**6, 10**7]
    )
    parser.add_argument("--botorch-python", type=Path, default=None)
    parser.add_argument("--botorch-seeds", type=int, default=2)
    parser.add_argument("--botorch-threads", type=int, default=os.cpu_count())
    parser.add_argument("--paper-runs", type=Path, default=DATA / "surrogate_runs.pkl")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--child", choices=["campaign", "compile", "memory", "simulator"], help=argparse.SUPPRESS
    )
    parser.add_argument("--child-seeds", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        fn = {
            "campaign": child_campaign,
            "compile": child_compile,
            "memory": child_memory,
            "simulator": child_simulator,
        }
        print(json.dumps(fn[args.child](args)))
        return 0
    if not args.paper_runs.exists():
        parser.error(f"{args.paper_runs} not found: the paper world needs the paper's run table")
    import jax

    gpu = jax.default_backend() == "gpu"
    if args.quick:
        args.asks, args.compile_asks, args.repeats = 10, [5, 10], 2
        args.seeds = args.seeds or [1, 4]
        args.sim_batches = [10**3, 10**4]
        args.botorch_seeds = 1
    args.seeds = args.seeds or ([1, 8, 64, 256, 1024] if gpu else [1, 8, 64, 256])
    out = args.out or (RESULTS.with_name("throughput_quick.json") if args.quick else RESULTS)
    args.passthrough = [
        "--asks", str(args.asks), "--batch-size", str(args.batch_size),
        "--repeats", str(args.repeats), "--preset", args.preset, "--seed", str(args.seed),
        *(["--cpu-devices", str(args.cpu_devices)] if args.cpu_devices else []),
        "--paper-runs", str(args.paper_runs),
        "--compile-asks", *map(str, args.compile_asks),
        "--memory-capacities", *map(str, args.memory_capacities),
        "--sim-batches", *map(str, args.sim_batches),
    ]  # fmt: skip
    results = {
        "settings": {
            "world": "paper",
            "objective": "stackexchange",
            "strategy": "mfms_bo",
            "preset": args.preset,
            "asks_per_campaign": args.asks,
            "budget": UNLIMITED_BUDGET,
            "dtype": "float64",
            "batch_size": args.batch_size,
            "repeats": args.repeats,
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            # settings outside the command line that change speed or memory
            "environment": {k: os.environ[k] for k in ENVIRONMENT if k in os.environ},
        },
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "jax": jax.__version__,
            "backend": jax.default_backend(),
            "devices": [str(d) for d in jax.devices()],
        },
        "campaigns": [],
    }
    if set(args.steps) != set(STEPS) and out.exists():
        kept = json.loads(out.read_text())
        results.update({k: v for k, v in kept.items() if k not in ("settings", "machine")})
    if "campaigns" in args.steps:
        results["campaigns"] = []
        for S in args.seeds:
            row = _child(args, "campaign", child_seeds=S)
            results["campaigns"].append(row)
            print(
                f"{S} seeds: compile {row['compile_s']:.1f} s, run {row['run_s']:.1f} s, "
                f"{row['ms_per_seed_ask']:.2f} ms/seed-ask, peak RSS {row['peak_rss_mb']:.0f} MB",
                flush=True,
            )
            _write(out, results)
    for step in ("compile", "memory", "simulator"):
        if step in args.steps:
            results.update(_child(args, step))
            _write(out, results)
    if args.botorch_python and "botorch" in args.steps:
        print("BoTorch loop ...", flush=True)
        results["botorch"] = run_botorch(args, seeds=args.botorch_seeds)
        _write(out, results)
    if args.botorch_python and "botorch_every" in args.steps:
        print("BoTorch loop, recommending after every tell ...", flush=True)
        results["botorch_every"] = run_botorch(args, seeds=1, recommend_every=True)
    for line in _summarize(results, goal_seeds=64):
        print(line)
    _write(out, results)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
