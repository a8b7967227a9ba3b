"""Does a model of the paper truth's own family (an MLP) beat the Simulator on the paper world?

    python benchmarks/pooled_mlp_baseline.py            # 4 configurations, ~3-4 min on 2 cores

A pooled MLP over (5 weights, log parameters, log steps), 3 hidden layers, is fitted with
optax Adam (4,096-point minibatches, cosine schedule) to every (run, step) point of
``surrogate_runs.pkl`` for StackExchange CE, then scored like ``simulator_fidelity.py``'s
paper-world section: R^2 and Spearman against the noise-free truth at 2,000 Dirichlet(1)
mixtures per scale at steps 2,000, 6,000 and 19,500. Prints one line per configuration and
writes ``results/pooled_mlp_baseline.json``.

    python benchmarks/pooled_mlp_baseline.py --teacher-family   # ~17 min on 2 cores

The student closest to the truth's own form: ReLU, 3 hidden layers, inputs scaled linearly
like the truth's (weights, parameters in millions, steps, each standardized), all 11 metrics
as outputs of one network (the truth is one 7-64-64-64-11 network), trained on every (run,
step) point where all metrics were observed; width 64 (the truth's) and 256. Warm-up then
cosine-decayed Adam. Scored on the three metrics of ``simulator_fidelity.py``; writes
``results/pooled_mlp_teacher_family.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import recipes_jax as rj
from recipes_jax.atomic import atomic_write

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simulator_fidelity import DATA, METRICS, STEPS, query_mixtures, scores

ACTIVATIONS = {"silu": jax.nn.silu, "relu": jax.nn.relu, "tanh": jnp.tanh}
CONFIGS = [("silu", 64, 4000), ("relu", 64, 8000), ("silu", 128, 8000), ("tanh", 64, 8000)]
# (width, Adam steps, peak learning rate) of the teacher-family students
TEACHER_CONFIGS = [(64, 8000, 3e-3), (256, 30000, 1e-3)]
BATCH = 4096


def features(w, m, s):
    """[B, 7] float32: weights, log parameters (millions), log steps."""
    return np.concatenate([w, np.log(m)[:, None], np.log(s)[:, None]], 1).astype(np.float32)


def init_mlp(key, sizes):
    layers = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        key, sub = jax.random.split(key)
        layers.append(
            (jax.random.normal(sub, (fan_in, fan_out)) * np.sqrt(2.0 / fan_in), jnp.zeros(fan_out))
        )
    return layers


def mlp_outputs(layers, x, act):
    """[B, inputs] -> [B, outputs]: hidden layers with activation ``act``, a linear output."""
    for W, b in layers[:-1]:
        x = act(x @ W + b)
    W, b = layers[-1]
    return x @ W + b


def apply_mlp(layers, x, act):
    """The first (for single-metric fits, the only) output, [B]."""
    return mlp_outputs(layers, x, act)[..., 0]


def fit(X, y, act, width, n_steps, key):
    """Adam on the mean squared error of standardized targets; returns the parameters."""
    params = init_mlp(key, [X.shape[1], width, width, width, 1])
    opt = optax.adam(optax.cosine_decay_schedule(3e-3, n_steps))

    def step(carry, k):
        p, state = carry
        idx = jax.random.randint(k, (BATCH,), 0, X.shape[0])
        loss, grad = jax.value_and_grad(
            lambda q: jnp.mean((apply_mlp(q, X[idx], act) - y[idx]) ** 2)
        )(p)
        updates, state = opt.update(grad, state, p)
        return (optax.apply_updates(p, updates), state), loss

    run = jax.jit(lambda p, ks: jax.lax.scan(step, (p, opt.init(p)), ks))
    (params, _), _ = run(params, jax.random.split(jax.random.fold_in(key, 1), n_steps))
    return params


def fit_multi_output(X, Y, width, n_steps, peak_lr, key):
    """ReLU MLP [N, 7] -> [N, M] by Adam (200 warm-up steps, cosine decay to 1e-5) on the mean
    squared error of standardized targets; returns the parameters."""
    params = init_mlp(key, [X.shape[1], width, width, width, Y.shape[1]])
    opt = optax.adam(optax.warmup_cosine_decay_schedule(0.0, peak_lr, 200, n_steps, 1e-5))

    def predict(p, x):
        return mlp_outputs(p, x, jax.nn.relu)

    def step(carry, k):
        p, state = carry
        idx = jax.random.randint(k, (BATCH,), 0, X.shape[0])
        loss, grad = jax.value_and_grad(lambda q: jnp.mean((predict(q, X[idx]) - Y[idx]) ** 2))(p)
        updates, state = opt.update(grad, state, p)
        return (optax.apply_updates(p, updates), state), loss

    run = jax.jit(lambda p, ks: jax.lax.scan(step, (p, opt.init(p)), ks))
    (params, _), _ = run(params, jax.random.split(jax.random.fold_in(key, 1), n_steps))
    return params, predict


def teacher_family():
    """Fit the teacher-family students (module docstring) and score them."""
    table = rj.RunTable.from_paper_pickle(os.path.join(DATA, "surrogate_runs.pkl"), trusted=True)
    world = rj.worlds.paper_mlp(os.path.join(DATA, "paper_surrogate_mlp.npz"))
    queries = query_mixtures(world.space.scales, 2000)
    r, j = np.nonzero(table.mask.all(axis=2))

    def linear_features(w, m, s):
        return np.concatenate([w, m[:, None], s[:, None]], 1)

    X = linear_features(
        table.mixtures[r], table.scales[r].astype(np.float64), table.steps[j].astype(np.float64)
    )
    Y = table.values[r, j]
    x_mean, x_sd, y_mean, y_sd = X.mean(0), X.std(0), Y.mean(0), Y.std(0)
    Xn = jnp.asarray((X - x_mean) / x_sd, jnp.float32)
    Yn = jnp.asarray((Y - y_mean) / y_sd, jnp.float32)
    noise_sd_std_units = 0.02 * np.asarray(world.metric_scale) / y_sd
    report = {
        "points": len(Y),
        "metrics": list(table.metrics),
        "eval_noise_sd_standardized": noise_sd_std_units.tolist(),
        "configs": [],
    }
    for width, n_steps, peak_lr in TEACHER_CONFIGS:
        start = time.perf_counter()
        params, predict = fit_multi_output(Xn, Yn, width, n_steps, peak_lr, jax.random.PRNGKey(0))
        params = jax.block_until_ready(params)
        fit_s = time.perf_counter() - start
        residual_sd = np.asarray(jnp.std(predict(params, Xn) - Yn, axis=0))
        row = {
            "activation": "relu",
            "width": width,
            "adam_steps": n_steps,
            "peak_learning_rate": peak_lr,
            "fit_s": fit_s,
            "training_residual_sd_standardized": residual_sd.tolist(),
            "metrics": {},
        }
        for metric in METRICS:
            index = table.metric_index(metric)
            truth = jax.jit(world.truth(metric))
            cells = {}
            for steps in STEPS:
                for scale, w in queries.items():
                    m, s = np.full(len(w), float(scale)), np.full(len(w), float(steps))
                    x = jnp.asarray((linear_features(w, m, s) - x_mean) / x_sd, jnp.float32)
                    pred = np.asarray(predict(params, x))[:, index] * y_sd[index] + y_mean[index]
                    cells[f"{scale:g}M@{steps}"] = scores(pred, np.asarray(truth(w, m, s)))
            worst_r2 = min(cells, key=lambda c: cells[c]["r2"])
            worst_sp = min(cells, key=lambda c: cells[c]["spearman"])
            row["metrics"][metric] = {
                "worst_r2_cell": worst_r2,
                "worst_r2": cells[worst_r2]["r2"],
                "worst_spearman_cell": worst_sp,
                "worst_spearman": cells[worst_sp]["spearman"],
                "cells": cells,
            }
            print(
                f"relu width {width:3d} {n_steps:5d} steps  fit {fit_s:6.1f} s  {metric:46s} "
                f"worst R^2 {cells[worst_r2]['r2']:.3f} ({worst_r2})  worst Spearman "
                f"{cells[worst_sp]['spearman']:.3f} ({worst_sp})  1B@19500 R^2 "
                f"{cells['1000M@19500']['r2']:.3f}",
                flush=True,
            )
        print(
            f"  training residual sd (standardized) {residual_sd.min():.4f}-"
            f"{residual_sd.max():.4f}; eval noise {noise_sd_std_units.min():.4f}-"
            f"{noise_sd_std_units.max():.4f}",
            flush=True,
        )
        report["configs"].append(row)
    return report


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--teacher-family",
        action="store_true",
        help="fit ReLU students with the truth's linear input scaling, all metrics at once",
    )
    args = ap.parse_args()
    if args.teacher_family:
        write(teacher_family(), "pooled_mlp_teacher_family.json")
        return
    metric = METRICS[0]
    table = rj.RunTable.from_paper_pickle(os.path.join(DATA, "surrogate_runs.pkl"), trusted=True)
    world = rj.worlds.paper_mlp(os.path.join(DATA, "paper_surrogate_mlp.npz"))
    queries = query_mixtures(world.space.scales, 2000)
    truth = jax.jit(world.truth(metric))
    values, mask = table.curve(metric)
    r, j = np.nonzero(mask)
    X = features(table.mixtures[r], table.scales[r], table.steps[j].astype(float))
    y = values[r, j].astype(np.float32)
    x_mean, x_sd, y_mean, y_sd = X.mean(0), X.std(0), y.mean(), y.std()
    Xn, yn = jnp.asarray((X - x_mean) / x_sd), jnp.asarray((y - y_mean) / y_sd)
    report = {"metric": metric, "points": len(y), "configs": []}
    for act_name, width, n_steps in CONFIGS:
        act = ACTIVATIONS[act_name]
        start = time.perf_counter()
        params = jax.block_until_ready(fit(Xn, yn, act, width, n_steps, jax.random.PRNGKey(0)))
        fit_s = time.perf_counter() - start
        residual_sd = float(jnp.sqrt(jnp.mean((apply_mlp(params, Xn, act) - yn) ** 2)) * y_sd)
        cells = {}
        for steps in STEPS:
            for scale, w in queries.items():
                m, s = np.full(len(w), scale), np.full(len(w), float(steps))
                pred = apply_mlp(params, (features(w, m, s) - x_mean) / x_sd, act)
                cells[f"{scale:g}M@{steps}"] = scores(
                    np.asarray(pred) * y_sd + y_mean, np.asarray(truth(w, m, s))
                )
        worst_r2 = min(cells, key=lambda c: cells[c]["r2"])
        worst_sp = min(cells, key=lambda c: cells[c]["spearman"])
        row = {
            "activation": act_name,
            "width": width,
            "adam_steps": n_steps,
            "fit_s": fit_s,
            "training_residual_sd": residual_sd,
            "worst_r2_cell": worst_r2,
            "worst_r2": cells[worst_r2]["r2"],
            "worst_spearman_cell": worst_sp,
            "worst_spearman": cells[worst_sp]["spearman"],
            "cells": cells,
        }
        report["configs"].append(row)
        print(
            f"{act_name:5s} width {width:3d} {n_steps:5d} steps  fit {fit_s:5.1f} s  residual sd "
            f"{residual_sd:.4f}  worst R^2 {row['worst_r2']:.3f} ({worst_r2})  worst Spearman "
            f"{row['worst_spearman']:.3f} ({worst_sp})",
            flush=True,
        )
    write(report, "pooled_mlp_baseline.json")


def write(report, name):
    """Write ``results/<name>`` atomically (a crash mid-write keeps the previous results)."""
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", name)
    data = json.dumps(report, indent=1).encode()
    atomic_write(out, lambda f: f.write(data), prefix=".pooled_mlp.")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
