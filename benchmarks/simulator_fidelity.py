"""How faithful and how fast is the Simulator? Prints tables and writes JSON.

    python benchmarks/simulator_fidelity.py            # full run (~20 min on 2 CPU cores)
    python benchmarks/simulator_fidelity.py --quick    # one metric, fewer repeats

Sections
1. Paper world: a Simulator over ``surrogate_runs.pkl`` (the stand-in for the paper's 472 runs,
   with eval noise), queried at 2,000 Dirichlet(1) mixtures per scale at steps 2,000, 6,000 and
   19,500, against the noise-free truth (the paper's MLP, ``paper_surrogate_mlp.npz``): R^2 and
   Spearman per (scale, steps), for StackExchange, CommonCrawl and Github CE.
   Side by side: a naive pooled ARD GP over (mixture, log scale, log steps) fitted on a random
   subsample of 1,000 (run, step) points; and the *ceiling* of the same interpolant when the
   table is replaced by noise-free truth at the same 454 mixtures (once with the table's runs
   cut short, once complete), which separates what eval noise and truncation cost from what the
   coverage of mixtures allows. Then, at each metric's worst cell, how much of the truth there
   other scales explain (linearly), and what a plain GP on noise-free truth reaches from that
   scale's own runs, from them plus the exact truth at other scales as extra inputs, or from
   seven times as many runs (the information the table holds there).
2. RegMix (real runs): built from the 512 training runs at ~1M parameters, predicting the 256
   test mixtures' Pile-CC loss; side by side, a plain ARD GP on raw weights.
3. Olmix (real runs, many domains): 127 runs of ~30M-parameter models over 24 web-topic
   domains, most weights exactly 0 (one to seven domains per run), final bits-per-byte on 110
   tasks. 5-fold cross-validation over the runs for every 10th task (11 tasks), simulator
   and plain ARD GP side by side: R^2 and Spearman of the held-out predictions, and the worst
   held-out error in units of the task's spread (a fold can leave a domain out of every
   training run; a query that uses it must still get a sane answer). No goal in the issue.
4. Speed: construction time on the 454 non-empty runs; compile time and steady-state
   queries/s (median of repeats) at batch sizes 10^3..10^6 on this machine's CPU.
Goals (issue 2): paper world R^2 >= 0.95 and Spearman >= 0.97 at every scale and step;
RegMix Spearman >= 0.99 and R^2 >= 0.97; >= 1,000,000 queries/s at batch 100,000;
construction < 30 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import tinygp
from scipy.stats import spearmanr

import recipes_jax as rj
from recipes_jax import gp
from recipes_jax.atomic import atomic_write

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.environ.get("RECIPES_JAX_DATA", os.path.join(HERE, "..", "..", "shared", "data"))
METRICS = [
    "eval/RedPajamaStackExchange/CrossEntropyLoss",
    "eval/RedPajamaCommonCrawl/CrossEntropyLoss",
    "eval/RedPajamaGithub/CrossEntropyLoss",
]
STEPS = (2000, 6000, 19500)


def r2(pred, true):
    return float(1 - np.mean((pred - true) ** 2) / np.var(true))


def scores(pred, true):
    return {"r2": r2(pred, true), "spearman": float(spearmanr(pred, true)[0])}


def query_mixtures(scales, n_queries):
    """The test mixtures of every paper-world section: {scale: [n_queries, 5] Dirichlet(1)}."""
    rng = np.random.default_rng(0)
    return {sc: rng.dirichlet(np.ones(5), n_queries) for sc in scales}


def write_report(path, report):
    """Write the JSON report atomically (a crash mid-write keeps the previous results)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    data = json.dumps(report, indent=1).encode()
    atomic_write(path, lambda f: f.write(data), prefix=".simulator_fidelity.")


# ---------------------------------------------------------------------------- reference GP
def deep_arc_cosine_gram(F1, F2, biases):
    """The covariance of an infinitely wide ReLU network with ``len(biases) + 1`` hidden layers
    (Cho & Saul's recursion of the order-1 arc-cosine kernel): [N1, N2] for features F1 [N1, D]
    and F2 [N2, D] that already carry the first layer's bias coordinate; ``biases`` are the
    variances added before each deeper layer."""
    k12, k11, k22 = F1 @ F2.T, jnp.sum(F1 * F1, 1), jnp.sum(F2 * F2, 1)
    for depth in range(len(biases) + 1):
        if depth:
            k12, k11, k22 = (
                k12 + biases[depth - 1],
                k11 + biases[depth - 1],
                k22 + biases[depth - 1],
            )
        norms = jnp.sqrt(k11[:, None] * k22[None, :])
        k12 = norms * rj.kernels.arc_cosine_of_cos(k12 / norms)  # the diagonals keep their values
    return k12


def plain_ard_gp(X, y, Xq, *, kernel_name="rbf", depth=1):
    """Exact GP, constant mean, ML-II hyperparameters; ARD squared-exponential (tinygp), or
    ``kernel_name="arc_cosine"``: the simulator's order-1 arc-cosine kernel over the centred
    inputs divided by ARD lengthscales, plus a fitted bias coordinate; ``depth`` > 1 composes it
    (the covariance of a deeper infinitely wide ReLU network, one fitted bias per layer)."""
    X, y, Xq = (jnp.asarray(a, jnp.float64) for a in (X, y, Xq))
    mu, sd = y.mean(), y.std()
    ys = (y - mu) / sd
    ones = jnp.ones((len(ys), 1))
    D = X.shape[1]
    center = X.mean(0)

    def kernel(p):
        if kernel_name == "arc_cosine":

            def features(Z):
                Z = (Z - center) * jnp.exp(-p[:D])
                return jnp.concatenate([Z, jnp.full((len(Z), 1), jnp.exp(p[D + 2]))], axis=1)

            return lambda X1, X2: (
                jnp.exp(p[D])
                * deep_arc_cosine_gram(features(X1), features(X2), jnp.exp(p[D + 3 :]))
            )
        return jnp.exp(p[D]) * tinygp.transforms.Linear(
            jnp.exp(-p[:D]), tinygp.kernels.ExpSquared()
        )

    def loss(p):
        K = kernel(p)(X, X)
        noise = jnp.full(len(ys), jnp.exp(p[D + 1]) + 1e-6)
        return gp.reml_nll(K, noise, ys, jnp.ones(len(ys), bool), ones)[0] / len(ys)

    # the logs of the bias coordinate and of each deeper layer's bias
    extra = [0.0] * depth if kernel_name == "arc_cosine" else []
    p0 = jnp.concatenate([jnp.log(X.std(0) + 1e-3), jnp.array([0.0, np.log(0.05), *extra])])
    p, _ = gp.minimize_from_starts(loss, [p0], max_steps=200)
    K = kernel(p)(X, X)
    noise = jnp.full(len(ys), jnp.exp(p[D + 1]) + 1e-6)
    _, aux = gp.reml_nll(K, noise, ys, jnp.ones(len(ys), bool), ones)
    return np.asarray((aux["beta"][0] + kernel(p)(Xq, X) @ aux["alpha"]) * sd + mu)


# ---------------------------------------------------------------------------- sections
def paper_world(metrics, n_queries, reference: bool):
    table = rj.RunTable.from_paper_pickle(os.path.join(DATA, "surrogate_runs.pkl"), trusted=True)
    world = rj.worlds.paper_mlp(os.path.join(DATA, "paper_surrogate_mlp.npz"))
    queries = query_mixtures(world.space.scales, n_queries)
    results = {}
    for metric in metrics:
        t0 = time.perf_counter()
        sim = rj.Simulator(table, metric)
        build_s = time.perf_counter() - t0
        truth = jax.jit(world.truth(metric))
        ours, ref = {}, {}
        ref_pred = _reference_paper_gp(table, metric, queries) if reference else None
        for steps in STEPS:
            for scale, w in queries.items():
                m, s = np.full(len(w), scale), np.full(len(w), float(steps))
                true = np.asarray(truth(w, m, s))
                ours[f"{scale:g}M@{steps}"] = scores(np.asarray(sim(w, m, s)), true)
                if reference:
                    ref[f"{scale:g}M@{steps}"] = scores(ref_pred[(scale, steps)], true)
        results[metric] = {
            "construction_s": build_s,
            "fit_timings_s": sim.info["timings"],
            "noise_sd_estimated": sim.info["noise_sd"],
            "simulator": ours,
            "worst_r2": min(v["r2"] for v in ours.values()),
            "worst_spearman": min(v["spearman"] for v in ours.values()),
        }
        if reference:
            results[metric]["naive_pooled_gp"] = ref
            results[metric]["naive_worst_r2"] = min(v["r2"] for v in ref.values())
            results[metric]["naive_worst_spearman"] = min(v["spearman"] for v in ref.values())
    return results


def _reference_paper_gp(table, metric, queries, n_points=1000):
    values, mask = table.curve(metric)
    r, j = np.nonzero(mask)
    pick = np.random.default_rng(1).choice(len(r), n_points, replace=False)
    r, j = r[pick], j[pick]

    def features(w, m, s):
        return np.concatenate([w, np.log(m)[:, None], np.log(s)[:, None]], axis=1)

    X = features(table.mixtures[r], table.scales[r], table.steps[j].astype(float))
    keys = [(scale, steps) for steps in STEPS for scale in queries]
    Xq = np.concatenate(
        [
            features(queries[m], np.full(len(queries[m]), m), np.full(len(queries[m]), float(s)))
            for m, s in keys
        ]
    )
    with jax.enable_x64(True):
        pred = plain_ard_gp(X, values[r, j], Xq)
    n = len(next(iter(queries.values())))
    return {k: pred[i * n : (i + 1) * n] for i, k in enumerate(keys)}


def ceiling(metrics, n_queries):
    """Worst R^2 / Spearman when the table holds noise-free truth at the same runs."""
    table = rj.RunTable.from_paper_pickle(os.path.join(DATA, "surrogate_runs.pkl"), trusted=True)
    table = table.select_runs(table.mask.any(axis=(1, 2)))
    world = rj.worlds.paper_mlp(os.path.join(DATA, "paper_surrogate_mlp.npz"))
    R, S = table.num_runs, table.num_steps
    w = np.repeat(table.mixtures, S, axis=0)
    m = np.repeat(table.scales, S)
    s = np.tile(table.steps.astype(np.float64), R)
    queries = query_mixtures(world.space.scales, n_queries)
    out = {}
    for metric in metrics:
        with jax.enable_x64(True):
            exact = np.asarray(world.truth(metric)(w, m, s)).reshape(R, S)
        truth = jax.jit(world.truth(metric))
        for label, mask in [
            ("noise_free_cut_short", table.mask[:, :, table.metric_index(metric)]),
            ("noise_free_complete", np.ones((R, S), bool)),
        ]:
            clean = rj.RunTable(
                mixtures=table.mixtures,
                scales=table.scales,
                steps=table.steps,
                values=np.where(mask, exact, np.nan)[:, :, None],
                mask=mask[:, :, None],
                domains=table.domains,
                metrics=[metric],
                run_ids=table.run_ids,
            )
            sim = rj.Simulator(clean)
            cells = [
                scores(
                    np.asarray(sim(q, sc, st)),
                    np.asarray(truth(q, np.full(len(q), sc), np.full(len(q), float(st)))),
                )
                for st in STEPS
                for sc, q in queries.items()
            ]
            out.setdefault(metric, {})[label] = {
                "worst_r2": min(c["r2"] for c in cells),
                "worst_spearman": min(c["spearman"] for c in cells),
            }
    return out


def information_limit(paper_results, n_queries):
    """What the runs can teach at each metric's worst (scale, steps) cell, on noise-free truth.

    - ``shared_r2``: R^2 of the best linear prediction of the truth at that scale from the
      truth at the other six scales (4,000 Dirichlet(1) mixtures): the most that pooling
      across scales can explain, even with unlimited runs at the other scales.
    - ``own_runs_gp``: an ARD RBF GP (:func:`plain_ard_gp`, raw weights) on the noise-free
      truth at that scale's own run mixtures only, scored on the benchmark's queries.
    - ``all_runs_gp``: the same GP given the truth at all 454 run mixtures at that scale, what
      about seven times as many runs at the scale would buy.
    - ``own_runs_arc_cosine_gp`` / ``all_runs_arc_cosine_gp``: the same two with the
      simulator's kernel family (order-1 arc-cosine) instead of the RBF.
    - ``own_runs_deep_arc_cosine_gp``: the arc-cosine GP composed to three layers (the
      truth's own depth), on the cell's own runs.
    - ``pooled_arc_cosine_gp``: the arc-cosine GP over (mixture, log scale) on the truth at
      all 454 runs, each at its own scale, at the cell's steps: pooling across scales through
      the kernel, with no eval noise and no runs cut short.
    - ``other_scales_gp``: the ``own_runs_gp`` with, as extra inputs, the exact truth at the
      two nearest other scales (in log-parameters) or at all six (``nearest_scales`` /
      ``all_scales``): pooling across scales with perfect knowledge of the other scales and
      any smooth, nonlinear map from them (an oracle "nonlinear autoregressive" multi-fidelity
      GP); what the best possible cross-scale transfer could add to the cell's own runs.
    """
    table = rj.RunTable.from_paper_pickle(os.path.join(DATA, "surrogate_runs.pkl"), trusted=True)
    table = table.select_runs(table.mask.any(axis=(1, 2)))
    world = rj.worlds.paper_mlp(os.path.join(DATA, "paper_surrogate_mlp.npz"))
    scales = list(world.space.scales)
    queries = query_mixtures(scales, n_queries)
    wide = np.random.default_rng(1).dirichlet(np.ones(5), 4000)
    out = {}
    for metric, res in paper_results.items():
        cell = min(res["simulator"], key=lambda k: res["simulator"][k]["r2"])
        scale, steps = float(cell.split("M@")[0]), float(cell.split("@")[1])
        truth = jax.jit(world.truth(metric))

        def at(w, sc, steps=steps, truth=truth):
            return np.asarray(truth(w, np.full(len(w), sc), np.full(len(w), steps)), np.float64)

        others = np.stack([at(wide, sc) for sc in scales if sc != scale], axis=1)
        design = np.concatenate([np.ones((len(wide), 1)), others], axis=1)
        target = at(wide, scale)
        coef = np.linalg.lstsq(design, target, rcond=None)[0]
        shared = float(1 - np.var(target - design @ coef) / np.var(target))
        q, true = queries[scale], at(queries[scale], scale)
        own = table.mixtures[table.scales == scale]
        others_by_distance = sorted(
            (sc for sc in scales if sc != scale), key=lambda sc: abs(np.log(sc / scale))
        )
        with jax.enable_x64(True):
            own_y = at(own, scale)
            # the exact truth at every other scale, as columns, at the own runs and the queries
            own_side = {sc: at(own, sc)[:, None] for sc in others_by_distance}
            q_side = {sc: at(q, sc)[:, None] for sc in others_by_distance}
            own_pred = plain_ard_gp(own, own_y, q)
            all_pred = plain_ard_gp(table.mixtures, at(table.mixtures, scale), q)
            # the simulator's kernel family, on the same points
            own_arc = plain_ard_gp(own, own_y, q, kernel_name="arc_cosine")
            all_arc = plain_ard_gp(
                table.mixtures, at(table.mixtures, scale), q, kernel_name="arc_cosine"
            )
            own_deep = plain_ard_gp(own, own_y, q, kernel_name="arc_cosine", depth=3)
            log_scales = np.log(table.scales)[:, None]
            pooled_y = np.asarray(
                truth(table.mixtures, table.scales, np.full(table.num_runs, steps)), np.float64
            )
            pooled = plain_ard_gp(
                np.concatenate([table.mixtures, log_scales], axis=1),
                pooled_y,
                np.concatenate([q, np.full((len(q), 1), np.log(scale))], axis=1),
                kernel_name="arc_cosine",
            )
            oracle = {}
            for label, side in [
                ("nearest_scales", others_by_distance[:2]),
                ("all_scales", others_by_distance),
            ]:
                pred = plain_ard_gp(
                    np.concatenate([own] + [own_side[sc] for sc in side], axis=1),
                    own_y,
                    np.concatenate([q] + [q_side[sc] for sc in side], axis=1),
                )
                oracle[label] = {"scales": side, **scores(pred, true)}
        out[metric] = {
            "cell": cell,
            "simulator_r2": res["simulator"][cell]["r2"],
            "shared_r2": shared,
            "own_runs": len(own),
            "own_runs_gp": scores(own_pred, true),
            "all_runs_gp": scores(all_pred, true),
            "own_runs_arc_cosine_gp": scores(own_arc, true),
            "all_runs_arc_cosine_gp": scores(all_arc, true),
            "own_runs_deep_arc_cosine_gp": scores(own_deep, true),
            "pooled_arc_cosine_gp": scores(pooled, true),
            "other_scales_gp": oracle,
        }
    return out


def regmix():
    d = os.path.join(DATA, "regmix", "data")
    train = rj.RunTable.from_wide_csvs(
        os.path.join(d, "train_mixture_1m.csv"),
        os.path.join(d, "train_pile_loss_1m.csv"),
        scale="1M",
        step=1,
    )
    test = rj.RunTable.from_wide_csvs(
        os.path.join(d, "test_mixture_1m.csv"),
        os.path.join(d, "test_pile_loss_1m.csv"),
        scale="1M",
        step=1,
    )
    metric = "metric/the_pile_pile_cc_val_loss"
    t0 = time.perf_counter()
    sim = rj.Simulator(train, metric)
    build_s = time.perf_counter() - t0
    true = test.curve(metric)[0][:, 0]
    ours = scores(np.asarray(sim(test.mixtures, 1.0, 1)), true)
    with jax.enable_x64(True):
        ref = scores(
            plain_ard_gp(train.mixtures, train.curve(metric)[0][:, 0], test.mixtures), true
        )
    return {
        "construction_s": build_s,
        "simulator": ours,
        "plain_ard_gp": ref,
        "warp_power": sim.info["warp_power"],
    }


def olmix(n_folds: int = 5, every: int = 10):
    """5-fold cross-validation on the Olmix runs (see the module docstring, section 3)."""
    d = os.path.join(DATA, "olmix")
    table = rj.RunTable.from_wide_csvs(
        os.path.join(d, "dclm_ratios.csv"),
        os.path.join(d, "dclm_metrics.csv"),
        run_column="run",
        scale="30M",
        step=1,
        ignore_columns=["", "name", "index"],  # pandas' index, a run name, a run number
    )
    out = {"runs": table.num_runs, "domains": table.num_domains, "tasks": {}}
    for task in table.metrics[::every]:
        values, mask = table.curve(task)
        runs = np.nonzero(mask[:, 0])[0]
        y = values[runs, 0]
        folds = np.array_split(np.random.default_rng(0).permutation(len(runs)), n_folds)
        ours, ref = np.empty(len(runs)), np.empty(len(runs))
        unvaried = []
        t0 = time.perf_counter()
        for held in folds:
            train = np.setdiff1d(np.arange(len(runs)), held)
            keep = np.zeros(table.num_runs, bool)
            keep[runs[train]] = True
            sim = rj.Simulator(table.select_runs(keep), task)
            unvaried.append(sim.info["unvaried_domains"])
            w = table.mixtures[runs[held]]
            ours[held] = np.asarray(sim(w, 30.0, 1))
            with jax.enable_x64(True):
                ref[held] = plain_ard_gp(table.mixtures[runs[train]], y[train], w)
        out["tasks"][task] = {
            "runs": len(runs),
            "simulator": scores(ours, y),
            "plain_ard_gp": scores(ref, y),
            "worst_error_in_sd": {
                "simulator": float(np.abs(ours - y).max() / y.std()),
                "plain_ard_gp": float(np.abs(ref - y).max() / y.std()),
            },
            "unvaried_domains_per_fold": unvaried,
            "seconds": time.perf_counter() - t0,
        }
    for key in ("simulator", "plain_ard_gp"):
        for stat in ("r2", "spearman"):
            per_task = [v[key][stat] for v in out["tasks"].values()]
            out[f"{key}_median_{stat}"] = float(np.median(per_task))
            out[f"{key}_worst_{stat}"] = float(np.min(per_task))
    return out


def print_olmix(res):
    print(
        f"{'task (5-fold CV)':40s} {'sim R2':>7s} {'sim rho':>7s} {'GP R2':>7s} {'GP rho':>7s}"
        f" {'worst err/sd sim, GP':>21s}  folds missing a domain"
    )
    for task, v in res["tasks"].items():
        missing = sum(bool(u) for u in v["unvaried_domains_per_fold"])
        worst = v["worst_error_in_sd"]
        print(
            f"{task:40s} {v['simulator']['r2']:7.3f} {v['simulator']['spearman']:7.3f} "
            f"{v['plain_ard_gp']['r2']:7.3f} {v['plain_ard_gp']['spearman']:7.3f} "
            f"{worst['simulator']:10.2f} {worst['plain_ard_gp']:10.2f}"
            f"  {missing}"
        )
    print(
        f"{'median over tasks':40s} {res['simulator_median_r2']:7.3f} "
        f"{res['simulator_median_spearman']:7.3f} {res['plain_ard_gp_median_r2']:7.3f} "
        f"{res['plain_ard_gp_median_spearman']:7.3f}"
    )


def speed(repeats: int, batches):
    table = rj.RunTable.from_paper_pickle(os.path.join(DATA, "surrogate_runs.pkl"), trusted=True)
    t0 = time.perf_counter()
    sim = rj.Simulator(table, METRICS[0])
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    query = jax.jit(lambda w, m, s: sim(w, m, s))  # no eager validation: pure query throughput
    rows = []
    for batch in batches:
        w = jnp.asarray(rng.dirichlet(np.ones(5), batch), jnp.float32)
        m = jnp.asarray(rng.choice(np.asarray(rj.Space.paper().scales), batch), jnp.float32)
        s = jnp.asarray(rng.integers(100, 19_501, batch), jnp.float32)
        t0 = time.perf_counter()
        compiled = query.lower(w, m, s).compile()
        compile_s = time.perf_counter() - t0
        jax.block_until_ready(compiled(w, m, s))
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(compiled(w, m, s))
            times.append(time.perf_counter() - t0)
        med = float(np.median(times))
        rows.append(
            {"batch": batch, "compile_s": compile_s, "median_s": med, "queries_per_s": batch / med}
        )
    return {"construction_s": build_s, "runs": int(sim.info["runs_used"]), "batches": rows}


# ---------------------------------------------------------------------------- report
def print_paper(results):
    for metric, res in results.items():
        print(
            f"\n{metric}   (built in {res['construction_s']:.1f} s; eval noise sd estimated "
            f"{res['noise_sd_estimated']:.4f})"
        )
        scales = sorted({k.split("@")[0] for k in res["simulator"]}, key=lambda x: float(x[:-1]))
        print(f"{'steps':>6s} {'':10s}" + "".join(f"{s:>12s}" for s in scales))
        for steps in STEPS:
            for key, label in [("simulator", "R2/Spear"), ("naive_pooled_gp", "naive GP")]:
                if key not in res:
                    continue
                cells = [res[key][f"{s}@{steps}"] for s in scales]
                print(
                    f"{steps:6d} {label:10s}"
                    + "".join(f"{c['r2']:6.3f}/{c['spearman']:.3f}" for c in cells)
                )
        line = (
            f"  worst: R2 {res['worst_r2']:.3f}, Spearman {res['worst_spearman']:.3f} "
            "(goal 0.95 / 0.97)"
        )
        if "naive_worst_r2" in res:
            line += (
                f"; naive GP worst: R2 {res['naive_worst_r2']:.3f}, "
                f"Spearman {res['naive_worst_spearman']:.3f}"
            )
        print(line)


def print_information_limit(results):
    for metric, v in results.items():
        print(
            f"{metric:46s} {v['cell']:>10s}: simulator R2 {v['simulator_r2']:.3f} | "
            f"linear in other scales R2 {v['shared_r2']:.3f} | GP on its {v['own_runs']} "
            f"runs R2 {v['own_runs_gp']['r2']:.3f} | GP on 454 runs there R2 "
            f"{v['all_runs_gp']['r2']:.3f}"
        )
        if "other_scales_gp" in v:
            side = v["other_scales_gp"]
            print(
                f"{'':46s} {'':>10s}  GP on its runs + exact truth at the nearest scales "
                f"{side['nearest_scales']['scales']} R2 {side['nearest_scales']['r2']:.3f} / "
                f"at all other scales R2 {side['all_scales']['r2']:.3f}"
            )
        if "own_runs_arc_cosine_gp" in v:
            print(
                f"{'':46s} {'':>10s}  arc-cosine GP on its runs R2 "
                f"{v['own_runs_arc_cosine_gp']['r2']:.3f} / on 454 runs there R2 "
                f"{v['all_runs_arc_cosine_gp']['r2']:.3f}"
            )
        if "own_runs_deep_arc_cosine_gp" in v:
            print(
                f"{'':46s} {'':>10s}  3-layer arc-cosine GP on its runs R2 "
                f"{v['own_runs_deep_arc_cosine_gp']['r2']:.3f} / arc-cosine GP over (mixture, "
                f"log scale) on all 454 runs at their scales R2 "
                f"{v['pooled_arc_cosine_gp']['r2']:.3f}"
            )


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick", action="store_true", help="one metric, no reference GP, fewer repeats"
    )
    ap.add_argument("--out", default=os.path.join(HERE, "results", "simulator_fidelity.json"))
    ap.add_argument(
        "--information-limit-only",
        action="store_true",
        help="rerun only the information-limit section, on the worst cells of the paper-world "
        "results already in --out, and add it there",
    )
    ap.add_argument(
        "--olmix-only",
        action="store_true",
        help="rerun only the Olmix section and add it to the results already in --out",
    )
    args = ap.parse_args()
    warnings.simplefilter("ignore", UserWarning)
    if args.olmix_only:
        with open(args.out) as f:
            report = json.load(f)
        report["olmix"] = olmix()
        report["olmix_command"] = "python benchmarks/simulator_fidelity.py --olmix-only"
        print_olmix(report["olmix"])
        write_report(args.out, report)
        print(f"\nwrote {os.path.relpath(args.out)}")
        return
    if args.information_limit_only:
        with open(args.out) as f:
            report = json.load(f)
        report["information_limit"] = information_limit(report["paper_world"], 2000)
        report["information_limit_command"] = (
            "python benchmarks/simulator_fidelity.py --information-limit-only"
        )
        print_information_limit(report["information_limit"])
        write_report(args.out, report)
        print(f"\nwrote {os.path.relpath(args.out)}")
        return
    metrics = METRICS[:1] if args.quick else METRICS
    report = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "jax": jax.__version__,
            "backend": jax.default_backend(),
        },
        "command": "python benchmarks/simulator_fidelity.py" + (" --quick" if args.quick else ""),
    }
    print("== Paper world: simulator over surrogate_runs.pkl vs the noise-free MLP ==")
    report["paper_world"] = paper_world(metrics, 2000, reference=not args.quick)
    print_paper(report["paper_world"])
    if not args.quick:
        print("\n== Ceiling: the same interpolant on noise-free truth at the same 454 runs ==")
        report["ceiling"] = ceiling(metrics, 2000)
        for metric, res in report["ceiling"].items():
            for label, v in res.items():
                print(
                    f"{metric:46s} {label:22s} worst R2 {v['worst_r2']:.3f}  "
                    f"Spearman {v['worst_spearman']:.3f}"
                )
    if not args.quick:
        print("\n== Information limit at each metric's worst cell (noise-free truth) ==")
        report["information_limit"] = information_limit(report["paper_world"], 2000)
        print_information_limit(report["information_limit"])
    print("\n== RegMix: 512 training runs (1M) -> 256 test mixtures, Pile-CC loss ==")
    report["regmix"] = regmix()
    rm = report["regmix"]
    for label, key in [("simulator", "simulator"), ("plain ARD GP", "plain_ard_gp")]:
        print(
            f"{label:14s} R2 {rm[key]['r2']:.4f}  Spearman {rm[key]['spearman']:.4f}"
            + (
                f"  (built in {rm['construction_s']:.1f} s; goal 0.97 / 0.99)"
                if key == "simulator"
                else ""
            )
        )
    if not args.quick:
        print("\n== Olmix: 127 runs over 24 domains (~30M), 5-fold CV, every 10th task ==")
        report["olmix"] = olmix()
        print_olmix(report["olmix"])
    print("\n== Speed (CPU, float32 queries, jitted) ==")
    batches = [1_000, 10_000, 100_000] if args.quick else [1_000, 10_000, 100_000, 1_000_000]
    report["speed"] = speed(3 if args.quick else 7, batches)
    sp = report["speed"]
    print(f"construction on {sp['runs']} runs: {sp['construction_s']:.1f} s (goal < 30 s)")
    print(f"{'batch':>10s} {'compile s':>10s} {'median ms':>10s} {'queries/s':>14s}")
    for row in sp["batches"]:
        print(
            f"{row['batch']:10,d} {row['compile_s']:10.2f} {row['median_s'] * 1e3:10.2f} "
            f"{row['queries_per_s']:14,.0f}"
        )
    write_report(args.out, report)
    print(f"\nwrote {os.path.relpath(args.out)}")


if __name__ == "__main__":
    main()
