"""Seed sweep wall time: a whole mfms_bo campaign per seed, many seeds in one program.

Runs ``rj.sweep`` of a strategy (default: mfms_bo with its defaults, 100 asks) on the built-in
world's StackExchange loss for ``--seeds`` seeds at ``--budget`` target-run units, in float64.
Compile time (ahead of time: ``lower().compile()``) and run time are measured separately;
random search on the same seeds is run for reference, and both are scored by the regret of
their final recommendation against the world's optimum (``analysis.find_optimum``).
Prints a table and writes JSON::

    python benchmarks/campaign_sweep.py                 # 64 seeds, budget 30, --preset fast
    python benchmarks/campaign_sweep.py --preset default --seeds 2 --budget 5

Presets: ``default`` is ``rj.mfms_bo(space)`` as shipped (256-row buffer, 100 asks, 1,024
candidates x 21 fidelities, 2 x 15 L-BFGS refit steps); ``fast`` shrinks the work per ask
(128 rows, 50 asks, 512 candidates, 1 x 10 refit steps, 10 refinement steps).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

import jax
import numpy as np

import recipes_jax as rj
from recipes_jax import analysis, benchmark, campaign

RESULTS = Path(__file__).resolve().parent / "results" / "campaign_sweep.json"
METRIC = "eval/RedPajamaStackExchange/CrossEntropyLoss"
PRESETS = {
    "default": {},
    # the speedup benchmark's compute preset (recipes_jax.benchmark), 50 asks per campaign
    "fast": {**benchmark.PRESETS["standard"], "num_asks": 50},
}


def timed_sweep(strategy, env, budget, keys):
    """(traces, compile seconds, run seconds, asks) of rj.sweep on one device."""
    run, compile_s = campaign.compile_sweep(strategy, env, budget, keys, devices=1)
    t0 = time.perf_counter()
    traces = jax.block_until_ready(run())
    return traces, compile_s, time.perf_counter() - t0, strategy.default_num_asks(budget)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=64)
    parser.add_argument("--budget", type=float, default=30.0)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="fast")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)  # a benchmark script may: GP fitting in float64
    world = rj.worlds.default()
    truth = world.truth(METRIC)
    space = world.space
    optimum = analysis.find_optimum(truth, space.num_domains, *space.target, jax.random.key(0))
    keys = jax.random.split(jax.random.key(1), args.seeds)
    rows = []
    for strategy in (rj.mfms_bo(space, **PRESETS[args.preset]), rj.random_search(space)):
        traces, compile_s, run_s, num_asks = timed_sweep(strategy, truth, args.budget, keys)
        regret = np.asarray(
            analysis.regret(truth, traces.recommendation[:, -1], *space.target, optimum.value)
        )
        rows.append(
            {
                "strategy": strategy.name,
                "preset": args.preset if strategy.name == "mfms_bo" else None,
                "seeds": args.seeds,
                "asks_per_seed": num_asks,
                "budget": args.budget,
                "compile_s": compile_s,
                "run_s": run_s,
                "run_s_per_seed": run_s / args.seeds,
                "ms_per_seed_ask": 1e3 * run_s / (args.seeds * num_asks),
                "median_spent": float(np.median(traces.cost[:, -1])),
                "median_final_regret": float(np.median(regret)),
                "regret_q25": float(np.quantile(regret, 0.25)),
                "regret_q75": float(np.quantile(regret, 0.75)),
            }
        )
        r = rows[-1]
        print(
            f"{r['strategy']:14s} seeds {r['seeds']:4d} asks {r['asks_per_seed']:4d} "
            f"compile {r['compile_s']:6.1f} s  run {r['run_s']:8.1f} s "
            f"({r['run_s_per_seed']:.2f} s/seed, {r['ms_per_seed_ask']:.1f} ms/seed-ask)  "
            f"spent {r['median_spent']:.2f}  regret median {r['median_final_regret']:.4f} "
            f"[{r['regret_q25']:.4f}, {r['regret_q75']:.4f}]",
            flush=True,
        )
    out = {
        "optimum": {"value": optimum.value, "mixture": optimum.mixture.tolist()},
        "rows": rows,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "jax": jax.__version__,
            "devices": [str(d) for d in jax.devices()],
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(analysis.to_jsonable(out), indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
