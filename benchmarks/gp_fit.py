"""L-BFGS or Adam for GP hyperparameters? Loss reached vs time, side by side. Prints a table
and writes JSON (benchmarks/results/gp_fit.json).

Data: ``problems.make_problem(n)`` (the ask-latency problem), paper kernel, float64, 4 vmapped
cold starts from the defaults. For each method and iteration budget: the best loss reached
(negative log posterior per observation; lower is better) and the median wall time of 3 runs
after compilation.

    python benchmarks/gp_fit.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from problems import make_problem

from recipes_jax import gp, kernels

RESULTS = Path(__file__).resolve().parent / "results" / "gp_fit.json"
BUDGETS = {"lbfgs": (10, 20, 40, 80), "adam": (50, 100, 200, 400)}


def main():
    rows = []
    model = gp.GP(kernels.paper_kernel(), 5)
    with jax.enable_x64(True):
        for n in (100, 200):
            X, y, _, _ = make_problem(n, seed=n)
            obs = gp.observations(X, y)
            for method, budgets in BUDGETS.items():
                for steps in budgets:
                    fit = jax.jit(
                        lambda o, k, m=method, s=steps: model.fit(
                            o, k, num_starts=4, method=m, max_steps=s
                        )
                    )
                    jax.block_until_ready(fit(obs, jax.random.key(0)))
                    times, losses = [], []
                    for r in range(3):
                        t0 = time.perf_counter()
                        _, loss = jax.block_until_ready(fit(obs, jax.random.key(r)))
                        times.append(time.perf_counter() - t0)
                        losses.append(float(loss))
                    row = {
                        "n": n,
                        "method": method,
                        "steps": steps,
                        "seconds": float(np.median(times)),
                        "loss": float(np.median(losses)),
                    }
                    rows.append(row)
                    print(
                        f"n={n} {method:5s} {steps:4d} steps  {row['seconds'] * 1e3:8.1f} ms  "
                        f"loss {row['loss']:.5f}",
                        flush=True,
                    )
    print("\n| n | method | steps | time (ms) | loss |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['n']} | {r['method']} | {r['steps']} | {r['seconds'] * 1e3:.0f} "
            f"| {r['loss']:.4f} |"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"starts": 4, "rows": rows}, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
