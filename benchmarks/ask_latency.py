"""Ask latency: one BO iteration (refit hyperparameters + full acquisition search), recipes_jax
vs BoTorch, side by side on the same data.

One iteration, both sides: fit an ARD GP (RBF over all inputs = the paper's RBF x RBF x RBF
product kernel) to n observations of a synthetic multi-fidelity mixture problem
(``problems.make_problem``), then maximize LogEI per unit cost over 21 fidelities.

- recipes_jax: ``GP.fit`` warm-started from the previous iteration's hyperparameters (here a
  thorough fit at n - 1 observations, as a campaign's tracked optimum), ``num_starts`` starts
  (looped on CPU) of ``fit_steps`` L-BFGS steps (default 2 x 15; a "lean" 1 x 10, what the
  benchmark campaigns use, is timed too, and the loss each reaches is printed next to a
  thorough 8 x 100 cold fit at n); then ``optimize.maximize``: 4,096 candidate mixtures x 21
  fidelities, screened one fidelity at a time (``gp.grid_predict``; "flat_screen" times the
  screen of all 86,016 at once, with the 2 x 15 refit), top 8 refined by 30 Adam steps. One
  jitted function; the observation buffer has static capacity (the next power of two above n, at
  least 64), compiled once per size.
- BoTorch (``botorch_peer.iteration``, when torch + botorch are installed): SingleTaskGP +
  fit_gpytorch_mll from its defaults, LogExpectedImprovement, optimize_acqf per fidelity with
  raw_samples=512, num_restarts=8.

Timing: compile time (ahead-of-time ``lower().compile()``) and the first call reported
separately; steady state = median of ``--repeats`` calls (different keys). Every timed region
ends with ``block_until_ready`` and starts after the untimed warm-start fit has finished.
Prints a table and writes JSON::

    python benchmarks/ask_latency.py                   # n = 50, 200, 500
    python benchmarks/ask_latency.py --no-botorch      # recipes_jax only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from problems import make_problem

from recipes_jax import acquisition, gp, kernels, optimize

RESULTS = Path(__file__).resolve().parent / "results" / "ask_latency.json"


def build_ask(num_domains, *, num_starts, fit_steps, num_candidates, score_dtype, screen="grid"):
    model = gp.GP(kernels.paper_kernel(), num_domains)

    @jax.jit
    def ask(params, obs, key, fidelities, costs):
        k_fit, k_search = jax.random.split(key)
        params, loss = model.fit(obs, k_fit, params, num_starts=num_starts, max_steps=fit_steps)
        post = model.condition(params, obs).astype(score_dtype)
        best = jnp.min(jnp.where(obs.mask, obs.y, jnp.inf)).astype(score_dtype)
        log_costs = jnp.log(costs).astype(score_dtype)

        def score(X, i):
            mean, var = gp.predict(post, X)
            return acquisition.log_expected_improvement(mean, jnp.sqrt(var), best) - log_costs[i]

        def score_grid(W, fids):
            # every mixture at every fidelity, one fidelity at a time (gp.grid_predict)
            mean, var = gp.grid_predict(post, W, fids)
            return (
                acquisition.log_expected_improvement(mean, jnp.sqrt(var), best) - log_costs[:, None]
            )

        result = optimize.maximize(
            score,
            k_search,
            fidelities.astype(score_dtype),
            num_domains,
            num_candidates=num_candidates,
            score_grid=score_grid if screen == "grid" else None,
        )
        return result, params, loss

    return model, ask


def buffer_capacity(n: int) -> int:
    """Static buffer size for n observations: the next power of two above n, at least 64 (a
    campaign sizes its buffer once for its whole run; one compile per size)."""
    return max(64, 1 << int(n).bit_length())


def time_ours(n, args, ask, model, starts, fit_steps):
    X, y, fidelities, costs = make_problem(n, seed=n)
    capacity = buffer_capacity(n)
    obs = gp.observations(X, y, capacity=capacity)
    previous = gp.observations(X[:-1], y[:-1], capacity=capacity)
    key = jax.random.key(0)
    # hyperparameters from the previous iteration (n - 1 observations), as a campaign whose
    # warm-started refits track the optimum has them: a thorough fit there (not timed)
    warm = jax.block_until_ready(model.fit(previous, key, num_starts=8, max_steps=100)[0])
    fids, cst = jnp.asarray(fidelities), jnp.asarray(costs)
    t0 = time.perf_counter()
    ask.lower(warm, obs, key, fids, cst).compile()  # ahead-of-time: compile alone
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = ask(warm, obs, key, fids, cst)
    jax.block_until_ready(out)
    first = time.perf_counter() - t0
    times = []
    for r in range(args.repeats):
        t0 = time.perf_counter()
        out = ask(warm, obs, jax.random.key(r + 1), fids, cst)
        jax.block_until_ready(out)
        times.append(time.perf_counter() - t0)
    result, _, loss = out
    # is the warm, short refit as good as a thorough cold one? (not timed)
    _, thorough = model.fit(obs, jax.random.key(99), num_starts=8, max_steps=100)
    return {
        "compile_s": compile_s,
        "fit_loss_thorough": float(thorough),
        "first_call_s": first,
        "steady_s": float(np.median(times)),
        "times_s": times,
        "fidelity_index": int(result.fidelity_index),
        "value": float(result.value),
        "fit_loss": float(loss),
    }


def time_botorch(n, args):
    import botorch_peer
    import threadpoolctl

    X, y, fidelities, costs = make_problem(n, seed=n)
    times, fit, acq, out = [], [], [], None
    for r in range(args.botorch_repeats):
        # BoTorch's scipy gets its usual BLAS threads back (recipes_jax.threads set 1)
        with threadpoolctl.threadpool_limits(limits=os.cpu_count(), user_api="blas"):
            out = botorch_peer.iteration(X, y, fidelities, costs, seed=r, kernel="rbf")
        times.append(out["total_seconds"])
        fit.append(out["fit_seconds"])
        acq.append(out["acq_seconds"])
    return {
        "steady_s": float(np.median(times)),
        "fit_s": float(np.median(fit)),
        "acq_s": float(np.median(acq)),
        "times_s": times,
        "fidelity_index": out["fidelity_index"],
        "value": out["value"],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 500])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--botorch-repeats", type=int, default=3)
    parser.add_argument("--starts", type=int, default=2, help="fit starts")
    parser.add_argument("--fit-steps", type=int, default=15, help="L-BFGS steps per start")
    parser.add_argument(
        "--lean",
        type=int,
        nargs=2,
        default=[1, 10],
        metavar=("STARTS", "STEPS"),
        help="a second, leaner refit timed too (default: what the benchmark campaigns use, "
        "benchmark.PRESETS['standard'])",
    )
    parser.add_argument("--candidates", type=int, default=4096)
    parser.add_argument("--score-dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--no-botorch", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    have_botorch = False
    if not args.no_botorch:
        try:
            import botorch  # noqa: F401

            have_botorch = True
        except ImportError:
            print("botorch not installed: timing recipes_jax only (pip install '.[botorch]')")

    rows = []
    with jax.enable_x64(True):
        asks = {}
        for name, (starts, steps, screen) in {
            "default": (args.starts, args.fit_steps, "grid"),
            "lean": (*args.lean, "grid"),
            "flat_screen": (args.starts, args.fit_steps, "flat"),
        }.items():
            model, ask = build_ask(
                5,
                num_starts=starts,
                fit_steps=steps,
                num_candidates=args.candidates,
                score_dtype=jnp.dtype(args.score_dtype),
                screen=screen,
            )
            asks[name] = (model, ask, starts, steps)
        for n in args.sizes:
            ours = {
                name: time_ours(n, args, ask, model, starts, steps)
                for name, (model, ask, starts, steps) in asks.items()
            }
            theirs = time_botorch(n, args) if have_botorch else None
            rows.append({"n": n, "recipes_jax": ours, "botorch": theirs})
            for name, o in ours.items():
                ratio = theirs["steady_s"] / o["steady_s"] if theirs else float("nan")
                print(
                    f"n={n:4d} {name:8s} recipes_jax compile {o['compile_s']:5.1f} s, first call "
                    f"{o['first_call_s']:5.1f} s, "
                    f"steady {o['steady_s'] * 1e3:7.1f} ms | fit loss {o['fit_loss']:.4f} "
                    f"(thorough {o['fit_loss_thorough']:.4f}) | ratio {ratio:5.1f}x",
                    flush=True,
                )
            if theirs:
                print(
                    f"n={n:4d} botorch {theirs['steady_s']:.2f} s (fit {theirs['fit_s']:.2f}, "
                    f"acq {theirs['acq_s']:.2f})",
                    flush=True,
                )

    print(
        "\n| n | recipes_jax default (ms) | lean (ms) | flat screen (ms) | compile (s) "
        "| BoTorch (s) | ratio default | ratio lean | fit loss default / lean / thorough |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        ours, theirs = row["recipes_jax"], row["botorch"]
        d, lean, flat = ours["default"], ours["lean"], ours["flat_screen"]
        b = f"{theirs['steady_s']:.2f}" if theirs else "n/a"
        r = lambda o: f"{theirs['steady_s'] / o['steady_s']:.1f}x" if theirs else "n/a"  # noqa: B023
        print(
            f"| {row['n']} | {d['steady_s'] * 1e3:.0f} | {lean['steady_s'] * 1e3:.0f} "
            f"| {flat['steady_s'] * 1e3:.0f} | {d['compile_s']:.1f} | {b} | {r(d)} | {r(lean)} "
            f"| {d['fit_loss']:.4f} / {lean['fit_loss']:.4f} / {d['fit_loss_thorough']:.4f} |"
        )
    meta = {
        "config": {
            "kernel": "RBF ARD over [w, u_scale, u_steps] (paper kernel) on both sides",
            "fidelities": 21,
            "recipes_jax": {
                "fit_starts": args.starts,
                "fit_steps": args.fit_steps,
                "lean_fit_starts_steps": args.lean,
                "screen": "fidelity by fidelity (gp.grid_predict); flat_screen: all F x C at once",
                "warm_start": "hyperparameters fitted at n - 1 observations",
                "candidates_per_fidelity": args.candidates,
                "top_k": 8,
                "refine_steps": 30,
                "fit_dtype": "float64",
                "score_dtype": args.score_dtype,
            },
            "botorch": {"raw_samples": 512, "num_restarts": 8, "kernel": "rbf"},
        },
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "jax": jax.__version__,
            "device": str(jax.devices()[0]),
        },
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(meta, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
