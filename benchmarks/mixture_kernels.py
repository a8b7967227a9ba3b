"""Which representation of the simplex should the GP's mixture kernel use? Prints a table and
writes JSON (benchmarks/results/mixture_kernels.json).

For each world (the built-in law world; the paper's MLP simulator when
``../shared/data/paper_surrogate_mlp.npz`` is present), metric and seed: observe the noise-free
truth at ``n`` random (Dirichlet(1) mixture, scale, steps) decisions from the space's grids
(the situation of a multi-fidelity campaign), fit ``mixture kernel x RBF(scale) x RBF(steps)``
by marginal likelihood, and predict the target fidelity (1B, 19,500 steps) at 1,000 held-out
Dirichlet(1) mixtures. Scores: R^2, Spearman rank correlation (what matters for finding the
best mixture) and mean predictive log density (calibration), averaged over seeds.

    python benchmarks/mixture_kernels.py            # n = 100, 4 seeds (~5 min on 2 CPU cores)
    python benchmarks/mixture_kernels.py --quick    # one metric, 2 seeds
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import spearmanr

import recipes_jax as rj
from recipes_jax import gp, kernels

RESULTS = Path(__file__).resolve().parent / "results" / "mixture_kernels.json"
METRICS = (
    "eval/RedPajamaStackExchange/CrossEntropyLoss",
    "eval/RedPajamaCommonCrawl/CrossEntropyLoss",
)


def candidates():
    out = {}
    for profile, make in (("rbf", kernels.rbf), ("matern52", kernels.matern52_ard)):
        for rep in kernels.REPRESENTATIONS:
            out[f"{profile}/{rep}"] = (
                make("mixture", rep) * kernels.rbf("scale") * kernels.rbf("steps")
            )
    return out


def score(world, metric, family, n, seed):
    space = world.space
    truth = world.truth(metric)
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(space.num_domains), n)
    m = rng.choice(space.scales, n)
    s = rng.choice(np.asarray(space.steps)[::10], n)
    y = np.asarray(truth(jnp.asarray(w), jnp.asarray(m), jnp.asarray(s, jnp.float64)))
    wt = rng.dirichlet(np.ones(space.num_domains), 1000)
    mt = np.full(1000, space.target[0])
    st = np.full(1000, float(space.target[1]))
    yt = np.asarray(truth(jnp.asarray(wt), jnp.asarray(mt), jnp.asarray(st)))
    model = gp.GP(family, space.num_domains)
    obs = gp.observations(space.encode(w, m, s), y)
    params, _ = model.fit(obs, jax.random.key(seed), num_starts=4, max_steps=60)
    post = model.condition(params, obs)
    mean, var = gp.predict(post, space.encode(wt, mt, st), include_noise=True)
    mean, var = np.asarray(mean), np.asarray(var)
    r2 = 1 - np.mean((mean - yt) ** 2) / np.var(yt)
    rho = spearmanr(mean, yt).statistic
    lpd = np.mean(-0.5 * np.log(2 * np.pi * var) - 0.5 * (yt - mean) ** 2 / var)
    return r2, rho, lpd


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    seeds = 2 if args.quick else args.seeds
    metrics = METRICS[:1] if args.quick else METRICS
    worlds = [rj.worlds.default()]
    try:
        worlds.append(rj.worlds.paper_mlp())
    except FileNotFoundError as err:
        print(f"skipping the paper world: {err}")
    rows = []
    with jax.enable_x64(True):
        for world in worlds:
            for metric in metrics:
                for name, family in candidates().items():
                    t0 = time.perf_counter()
                    results = np.array(
                        [score(world, metric, family, args.n, s) for s in range(seeds)]
                    )
                    r2, rho, lpd = results.mean(0)
                    row = {
                        "world": world.name,
                        "metric": metric,
                        "kernel": name,
                        "r2": float(r2),
                        "spearman": float(rho),
                        "log_density": float(lpd),
                        "per_seed": results.tolist(),
                        "seconds": time.perf_counter() - t0,
                    }
                    rows.append(row)
                    print(
                        f"{world.name:8s} {metric.split('/')[1]:28s} {name:18s} R2 {r2:6.3f}  "
                        f"Spearman {rho:6.3f}  log density {lpd:7.3f}",
                        flush=True,
                    )
    print("\n| world | metric | kernel | R^2 | Spearman | log density |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['world']} | {r['metric'].split('/')[1]} | {r['kernel']} | {r['r2']:.3f} "
            f"| {r['spearman']:.3f} | {r['log_density']:.2f} |"
        )
    config = {"n": args.n, "seeds": seeds, "test_points": 1000, "fit": "4 starts x 60 L-BFGS"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"config": config, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
