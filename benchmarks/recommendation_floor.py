"""Where do mfms_bo's final recommendations sit, with and without the weight floor?

    python benchmarks/recommendation_floor.py                   # paper world, CommonCrawl, 8 seeds
    python benchmarks/recommendation_floor.py --objective stackexchange --seeds 16

Runs mfms_bo (the ``standard`` preset of the speedup benchmark, budget 50) on the same seeds
twice: with ``recommend_min_weight=0`` (every weight the softmax polish leaves) and with the
default floor (1e-4). For each seed it prints the final recommendation, its "dust" (weights in
(0, 1e-4)) and its regret at the target against the problem's optimum. Writes
``results/recommendation_floor_<world>_<objective>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import jax
import numpy as np

import recipes_jax as rj
from recipes_jax import analysis, benchmark, campaign
from recipes_jax.atomic import atomic_write

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("RECIPES_JAX_DATA", HERE.parent.parent / "shared" / "data"))
FLOORS = (0.0, 1e-4)


def final_recommendations(problem, floor: float, keys: jax.Array, budget: float):
    """[S, K] final recommended mixtures and [S] their regrets at the target."""
    strategy = rj.mfms_bo(
        problem.space, **benchmark.PRESETS["standard"], recommend_min_weight=floor
    )
    run, _ = campaign.compile_sweep(strategy, problem.env, budget, keys, batch_size=len(keys))
    trace = jax.block_until_ready(run())
    last = np.asarray(trace.active).sum(axis=1) - 1
    w = np.asarray(trace.recommendation)[np.arange(len(keys)), last]
    regret = analysis.regret(
        problem.truth,
        w,
        *problem.space.target,
        problem.optimum.value,
        maximize=problem.space.maximize,
    )
    return w, np.asarray(regret, np.float64)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", choices=("paper", "default"), default="paper")
    parser.add_argument("--objective", default="commoncrawl")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--budget", type=float, default=50.0)
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    if args.world == "paper":
        runs = DATA / "surrogate_runs.pkl"
        if not runs.exists():
            print(f"{runs} not found: the paper world needs the paper's run table")
            return 1
        problem = benchmark.paper_problem(args.objective, runs, trusted=True)
    else:
        problem = benchmark.default_problem(args.objective)
    domains = problem.space.domains
    optimum = np.asarray(problem.optimum.mixture)
    print(f"{args.world}/{args.objective}: optimum {np.round(optimum, 4).tolist()} ({domains})")
    keys = jax.random.split(jax.random.key(0), args.seeds)
    rows = {}
    for floor in FLOORS:
        w, regret = final_recommendations(problem, floor, keys, args.budget)
        dust = (w > 0.0) & (w < 1e-4)
        rows[f"{floor:g}"] = {
            "recommendation": w.tolist(),
            "regret": regret.tolist(),
            "dust_weights": dust.sum(axis=1).tolist(),
            "dust_mass": np.where(dust, w, 0.0).sum(axis=1).tolist(),
        }
        print(f"\nrecommend_min_weight={floor:g}")
        print(f"{'seed':>4}  {'regret':>9}  {'dust weights':>12}  {'dust mass':>9}  recommendation")
        for s in range(args.seeds):
            print(
                f"{s:>4}  {regret[s]:9.2e}  {int(dust[s].sum()):>12}  "
                f"{np.where(dust[s], w[s], 0).sum():9.1e}  {np.array2string(w[s], precision=5)}"
            )
        print(f"median regret {np.median(regret):.2e}")
    out = HERE / "results" / f"recommendation_floor_{args.world}_{args.objective}.json"
    payload = {
        "world": args.world,
        "objective": args.objective,
        "seeds": args.seeds,
        "budget": args.budget,
        "preset": benchmark.PRESETS["standard"],
        "domains": list(domains),
        "optimum": optimum.tolist(),
        "optimum_value": float(problem.optimum.value),
        "by_floor": rows,
    }
    data = json.dumps(payload, indent=1).encode()
    atomic_write(out, lambda f: f.write(data), prefix=".recommendation_floor.")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
