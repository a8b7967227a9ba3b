"""How much one mfms_bo campaign costs with each mixture kernel, side by side.

``rj.sweep`` of mfms_bo (the speedup benchmark's ``standard`` preset, 100 asks, every ask
run) on the paper world, once per mixture kernel (``kernels.mfms_kernel(profile,
representation)``), on two JAX CPU devices. Each kernel's sweep is compiled once (compile
time printed separately), then the sweeps run in turn, ``--repeats`` rounds; the table has
the median run time per kernel and its ratio to the first::

    python benchmarks/kernel_speed.py                     # 16 seeds, 3 rounds
    python benchmarks/kernel_speed.py --seeds 8 --kernels rbf/sqrt matern52/sqrt

Writes ``benchmarks/results/kernel_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("RECIPES_JAX_DATA", HERE.parent.parent / "shared" / "data"))
RESULTS = HERE / "results" / "kernel_speed.json"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--asks", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kernels", nargs="+", default=["rbf/sqrt", "rbf/raw", "matern52/sqrt"])
    parser.add_argument("--cpu-devices", type=int, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from recipes_jax.cpu_devices import use_cpu_cores

    use_cpu_cores(args.cpu_devices)  # before JAX starts
    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", True)  # a benchmark script may: GP fitting in float64
    import recipes_jax as rj
    from recipes_jax import benchmark, campaign, kernels

    problem = benchmark.paper_problem(
        "stackexchange",
        DATA / "surrogate_runs.pkl",
        trusted=True,  # our own stand-in file
    )
    keys = jax.random.split(jax.random.key(0), args.seeds)
    preset = {**benchmark.PRESETS["standard"], "num_asks": args.asks}
    runs, compile_s = {}, {}
    for name in args.kernels:
        profile, representation = name.split("/")
        strategy = rj.mfms_bo(
            problem.space, **preset, kernel=kernels.mfms_kernel(profile, representation)
        )
        # sweep's default batch: each device's share of the seeds at once
        runs[name], compile_s[name] = campaign.compile_sweep(strategy, problem.env, 1e9, keys)
        print(f"{name:16s} compile {compile_s[name]:5.1f} s", flush=True)
    times = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            jax.block_until_ready(run())
            times[name].append(time.perf_counter() - start)
    first = float(np.median(times[args.kernels[0]]))
    rows = []
    print(
        f"{'kernel':16s} {'compile':>8s} {'run (median)':>13s} {'per seed-ask':>13s} {'ratio':>6s}"
    )
    for name, t in times.items():
        run_s = float(np.median(t))
        rows.append(
            {
                "kernel": name,
                "compile_s": compile_s[name],
                "run_s": run_s,
                "run_s_all": t,
                "ms_per_seed_ask": 1e3 * run_s / (args.seeds * args.asks),
                "ratio_to_first": run_s / first,
            }
        )
        print(
            f"{name:16s} {compile_s[name]:7.1f}s {run_s:12.2f}s "
            f"{rows[-1]['ms_per_seed_ask']:11.2f}ms {run_s / first:5.2f}x"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "command": " ".join(["kernel_speed.py", *argv]),
                "seeds": args.seeds,
                "asks": args.asks,
                "devices": len(jax.devices()),
                "preset": preset,
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
