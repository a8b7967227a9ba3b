"""The speedup benchmark (issue 5): mfms_bo against random search, Hyperband, mf_bo_steps and
single-fidelity BO at equal budget, on the paper world and the built-in default world.

A thin wrapper around ``recipes-jax benchmark`` (``recipes_jax.benchmark``) with this
repository's defaults: the paper world from ``../shared/data/surrogate_runs.pkl`` (a pickle we
generated ourselves, hence ``--trusted``), results under ``benchmarks/results/speedup/``::

    python benchmarks/speedup.py                       # 128 seeds x 5 methods x 2 worlds x 3
    python benchmarks/speedup.py --worlds paper --objectives stackexchange
    python benchmarks/speedup.py --quick               # a smoke run, seconds

Any ``recipes-jax benchmark`` option can be given; ``--help`` lists them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from recipes_jax import cli

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("RECIPES_JAX_DATA", HERE.parent.parent / "shared" / "data"))


def main(argv: list[str]) -> int:
    args = ["benchmark", *argv]
    runs = DATA / "surrogate_runs.pkl"
    if "--paper-runs" not in argv and runs.exists():
        args += ["--paper-runs", str(runs), "--trusted"]
    if "--out" not in argv:
        args += [
            "--out",
            str(HERE / "results" / ("speedup_quick" if "--quick" in argv else "speedup")),
        ]
    return cli.main(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
