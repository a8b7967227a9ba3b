"""Inverse of a GP covariance from its Cholesky factor: two triangular solves against the
identity (LAPACK) vs ``recipes_jax.linalg.inverse_from_cholesky`` (blocks merged by matrix
products), side by side. Prints a table and writes JSON (benchmarks/results/gp_inverse.json).

The matrices are RBF kernel matrices of random points in 7 dimensions plus a 1e-6 nugget,
float64, one at a time and vmapped over a batch (as in a seed sweep or a multi-start fit).
Each timing is the median of ``--repeats`` calls after compilation (compile time reported
separately); the two methods alternate call by call, so machine noise hits both alike.

    python benchmarks/gp_inverse.py
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from recipes_jax import linalg

RESULTS = Path(__file__).resolve().parent / "results" / "gp_inverse.json"
CASES = ((64, 64), (128, 1), (128, 64), (256, 1), (256, 16), (512, 1), (512, 2))


def two_solves(L):
    return jax.scipy.linalg.cho_solve((L, True), jnp.eye(L.shape[-1], dtype=L.dtype))


def factors(n: int, batch: int) -> jax.Array:
    out = []
    for seed in range(batch):
        x = np.random.default_rng(seed).uniform(size=(n, 7))
        d2 = np.sum((x[:, None] - x[None]) ** 2, axis=-1) / 0.5**2
        out.append(np.linalg.cholesky(np.exp(-0.5 * d2) + 1e-6 * np.eye(n)))
    return jnp.asarray(np.stack(out))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rows = []
    with jax.enable_x64(True):
        for n, batch in CASES:
            Ls = factors(n, batch)
            fns = {
                "two_solves": jax.jit(jax.vmap(two_solves)),
                "blocked": jax.jit(jax.vmap(linalg.inverse_from_cholesky)),
            }
            compile_s, times = {}, {name: [] for name in fns}
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fns[name] = fn.lower(Ls).compile()
                compile_s[name] = time.perf_counter() - t0
                jax.block_until_ready(fns[name](Ls))
            for _ in range(args.repeats):
                for name, fn in fns.items():
                    t0 = time.perf_counter()
                    jax.block_until_ready(fn(Ls))
                    times[name].append(time.perf_counter() - t0)
            C = np.einsum("bij,bkj->bik", np.asarray(Ls), np.asarray(Ls))
            residual = {
                name: float(np.abs(C @ np.asarray(fn(Ls)) - np.eye(n)).max())
                for name, fn in fns.items()
            }
            row = {
                "n": n,
                "batch": batch,
                "median_ms": {k: 1e3 * float(np.median(v)) for k, v in times.items()},
                "compile_s": compile_s,
                "max_abs_residual": residual,
            }
            row["speedup"] = row["median_ms"]["two_solves"] / row["median_ms"]["blocked"]
            rows.append(row)
            print(
                f"n={n:4d} batch={batch:3d}  two solves {row['median_ms']['two_solves']:7.2f} ms"
                f"  blocked {row['median_ms']['blocked']:7.2f} ms  ({row['speedup']:.2f}x)"
                f"  |C P - I| {residual['two_solves']:.1e} / {residual['blocked']:.1e}",
                flush=True,
            )
    print("\n| n | batch | two solves (ms) | blocked (ms) | speedup | residual solves / blocked |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        m, res = r["median_ms"], r["max_abs_residual"]
        print(
            f"| {r['n']} | {r['batch']} | {m['two_solves']:.2f} | {m['blocked']:.2f} "
            f"| {r['speedup']:.2f}x | {res['two_solves']:.1e} / {res['blocked']:.1e} |"
        )
    meta = {
        "machine": {"platform": platform.platform(), "jax": jax.__version__},
        "repeats": args.repeats,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(meta, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
