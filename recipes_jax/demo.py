"""``recipes-jax demo``: a short mfms_bo against random search campaign on the built-in world.

The README's main job. Both methods run ``seeds`` campaigns of ``budget`` target runs on the
built-in world's StackExchange loss (``rj.worlds.default()``, no files needed), each method
one compiled ``rj.sweep``; every recommendation is scored by its regret at the target (1B
parameters, 19,500 steps) against the world's optimum. Prints a result table and writes a
regret-vs-cost PNG (with ``matplotlib``) and the numbers as JSON.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from recipes_jax import analysis, benchmark, campaign
from recipes_jax.progress import ProgressBar
from recipes_jax.strategies import mfms_bo, random_search

__all__ = ["DEMO_BUDGETS", "run_demo"]

#: Budgets (target runs) at which the demo's table reports median regret.
DEMO_BUDGETS = (1.0, 2.0, 5.0, 10.0)


def _strategies(space, num_asks: int) -> dict[str, Any]:
    options = dict(benchmark.PRESETS["standard"], num_asks=num_asks)
    return {"mfms_bo": mfms_bo(space, **options), "random_search": random_search(space)}


def _mixture(names, w) -> str:
    return ", ".join(f"{n} {x:.2f}" for n, x in zip(names, np.asarray(w), strict=True))


def run_demo(
    *,
    seeds: int = 16,
    budget: float = 10.0,
    num_asks: int = 50,
    objective: str = "stackexchange",
    out_dir: str | os.PathLike | None = "recipes-jax-demo",
    seed: int = 0,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the demo and return its results (JSON-ready).

    Args:
      seeds: campaigns per method (the same PRNG keys for both).
      budget: per campaign, in full target runs (1B parameters x 19,500 steps).
      num_asks: mfms_bo's asks per campaign (random search gets one per target run).
      objective: ``stackexchange``, ``commoncrawl`` or ``hellaswag`` (maximized).
      out_dir: where ``demo.json`` and ``regret_vs_cost.png`` go (None: nowhere).
      seed: the sweep's base PRNG seed.
      log: where text goes.
      progress: draw a progress bar per method (on stderr).
    """
    start = time.perf_counter()
    with jax.enable_x64(True):  # GP fitting in float64; the global flag is left alone
        problem = benchmark.default_problem(objective)
        space = problem.space
        log(
            f"Built-in world: {space.num_domains} domains ({', '.join(space.domains)}), scales "
            f"{', '.join(f'{m:g}M' for m in space.scales)}, target {space.target[0]:g}M x "
            f"{space.target[1]:,} steps; objective {problem.metric} "
            f"({'maximized' if space.maximize else 'minimized'}), optimum "
            f"{problem.optimum.value:.4f}"
        )
        log(f"{seeds} campaigns per method, budget {budget:g} target runs each\n")
        keys = jax.random.split(jax.random.key(seed), seeds)
        results = []
        for name, strategy in _strategies(space, num_asks).items():
            run, compile_s = campaign.compile_sweep(
                strategy, problem.env, budget, keys, progress=progress
            )
            log(f"{name}: compiled in {compile_s:.1f} s")
            t0 = time.perf_counter()
            bar = ProgressBar(f"  {name:14s}") if progress else None
            trace = jax.block_until_ready(run(progress=bar) if progress else run())
            run_s = time.perf_counter() - t0
            scored = benchmark.score_trace(problem, trace, name, compile_s, run_s)
            results.append((scored, np.asarray(trace.recommendation)))
    budgets = [b for b in DEMO_BUDGETS if b <= budget] or [budget]
    tables = benchmark.compare([r for r, _ in results], budgets=budgets, num_bootstrap=500)
    log("\n" + benchmark.format_tables(f"built-in world, {objective}", tables))
    mfms, mfms_rec = results[0]
    final = mfms.regret[np.arange(seeds), mfms.active.sum(axis=1) - 1]
    median_seed = int(np.argsort(final)[len(final) // 2])
    last = mfms.active[median_seed].sum() - 1
    log(
        f"\nmfms_bo's recommendation (median seed, regret {final[median_seed]:.2e}):\n  "
        f"{_mixture(space.domains, mfms_rec[median_seed, last])}\nthe world's optimum:\n  "
        f"{_mixture(space.domains, problem.optimum.mixture)}"
    )
    report: dict[str, Any] = {
        "world": "default",
        "objective": objective,
        "metric": problem.metric,
        "seeds": seeds,
        "budget": budget,
        "num_asks": num_asks,
        "optimum": {"value": problem.optimum.value, "mixture": problem.optimum.mixture},
        "recommendation_median_seed": mfms_rec[median_seed, last],
        **tables,
    }
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        try:
            grid = analysis.cost_grid(budget, num=200)
            curves = {
                r.name: (grid, analysis.regret_at_costs(r.cost, r.regret, grid, active=r.active))
                for r, _ in results
            }
            png = analysis.plot_regret(
                curves, out / "regret_vs_cost.png", title=f"built-in world, {objective}"
            )
            report["plot"] = png.name
            log(f"\nwrote {png}")
        except ImportError:
            log("\n(no plot: pip install 'recipes-jax[plot]' for the regret-vs-cost PNG)")
        benchmark._write_json(out / "demo.json", report)
        log(f"wrote {out / 'demo.json'}")
    report["seconds"] = time.perf_counter() - start
    log(f"demo took {report['seconds']:.0f} s")
    return report
