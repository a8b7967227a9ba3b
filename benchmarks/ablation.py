"""What each of mfms_bo's default choices buys: variants on one speedup-benchmark problem.

Each variant is ``rj.mfms_bo(space, **standard preset, **variant options)``; the variants
differ from the defaults in one choice each (kernel, cost exponent and its cooling,
acquisition, learning curves, recommendation polish, buffer size). Every variant runs on the
same seeds and budget as the baselines it is compared with (random search and mf_bo_steps,
run here too), on the paper world by default. Prints a table (median regret at budgets 5/10/25/50,
spend, speedups with 95% bootstrap intervals, seconds) and writes JSON::

    python benchmarks/ablation.py                        # paper world, StackExchange, 32 seeds
    python benchmarks/ablation.py --seeds 16 --variants defaults,alpha_1,kg
    python benchmarks/ablation.py --variants defaults,capacity_320   # 320 rows: ~4x slower
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import jax

import recipes_jax as rj
from recipes_jax import analysis, benchmark, kernels

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("RECIPES_JAX_DATA", HERE.parent.parent / "shared" / "data"))
RESULTS = HERE / "results" / "ablation.json"

#: name -> (what changes from the shipped defaults, options passed to rj.mfms_bo)
VARIANTS = {
    "defaults": ("rj.mfms_bo defaults", {}),
    "paper_kernel": (
        "the paper's RBF x RBF x RBF kernel (no mixture x scale term)",
        dict(kernel=kernels.paper_kernel()),
    ),
    **{
        f"mixture_{profile}_{rep}": (
            f"mfms_kernel with {profile} over {rep} mixture weights (default: rbf over sqrt)",
            dict(kernel=kernels.mfms_kernel(profile, rep)),
        )
        for profile, rep in (
            ("rbf", "raw"),
            ("matern52", "raw"),
            ("matern52", "sqrt"),
            ("rbf", "box_cox"),
            ("matern52", "box_cox"),
        )
    },
    "alpha_1": ("cost exponent 1 (value per unit cost)", dict(cost_exponent=1.0)),
    "alpha_0.5": ("cost exponent 0.5", dict(cost_exponent=0.5)),
    "alpha_0": ("cost exponent 0 (cost ignored)", dict(cost_exponent=0.0)),
    "cooling_asks": (
        "exponent cools 1 -> 0 over the asks (paper)",
        dict(cost_exponent=1.0, cooling_asks=100),
    ),
    "kg": ("knowledge gradient instead of target EI", dict(acquisition="kg")),
    "final_values_only": ("no learning curves: final values only", dict(learning_curves=False)),
    "recommend_refine_10": (
        "10 Adam steps polishing the recommendation instead of 50",
        dict(recommend_refine_steps=10),
    ),
    "recommend_min_weight_0": (
        "recommendation keeps every weight (no 1e-4 floor zeroing dust weights)",
        dict(recommend_min_weight=0.0),
    ),
    "refit_2x15": (
        "heavier refit per ask: warm start + 1 random start, 15 L-BFGS steps each",
        dict(fit_starts=2, fit_steps=15),
    ),
    "capacity_320": ("320-row observation buffer (no eviction; slower)", dict(capacity=320)),
    "steps_per_scale_2": (
        "2 step counts per scale (14 fidelities; curves checked at 2 points)",
        dict(steps_per_scale=2),
    ),
    "steps_per_scale_5": (
        "5 step counts per scale (35 fidelities; curves checked at 5 points)",
        dict(steps_per_scale=5),
    ),
    "steps_per_scale_5_asks_150": (
        "5 step counts per scale and 150 asks (so the budget can be spent)",
        dict(steps_per_scale=5, num_asks=150),
    ),
    "alpha_0.125": ("cost exponent 0.125", dict(cost_exponent=0.125)),
    "local_128": (
        "384 global + 128 candidates around the recommendation (same screen size)",
        dict(num_candidates=384, local_candidates=128),
    ),
    "candidates_768": (
        "768 global candidates, none local (the screen size of local_256_plus)",
        dict(num_candidates=768),
    ),
    "candidates_4096": (
        "4,096 global candidates (8x the screen; the bounded screen scores few of them)",
        dict(num_candidates=4096),
    ),
    "local_512_plus": (
        "512 global + 512 candidates around the recommendation (2x the screen)",
        dict(local_candidates=512),
    ),
    **{
        f"noise_floor_{floor}": (
            f"GP noise floor {floor} instead of 1e-6 (standardized)",
            dict(noise_floor=float(floor)),
        )
        for floor in ("1e-8", "1e-10", "1e-12")
    },
    "noise_floor_1e-10_local_256": (
        "GP noise floor 1e-10 and 256 more candidates around the recommendation",
        dict(noise_floor=1e-10, local_candidates=256),
    ),
    "local_256_plus": (
        "512 global + 256 candidates around the recommendation (1.5x the screen)",
        dict(local_candidates=256),
    ),
    # (run as "initial_5", K = 5 runs, when the default was 2K; K is now the default)
    "initial_2K": ("initial design of 10 runs (2K) instead of 5 (K)", dict(num_initial=10)),
    "initial_3": ("initial design of 3 runs instead of 5 (K)", dict(num_initial=3)),
}


def _stronger_baseline(profile: str, representation: str):
    return lambda space, preset: rj.mf_bo_steps(
        space,
        **preset,
        kernel=kernels.paper_kernel(profile, representation),
        name=f"mf_bo_steps_{profile}_{representation}",
    )


#: baselines beyond ``benchmark.METHODS``: mf_bo_steps given mfms_bo's mixture kernels, to
#: check whether a kernel choice helps mfms_bo alone or any GP method
EXTRA_BASELINES = {
    f"mf_bo_steps_{profile}_{rep}": _stronger_baseline(profile, rep)
    for profile, rep in (("rbf", "sqrt"), ("matern52", "sqrt"))
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=32)
    parser.add_argument("--budget", type=float, default=50.0)
    parser.add_argument("--world", choices=benchmark.WORLDS, default="paper")
    parser.add_argument(
        "--objective", choices=sorted(benchmark.OBJECTIVES), default="stackexchange"
    )
    parser.add_argument("--variants", default=",".join(v for v in VARIANTS if v != "capacity_320"))
    parser.add_argument(
        "--baselines",
        default="random_search,mf_bo_steps",
        help=f"any of {benchmark.BASELINES + tuple(EXTRA_BASELINES)}",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)  # a benchmark script may: GP fitting in float64
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {','.join(VARIANTS)}")
    if args.world == "paper":
        problem = benchmark.paper_problem(
            args.objective,
            DATA / "surrogate_runs.pkl",
            trusted=True,  # our own stand-in file
        )
    else:
        problem = benchmark.default_problem(args.objective)
    keys = jax.random.split(jax.random.key(1), args.seeds)
    results = []
    preset = benchmark.PRESETS["standard"]
    for method in args.baselines.split(","):
        if method in EXTRA_BASELINES:
            strategy = EXTRA_BASELINES[method](problem.space, preset)
        else:
            strategy = benchmark.make_strategy(method, problem.space)
        results.append(benchmark.run_method(problem, strategy, args.budget, keys))
        print(f"{method}: {results[-1].run_s:.1f} s", flush=True)
    out = {
        "world": problem.world,
        "objective": problem.objective,
        "seeds": args.seeds,
        "budget": args.budget,
        "preset": preset,
        "baselines": [benchmark.compare([r], reference=r.name)["methods"][0] for r in results],
        "variants": [],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name in names:
        description, options = VARIANTS[name]
        strategy = rj.mfms_bo(problem.space, **{**preset, **options})
        result = benchmark.run_method(problem, strategy, args.budget, keys, name="mfms_bo")
        tables = benchmark.compare([result, *results])
        mine = tables["methods"][0]
        readable = {
            k: v if isinstance(v, int | float | str) else repr(v) for k, v in options.items()
        }
        out["variants"].append(
            {"variant": name, "change": description, "options": readable, **tables}
        )
        # after every variant, so a long run keeps what it has
        args.out.write_text(json.dumps(analysis.to_jsonable(out), indent=2))
        speed = "  ".join(
            f"vs {s['baseline']} {s['speedup']:.2f}x [{s['ci_low']:.2f}, {s['ci_high']:.2f}]"
            for s in tables["speedups"]
        )
        regrets = " ".join(f"{b}:{v['median']:.2e}" for b, v in mine["regret_at"].items())
        print(
            f"{name:18s} spent {mine['median_spent']:5.2f}  regret {regrets}  {speed}  "
            f"run {result.run_s:.0f} s",
            flush=True,
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
