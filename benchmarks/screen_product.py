"""The screen's variance product ``V = Ks L^-T`` for one fidelity: a dense product vs
``recipes_jax.linalg.times_lower_transposed`` (which skips L^-T's zero upper triangle), side by
side. Prints a table and writes JSON (benchmarks/results/screen_product.json).

The acquisition screen (``gp.map_grid``) computes, per fidelity, V [C, N] for C = 4,096
candidate mixtures against a buffer of N observations, then the posterior variances
``prior - sum(V**2, 1)``; that product is most of an ask's screening time at N = 512. Here
Ks is Gaussian noise and L^-T the inverse of ``gp_inverse.py``'s Cholesky factor of an RBF
kernel matrix (float32, as the screen scores in float32); each timed call includes the row
sums, as in the screen. Medians of ``--repeats`` calls after compilation (compile time
separate); the variants alternate call by call, so machine noise hits them alike.

    python benchmarks/screen_product.py
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

from gp_inverse import factors

from recipes_jax import linalg

RESULTS = Path(__file__).resolve().parent / "results" / "screen_product.json"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=4096)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--blocks", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rows = []
    for n in args.sizes:
        rng = np.random.default_rng(0)
        Ks = jnp.asarray(rng.standard_normal((args.candidates, n)), jnp.float32)
        with jax.enable_x64(True):  # the factor in float64, inverted, then cast
            L = np.asarray(factors(n, 1)[0])
        L_inv = jnp.asarray(np.linalg.inv(L), jnp.float32)
        variants = {"dense": lambda a, t: a @ t.T}
        for block in args.blocks:
            if 2 * block < n:  # else times_lower_transposed is one dense product
                variants[f"block {block}"] = lambda a, t, b=block: linalg.times_lower_transposed(
                    a, t, b
                )
        fns, compile_s = {}, {}
        for name, product in variants.items():
            t0 = time.perf_counter()
            fns[name] = (
                jax.jit(lambda a, t, p=product: jnp.sum(jnp.square(p(a, t)), axis=1))
                .lower(Ks, L_inv)
                .compile()
            )
            compile_s[name] = time.perf_counter() - t0
        reference = np.asarray(fns["dense"](Ks, L_inv))
        difference = {
            name: float(np.max(np.abs(np.asarray(fn(Ks, L_inv)) - reference) / reference))
            for name, fn in fns.items()
        }
        times = {name: [] for name in fns}
        for _ in range(args.repeats):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                jax.block_until_ready(fn(Ks, L_inv))
                times[name].append(time.perf_counter() - t0)
        median_ms = {name: 1e3 * float(np.median(v)) for name, v in times.items()}
        row = {
            "n": n,
            "candidates": args.candidates,
            "median_ms": median_ms,
            "speedup_vs_dense": {k: median_ms["dense"] / v for k, v in median_ms.items()},
            "compile_s": compile_s,
            "max_relative_difference": difference,
        }
        rows.append(row)
        print(
            f"N={n:4d}  "
            + "  ".join(f"{k} {v:6.2f} ms" for k, v in median_ms.items())
            + f"  (max rel. difference {max(difference.values()):.1e})",
            flush=True,
        )
    print("\n| N | variant | median (ms) | speedup vs dense | compile (s) |")
    print("|---|---|---|---|---|")
    for r in rows:
        for name, ms in r["median_ms"].items():
            print(
                f"| {r['n']} | {name} | {ms:.2f} | {r['speedup_vs_dense'][name]:.2f}x "
                f"| {r['compile_s'][name]:.2f} |"
            )
    machine = {"platform": platform.platform(), "jax": jax.__version__, "cpus": os.cpu_count()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"command": "python benchmarks/screen_product.py", "machine": machine}
            | {"repeats": args.repeats, "dtype": "float32", "rows": rows},
            indent=2,
        )
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
