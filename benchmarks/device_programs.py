"""Several CPU devices: per-device programs against one partitioned program, side by side.

``rj.sweep`` can use several devices in two ways (``per_device_programs``): every device runs
the one-device program (compiled once, loaded onto each device), or one program partitioned
over the devices with ``shard_map`` runs everywhere. This measures, for mfms_bo (the speedup
benchmark's ``standard`` preset, float64) on the paper world (StackExchange CE) or the
built-in world, in one process with ``--cpu-devices`` JAX CPU devices:

- compile time of each (``campaign.compile_sweep``: tracing, lowering and compilation, plus
  the loading onto the other devices for per-device programs), and of the one-device sweep;
- run time, the median of ``--repeats`` runs, the three alternating;
- how far each sweep's traces are from the one-device sweep's: the largest difference of
  any field, and how many seeds chose other runs (scale, steps or active), from which ask.

Prints a table and writes JSON (``--out``)::

    python benchmarks/device_programs.py                  # 16 seeds x 30 asks, 2 devices
    python benchmarks/device_programs.py --world default  # no data files needed
    python benchmarks/device_programs.py --world default --seeds 8 --preset defaults
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results" / "device_programs.json"
UNLIMITED_BUDGET = 1e6  # target-run units: every ask is run
MODES = ("one device", "per-device programs", "partitioned")


def _differences(reference, other) -> dict:
    """Largest absolute difference over every field, and the seeds that made other runs."""
    import jax
    import numpy as np

    largest = max(
        float(np.nanmax(np.abs(np.asarray(a, float) - np.asarray(b, float)), initial=0.0))
        for a, b in zip(
            jax.tree_util.tree_leaves(reference), jax.tree_util.tree_leaves(other), strict=True
        )
    )
    runs = [
        np.asarray(getattr(t.proposals, f) if f != "active" else t.active)
        for t in (reference, other)
        for f in ("scale", "steps", "active")
    ]
    changed = np.zeros(runs[0].shape, bool)
    for a, b in zip(runs[:3], runs[3:], strict=True):
        changed |= a != b
    seeds = np.flatnonzero(changed.any(axis=1))
    return {
        "max_abs_difference": largest,
        "seeds_with_other_runs": int(seeds.size),
        "first_ask_with_other_runs": int(np.argmax(changed.any(axis=0))) if seeds.size else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", choices=["paper", "default"], default="paper")
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--asks", type=int, default=30)
    parser.add_argument("--cpu-devices", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--preset",
        default="standard",
        help="a benchmark preset (standard, quick), or 'defaults' for rj.mfms_bo's own",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--paper-runs", type=Path, default=DATA / "surrogate_runs.pkl")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.cpu_devices < 2:
        parser.error("--cpu-devices must be >= 2: the comparison needs several devices")
    if args.world == "paper" and not args.paper_runs.exists():
        parser.error(f"{args.paper_runs} not found: use --world default, or give --paper-runs")

    import recipes_jax as rj

    rj.use_cpu_cores(args.cpu_devices)  # before JAX starts
    import jax
    import numpy as np

    from recipes_jax import benchmark, campaign

    jax.config.update("jax_enable_x64", True)  # GP fitting in float64, as in the benchmarks
    if args.world == "paper":
        problem = benchmark.paper_problem("stackexchange", args.paper_runs, trusted=True)
    else:
        problem = benchmark.default_problem("stackexchange")
    preset = {} if args.preset == "defaults" else benchmark.PRESETS[args.preset]
    options = {**preset, "num_asks": args.asks}
    strategy = rj.mfms_bo(problem.space, **options)
    keys = jax.random.split(jax.random.key(args.seed), args.seeds)
    settings = {
        "one device": dict(devices=1),
        "per-device programs": dict(per_device_programs=True),
        "partitioned": dict(per_device_programs=False),
    }
    runs, compile_s, times, traces = {}, {}, {m: [] for m in MODES}, {}
    for mode in MODES:
        runs[mode], compile_s[mode] = campaign.compile_sweep(
            strategy, problem.env, UNLIMITED_BUDGET, keys, **settings[mode]
        )
        print(f"{mode}: compiled in {compile_s[mode]:.1f} s", flush=True)
    for _ in range(args.repeats):
        for mode in MODES:
            start = time.perf_counter()
            traces[mode] = jax.block_until_ready(runs[mode]())
            times[mode].append(time.perf_counter() - start)
    reference = traces["one device"]
    rows = []
    for mode in MODES:
        run_s = float(np.median(times[mode]))
        rows.append(
            {
                "mode": mode,
                "devices": 1 if mode == "one device" else args.cpu_devices,
                "compile_s": compile_s[mode],
                "run_s": run_s,
                "run_s_all": times[mode],
                "ms_per_seed_ask": 1e3 * run_s / (args.seeds * args.asks),
                **_differences(reference, traces[mode]),
            }
        )
    header = (
        f"{'mode':22s} {'devices':>7s} {'compile s':>9s} {'run s':>7s} {'ms/seed-ask':>11s} "
        f"{'max |diff|':>10s} {'seeds, other runs':>17s}"
    )
    print(
        f"\nmfms_bo ({args.preset}), {args.world} world, {args.seeds} seeds x {args.asks} asks, "
        f"{os.cpu_count()} cores\n{header}"
    )
    for r in rows:
        since = (
            ""
            if r["first_ask_with_other_runs"] is None
            else (f" (ask {r['first_ask_with_other_runs']}+)")
        )
        print(
            f"{r['mode']:22s} {r['devices']:7d} {r['compile_s']:9.1f} {r['run_s']:7.1f} "
            f"{r['ms_per_seed_ask']:11.2f} {r['max_abs_difference']:10.2g} "
            f"{str(r['seeds_with_other_runs']) + since:>17s}"
        )
    out = args.out or RESULTS
    result = {
        "settings": {
            "world": args.world,
            "objective": "stackexchange",
            "strategy": "mfms_bo",
            "preset": args.preset,
            "seeds": args.seeds,
            "asks": args.asks,
            "cpu_devices": args.cpu_devices,
            "repeats": args.repeats,
            "dtype": "float64",
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "jax": jax.__version__,
        },
        "rows": rows,
    }
    from recipes_jax.atomic import atomic_write

    out.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(result, indent=2) + "\n").encode()
    atomic_write(out, lambda f: f.write(data), prefix=".device_programs.")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
