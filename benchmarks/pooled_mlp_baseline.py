"""Does a model of the paper truth's own family (an MLP) beat the Simulator on the paper world?

    python benchmarks/pooled_mlp_baseline.py            # 4 configurations, ~3-4 min on 2 cores

A pooled MLP over (5 weights, log parameters, log steps), 3 hidden layers, is fitted with
optax Adam (4,096-point minibatches, cosine schedule) to every (run, step) point of
``surrogate_runs.pkl`` for StackExchange CE, then scored like ``simulator_fidelity.py``'s
paper-world section: R^2 and Spearman against the noise-free truth at 2,000 Dirichlet(1)
mixtures per scale at steps 2,000, 6,000 and 19,500. Prints one line per configuration and
writes ``results/pooled_mlp_baseline.json``.
"""

from __future__ import annotations

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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simulator_fidelity import DATA, METRICS, STEPS, query_mixtures, scores

ACTIVATIONS = {"silu": jax.nn.silu, "relu": jax.nn.relu, "tanh": jnp.tanh}
CONFIGS = [("silu", 64, 4000), ("relu", 64, 8000), ("silu", 128, 8000), ("tanh", 64, 8000)]
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


def apply_mlp(layers, x, act):
    for W, b in layers[:-1]:
        x = act(x @ W + b)
    W, b = layers[-1]
    return (x @ W + b)[..., 0]


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


def main():
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
    out = os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "results", "pooled_mlp_baseline.json"
    )
    with open(out + ".tmp", "w") as f:
        json.dump(report, f, indent=1)
    os.replace(out + ".tmp", out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
