"""Built-in worlds: ground-truth functions with the paper's setting, and run tables drawn from them.

- :func:`default` needs no files: a parametric mixing law x scaling law (below) with
  coefficients fitted once to the paper's surrogate MLP (``benchmarks/fit_default_world.py``
  regenerates ``data/default_world.json``, which also records how well the law fits).
- :func:`paper_mlp` is the paper's own simulator, the MLP released with arXiv 2503.21023, read
  from ``paper_surrogate_mlp.npz`` (plain arrays) and evaluated in JAX.

A world exposes its exact truth (for regret) and generates a :class:`RunTable` with the paper's
design (runs per scale, Dirichlet(1) mixtures, some runs cut short, Gaussian eval noise), so
that a simulator built on a world is built exactly like one on real runs.

The law, per metric (``n = m / 150``, ``t = s / 2000``, ``u = log n``, ``v = log t``)::

    L(w, m, s) = E + A n^-a + B t^-b + G n^-a t^-b                     (scaling in N and steps)
               + sum_j (c0_j + c1_j u + c2_j v) w_j                     (mixture slopes that
               + exp(d0 + d1 u + d2 v) / sum_j C_j (w_j + 1e-4)^g_j      drift with scale/steps)

The last term is the additive data-mixing law of Shukor et al. (2025, "Scaling laws for
optimal data mixtures"), ``1 / sum_j C_j h_j^g_j``; the scaling terms follow Chinchilla-style
power laws in parameters and steps. Accuracies are fitted as ``-accuracy``.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from recipes_jax.simulator.run_table import RunTable
from recipes_jax.space import (
    PAPER_DOMAINS,
    PAPER_SCALES,
    PAPER_STEPS,
    Space,
    closest_names,
    higher_is_better,
)

__all__ = [
    "PAPER_EMPTY_RUNS",
    "PAPER_METRICS",
    "PAPER_RUNS_PER_SCALE",
    "LawParams",
    "World",
    "default",
    "law_value",
    "paper_mlp",
]

PAPER_METRICS = (
    "train/CrossEntropyLoss",
    "eval/RedPajamaCommonCrawl/CrossEntropyLoss",
    "eval/RedPajamaC4/CrossEntropyLoss",
    "eval/RedPajamaWikipedia/CrossEntropyLoss",
    "eval/RedPajamaStackExchange/CrossEntropyLoss",
    "eval/RedPajamaGithub/CrossEntropyLoss",
    "eval/RedPajamaArXiv/CrossEntropyLoss",
    "eval/RedPajamaBook/CrossEntropyLoss",
    "eval/downstream/hellaswag_len_norm",
    "eval/downstream/piqa_len_norm",
    "eval/downstream/arc_easy_acc",
)
#: Usable runs per scale in the paper's run table (and its stand-in).
PAPER_RUNS_PER_SCALE = {20.0: 112, 60.0: 71, 150.0: 51, 300.0: 64, 500.0: 39, 700.0: 52, 1000.0: 65}
#: Runs with an empty history per scale in the stand-in table (18 in all).
PAPER_EMPTY_RUNS = {20.0: 3, 60.0: 2, 150.0: 1, 300.0: 3, 500.0: 4, 700.0: 3, 1000.0: 2}

DEFAULT_PAPER_MLP_PATH = os.path.join("..", "shared", "data", "paper_surrogate_mlp.npz")


# ---------------------------------------------------------------------------- the law
class LawParams(NamedTuple):
    """Coefficients of the mixing x scaling law for one metric (see module docstring).

    Scalars: E, log_A, log_a, log_B, log_b, log_G, d0, d1, d2. Vectors [K]: c0, c1, c2,
    log_C, log_g. ``sign`` is +1 for losses and -1 for accuracies (fitted as -accuracy).
    """

    E: jax.Array
    log_A: jax.Array
    log_a: jax.Array
    log_B: jax.Array
    log_b: jax.Array
    log_G: jax.Array
    c0: jax.Array
    c1: jax.Array
    c2: jax.Array
    d0: jax.Array
    d1: jax.Array
    d2: jax.Array
    log_C: jax.Array
    log_g: jax.Array
    sign: jax.Array


def law_value(p: LawParams, w: jax.Array, m: jax.Array, s: jax.Array) -> jax.Array:
    """The law at w [B, K], m [B] (millions of parameters), s [B] (steps) -> [B]."""
    u = jnp.log(m / 150.0)
    v = jnp.log(s / 2000.0)
    a, b = jnp.exp(p.log_a), jnp.exp(p.log_b)
    scaling = (
        p.E + jnp.exp(p.log_A - a * u) + jnp.exp(p.log_B - b * v) + jnp.exp(p.log_G - a * u - b * v)
    )
    slopes = p.c0 + p.c1 * u[:, None] + p.c2 * v[:, None]
    saturating = jnp.exp(p.d0 + p.d1 * u + p.d2 * v) / jnp.sum(
        jnp.exp(p.log_C) * (w + 1e-4) ** jnp.exp(p.log_g), axis=-1
    )
    return p.sign * (scaling + jnp.sum(slopes * w, axis=-1) + saturating)


# ---------------------------------------------------------------------------- worlds
@dataclass(frozen=True, eq=False)
class World:
    """A ground truth over (mixture, scale, steps) for several metrics.

    Attributes:
      name: short name.
      space: the decision space (domains, scales, steps, target, costs).
      metrics: metric names.
      metric_scale: per metric, the spread used to size eval noise (noise sd = noise x scale).
      truth_fn: metric index -> jittable ``(w [B, K], m [B], s [B]) -> [B]``.
    """

    name: str
    space: Space
    metrics: tuple[str, ...]
    metric_scale: tuple[float, ...]
    truth_fn: Callable[[int], Callable] = field(repr=False)
    info: dict = field(default_factory=dict, repr=False)

    def metric_index(self, metric: str | int) -> int:
        """Position of ``metric`` (a name or an index); a ``KeyError`` suggests close names."""
        if isinstance(metric, int):
            return metric
        if metric not in self.metrics:
            raise KeyError(
                f"world {self.name!r} has no metric {metric!r}; did you mean "
                f"{closest_names(metric, self.metrics)}?"
            )
        return self.metrics.index(metric)

    def truth(self, metric: str | int) -> Callable:
        """Exact, jittable ``(w [B, K], m [B], s [B]) -> [B]`` for one metric."""
        return self.truth_fn(self.metric_index(metric))

    def maximize(self, metric: str | int) -> bool:
        """Whether ``metric`` is maximized (an accuracy) rather than minimized (a loss)."""
        return higher_is_better(self.metrics[self.metric_index(metric)])

    def run_table(
        self,
        seed: int = 0,
        *,
        runs_per_scale: dict[float, int] | None = None,
        empty_runs_per_scale: dict[float, int] | None = None,
        cut_short_fraction: float = 0.3,
        noise: float = 0.02,
    ) -> RunTable:
        """Draw a run table with the paper's design from this world.

        Mixtures are Dirichlet(1); each run reports every metric at every step of the space's
        grid, plus Gaussian eval noise with sd ``noise x metric_scale``; a ``cut_short_fraction``
        of runs stops at a uniformly random earlier step; ``empty_runs_per_scale`` runs have no
        history at all (as in the paper's file). Deterministic in ``seed``.
        """
        runs_per_scale = runs_per_scale or PAPER_RUNS_PER_SCALE
        if empty_runs_per_scale is None:
            empty_runs_per_scale = (
                PAPER_EMPTY_RUNS if runs_per_scale is PAPER_RUNS_PER_SCALE else {}
            )
        rng = np.random.default_rng(seed)
        K = self.space.num_domains
        steps = np.asarray(self.space.steps)
        mixtures, scales, reached, run_ids = [], [], [], []
        for scale, count in sorted(runs_per_scale.items()):
            empty = empty_runs_per_scale.get(scale, 0)
            for i in range(count + empty):
                mixtures.append(rng.dirichlet(np.ones(K)))
                scales.append(float(scale))
                if i >= count:
                    last = 0
                elif rng.random() < cut_short_fraction and len(steps) > 1:
                    last = int(rng.integers(1, len(steps)))
                else:
                    last = len(steps)
                reached.append(last)
                run_ids.append(f"{scale:g}M-{i:04d}")
        mixtures = np.asarray(mixtures)
        scales = np.asarray(scales)
        R, S, M = len(scales), len(steps), len(self.metrics)
        w = np.repeat(mixtures, S, axis=0)
        m = np.repeat(scales, S)
        s = np.tile(steps.astype(np.float64), R)
        values = np.empty((R, S, M))
        with jax.enable_x64(True):
            for j in range(M):
                values[:, :, j] = np.asarray(jax.jit(self.truth(j))(w, m, s)).reshape(R, S)
        values += noise * np.asarray(self.metric_scale) * rng.standard_normal(values.shape)
        observed = np.arange(S)[None, :] < np.asarray(reached)[:, None]
        mask = np.repeat(observed[:, :, None], M, axis=2)
        return RunTable(
            mixtures=mixtures,
            scales=scales,
            steps=steps,
            values=np.where(mask, values, np.nan),
            mask=mask,
            domains=self.space.domains,
            metrics=self.metrics,
            run_ids=tuple(run_ids),
        )

    def simulator(self, metric: str | int, *, seed: int = 0, **options):
        """A Simulator built from ``run_table(seed)`` (cached per metric, seed and options)."""
        return _cached_simulator(
            self, self.metrics[self.metric_index(metric)], seed, tuple(sorted(options.items()))
        )


@functools.lru_cache(maxsize=32)
def _cached_simulator(world: World, metric: str, seed: int, options: tuple):
    from recipes_jax.simulator.simulator import Simulator

    return Simulator(world.run_table(seed), metric, **dict(options))


def _law_world(name: str, coefficients: dict) -> World:
    metrics = tuple(coefficients["metrics"])
    params = [
        LawParams(**{k: np.asarray(v) for k, v in coefficients["laws"][m].items()}) for m in metrics
    ]

    def truth_fn(index: int) -> Callable:
        p = params[index]

        def truth(w, m, s):
            dtype = jnp.result_type(float)
            return law_value(
                LawParams(*(jnp.asarray(x, dtype) for x in p)),
                jnp.asarray(w, dtype),
                jnp.asarray(m, dtype),
                jnp.asarray(s, dtype),
            )

        return truth

    return World(
        name=name,
        space=Space.paper(),
        metrics=metrics,
        metric_scale=tuple(coefficients["metric_scale"]),
        truth_fn=truth_fn,
        info=coefficients.get("fit_report", {}),
    )


@functools.cache
def default() -> World:
    """The built-in world: the paper's 5 domains, 7 scales (20M..1B) and steps 100..19,500,
    with a mixing x scaling law fitted to the paper's surrogate (no files needed)."""
    text = resources.files("recipes_jax.simulator").joinpath("data/default_world.json").read_text()
    return _law_world("default", json.loads(text))


def paper_mlp(path: str | os.PathLike | None = None) -> World:
    """The paper's released simulator (an MLP) as a world; needs ``paper_surrogate_mlp.npz``.

    ``path`` defaults to ``../shared/data/paper_surrogate_mlp.npz``. The file is plain arrays,
    read with ``allow_pickle=False``.
    """
    path = os.fspath(path or DEFAULT_PAPER_MLP_PATH)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found: the paper world needs paper_surrogate_mlp.npz "
            "(pass its path to rj.worlds.paper_mlp(path))"
        )
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    domains = tuple(str(x) for x in arrays["input_names"][:-2])
    metrics = tuple(str(x) for x in arrays["metric_names"])
    weights = [(arrays[f"W{i}"], arrays[f"b{i}"]) for i in range(4)]

    def truth_fn(index: int) -> Callable:
        def truth(w, m, s):
            dtype = jnp.result_type(float)
            x = jnp.concatenate(
                [
                    jnp.asarray(w, dtype),
                    jnp.asarray(m, dtype)[:, None],
                    jnp.asarray(s, dtype)[:, None],
                ],
                axis=1,
            )
            h = (x - arrays["x_mean"].astype(dtype)) / arrays["x_std"].astype(dtype)
            for W, b in weights[:3]:
                h = jax.nn.relu(h @ W.astype(dtype) + b.astype(dtype))
            W, b = weights[3]
            y = h @ W[:, index].astype(dtype) + b[index].astype(dtype)
            return y * arrays["y_std"][index] + arrays["y_mean"][index]

        return truth

    space = Space(domains=domains, scales=PAPER_SCALES, steps=PAPER_STEPS, target=(1000.0, 19_500))
    if domains != PAPER_DOMAINS:
        raise ValueError(f"{path}: unexpected input names {domains}")
    return World(
        name="paper_mlp",
        space=space,
        metrics=metrics,
        metric_scale=tuple(float(x) for x in arrays["y_std"]),
        truth_fn=truth_fn,
    )
