"""Fit the built-in world's mixing x scaling law to the paper's surrogate MLP.

Writes ``recipes_jax/simulator/data/default_world.json`` (coefficients + fit report) and prints
the report. Needs ``../shared/data/paper_surrogate_mlp.npz``.

    python benchmarks/fit_default_world.py [--mlp PATH] [--out PATH] [--mixtures 800]

Fit: for every metric, L-BFGS (optax) on float64 of a loss with two parts, each normalized:
the error of the law's mean over mixtures at every (scale, steps) slice, and the error of its
within-slice deviations (the mixture landscape), so that neither the large scale/steps trend
nor the smaller mixture effect dominates. Samples: Dirichlet(1) mixtures x the 7 scales x 14
log-spaced steps in 100..19,500.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy.stats import spearmanr

from recipes_jax.simulator.worlds import LawParams, law_value, paper_mlp
from recipes_jax.space import PAPER_SCALES, higher_is_better

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "recipes_jax", "simulator", "data", "default_world.json")


def initial(K: int, y_min: float) -> LawParams:
    z = jnp.zeros(K)
    return LawParams(
        E=jnp.asarray(y_min - 0.5),
        log_A=jnp.log(0.5),
        log_a=jnp.log(0.3),
        log_B=jnp.log(0.5),
        log_b=jnp.log(0.5),
        log_G=jnp.log(0.1),
        c0=z,
        c1=z,
        c2=z,
        d0=jnp.log(0.1),
        d1=jnp.asarray(0.0),
        d2=jnp.asarray(0.0),
        log_C=z,
        log_g=jnp.log(jnp.full(K, 0.3)),
        sign=jnp.asarray(1.0),
    )


def fit_metric(w, m, s, y, n_slices, iters):
    """Fit LawParams to y (already sign-adjusted so lower is better)."""
    ys = y.reshape(n_slices, -1)
    mean = ys.mean(1)
    dev = ys - mean[:, None]
    dev_var = dev.var(1)

    def loss(p):
        pred = law_value(p, w, m, s).reshape(n_slices, -1)
        pm = pred.mean(1)
        pd = pred - pm[:, None]
        return jnp.mean((pm - mean) ** 2) / mean.var() + jnp.mean(
            jnp.mean((pd - dev) ** 2, 1) / dev_var
        )

    def trainable(p):  # sign is fixed
        return p._replace(sign=jax.lax.stop_gradient(p.sign))

    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(lambda p: loss(trainable(p)))

    @jax.jit
    def step(p, state):
        value, grad = value_and_grad(p, state=state)
        updates, state = opt.update(
            grad, state, p, value=value, grad=grad, value_fn=lambda q: loss(trainable(q))
        )
        return optax.apply_updates(p, updates), state, value

    p = initial(w.shape[1], float(y.min()))
    state = opt.init(p)
    for _ in range(iters):
        p, state, value = step(p, state)
    return p, float(value)


def report(truth, law, domains, rng, n_mix=2000):
    """R^2 per scale over (mixtures x steps), and within-(scale, steps) Spearman/R^2."""
    w = rng.dirichlet(np.ones(len(domains)), n_mix)
    steps = np.array([2000.0, 6000.0, 19500.0])
    per_scale, within = {}, {}
    for scale in PAPER_SCALES:
        ys, ps = [], []
        for st in np.geomspace(100, 19500, 12).round(-2):
            mm, ss = np.full(n_mix, scale), np.full(n_mix, st)
            ys.append(np.asarray(truth(w, mm, ss)))
            ps.append(np.asarray(law(w, mm, ss)))
        ys, ps = np.concatenate(ys), np.concatenate(ps)
        per_scale[f"{scale:g}"] = float(1 - np.mean((ps - ys) ** 2) / ys.var())
        for st in steps:
            mm, ss = np.full(n_mix, scale), np.full(n_mix, st)
            y = np.asarray(truth(w, mm, ss))
            p = np.asarray(law(w, mm, ss))
            within[f"{scale:g}@{st:g}"] = {
                "spearman": float(spearmanr(p, y)[0]),
                "r2": float(1 - np.mean((p - y) ** 2) / y.var()),
            }
    return per_scale, within


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--mlp", default=None, help="path of paper_surrogate_mlp.npz")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--mixtures", type=int, default=800)
    ap.add_argument("--iters", type=int, default=1500)
    args = ap.parse_args()
    jax.config.update("jax_enable_x64", True)  # a script, not a library: float64 throughout
    world = paper_mlp(args.mlp)
    rng = np.random.default_rng(0)
    K = world.space.num_domains
    mixtures = rng.dirichlet(np.ones(K), args.mixtures)
    steps = np.unique(np.geomspace(100, 19500, 14).round(-2))
    grid_m, grid_s = np.meshgrid(np.asarray(PAPER_SCALES), steps, indexing="ij")
    n_slices = grid_m.size
    w = jnp.asarray(np.tile(mixtures, (n_slices, 1)))
    m = jnp.asarray(np.repeat(grid_m.ravel(), args.mixtures))
    s = jnp.asarray(np.repeat(grid_s.ravel(), args.mixtures))
    laws, fit_report = {}, {}
    print(
        f"{'metric':46s} {'loss':>7s} {'min R2/scale':>12s} {'median within-slice spearman':>29s}"
    )
    for j, metric in enumerate(world.metrics):
        t0 = time.perf_counter()
        sign = -1.0 if higher_is_better(metric) else 1.0
        truth = jax.jit(world.truth(j))
        y = sign * truth(w, m, s)
        p, value = fit_metric(w, m, s, y, n_slices, args.iters)
        p = p._replace(sign=jnp.asarray(sign))
        law = jax.jit(lambda w_, m_, s_, p=p: law_value(p, w_, m_, s_))
        per_scale, within = report(truth, law, world.space.domains, np.random.default_rng(1))
        laws[metric] = {k: np.asarray(v).tolist() for k, v in p._asdict().items()}
        fit_report[metric] = {
            "loss": value,
            "r2_per_scale_over_mixtures_and_steps": per_scale,
            "within_scale_and_steps": within,
            "seconds": time.perf_counter() - t0,
        }
        spear = np.median([v["spearman"] for v in within.values()])
        print(f"{metric:46s} {value:7.3f} {min(per_scale.values()):12.3f} {spear:29.3f}")
    out = {
        "description": "Mixing x scaling law fitted to the paper's surrogate MLP "
        "(benchmarks/fit_default_world.py); see recipes_jax.simulator.worlds",
        "fitted_on": datetime.date.today().isoformat(),
        "domains": list(world.space.domains),
        "metrics": list(world.metrics),
        "metric_scale": list(world.metric_scale),
        "laws": laws,
        "fit_report": fit_report,
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {os.path.relpath(args.out)}")


if __name__ == "__main__":
    main()
