"""recipes_jax's mfms_bo against the BoTorch peer (``botorch_mfms.py``): regret and wall time.

Reads the BoTorch results (one or more JSON files written by ``botorch_mfms.py``, e.g. one
per parallel process), runs ``rj.mfms_bo`` with the speedup benchmark's standard preset on
the same problem for ``--seeds`` seeds, and prints side by side: median regret at budgets 5,
10, 25, 50 with 95% bootstrap intervals of the median over seeds, and wall time per campaign
(ours: compile time, one campaign alone, and per seed inside a sweep). Writes JSON::

    python benchmarks/peer_compare.py benchmarks/results/botorch_mfms_*.json --seeds 32 \
        --timing benchmarks/results/botorch_mfms_timing.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

from recipes_jax import analysis, benchmark, campaign

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("RECIPES_JAX_DATA", HERE.parent.parent / "shared" / "data"))
RESULTS = HERE / "results" / "peer_compare.json"
BUDGETS = (5.0, 10.0, 25.0, 50.0)


def median_interval(x: np.ndarray, num_bootstrap: int = 2000, seed: int = 0):
    """(median, 2.5% and 97.5% percentiles of bootstrap medians) of x [S]."""
    rng = np.random.default_rng(seed)
    boot = np.median(x[rng.integers(0, len(x), (num_bootstrap, len(x)))], axis=1)
    return float(np.median(x)), float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("botorch", nargs="+", type=Path, help="botorch_mfms.py JSON files")
    parser.add_argument("--seeds", type=int, default=32, help="our campaigns")
    parser.add_argument(
        "--timing",
        type=Path,
        help="a botorch_mfms.py JSON whose campaigns ran alone on the machine: BoTorch's wall "
        "time is taken from it (default: from the positional files)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)  # a benchmark script may: GP fitting in float64
    records, settings = [], None
    for path in args.botorch:
        data = json.loads(path.read_text())
        records += data["seeds"]
        settings = settings or data["settings"]
    objective, budget = settings["objective"], float(settings["budget"])
    problem = benchmark.paper_problem(objective, DATA / "surrogate_runs.pkl", trusted=True)
    strategy = benchmark.make_strategy("mfms_bo", problem.space)
    keys = jax.random.split(jax.random.key(1), args.seeds)
    ours = benchmark.run_method(problem, strategy, budget, keys)
    run_one, compile_one = campaign.compile_sweep(strategy, problem.env, budget, keys[:1])
    jax.block_until_ready(run_one())
    start = time.perf_counter()
    jax.block_until_ready(run_one())
    one_s = time.perf_counter() - start
    ours_at = analysis.regret_at_costs(
        ours.cost, ours.regret, np.asarray(BUDGETS), active=ours.active
    )
    theirs_at = np.array(
        [[r["regret_at"].get(f"{b:g}", np.nan) for b in BUDGETS] for r in records], float
    )
    rows = []
    print(f"paper/{objective}, budget {budget:g}: ours {args.seeds} seeds, BoTorch {len(records)}")
    print(f"{'budget':>6s}  {'ours median [95%]':>32s}  {'BoTorch median [95%]':>32s}")
    for j, b in enumerate(BUDGETS):
        if b > budget:
            continue
        mine = median_interval(ours_at[:, j])
        peer = median_interval(theirs_at[:, j][np.isfinite(theirs_at[:, j])])
        rows.append({"budget": b, "ours": mine, "botorch": peer})
        print(
            f"{b:6g}  {mine[0]:10.3g} [{mine[1]:9.3g}, {mine[2]:9.3g}]  "
            f"{peer[0]:10.3g} [{peer[1]:9.3g}, {peer[2]:9.3g}]"
        )
    timed = json.loads(args.timing.read_text())["seeds"] if args.timing else records
    timing = {
        "botorch_timing_source": str(args.timing or "the regret files"),
        "botorch_timed_campaigns": len(timed),
        "ours_compile_s": ours.compile_s,
        "ours_one_campaign_s": one_s,
        "ours_one_campaign_compile_s": compile_one,
        "ours_sweep_s_per_seed": ours.run_s / args.seeds,
        "botorch_median_campaign_s": float(np.median([r["wall_s"] for r in timed])),
        "botorch_median_s_per_ask": float(np.median([r["s_per_ask"] for r in timed])),
        "botorch_threads": settings.get("threads"),
    }
    timing["ratio_one_campaign"] = timing["botorch_median_campaign_s"] / one_s
    timing["ratio_per_seed_in_sweep"] = (
        timing["botorch_median_campaign_s"] / timing["ours_sweep_s_per_seed"]
    )
    print(
        f"wall time per campaign: BoTorch {timing['botorch_median_campaign_s']:.0f} s "
        f"(median, {timing['botorch_median_s_per_ask']:.2f} s/ask); ours {one_s:.1f} s alone "
        f"(+{compile_one:.0f} s compile, once), {timing['ours_sweep_s_per_seed']:.2f} s per "
        f"seed in a {args.seeds}-seed sweep -> {timing['ratio_one_campaign']:.0f}x and "
        f"{timing['ratio_per_seed_in_sweep']:.0f}x"
    )
    out = {
        "objective": objective,
        "budget": budget,
        "seeds_ours": args.seeds,
        "seeds_botorch": len(records),
        "botorch_settings": settings,
        "regret": rows,
        "timing": timing,
        "machine": benchmark._machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(analysis.to_jsonable(out), indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
