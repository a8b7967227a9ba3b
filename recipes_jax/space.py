"""The decision space: domains, model scales, training steps, the target fidelity and run costs.

A decision is a triple (mixture ``w`` on the simplex over K domains, model scale ``m`` in
millions of parameters, training steps ``s``). Costs are in units of one full run at the target
fidelity, so ``space.cost(*space.target) == 1``.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import jax.numpy as jnp
import numpy as np

__all__ = [
    "MIXTURE_SUM_ATOL",
    "PAPER_DOMAINS",
    "PAPER_GFLOPS_PER_STEP",
    "PAPER_SCALES",
    "PAPER_STEPS",
    "PAPER_TOKENS_PER_STEP",
    "Space",
    "check_mixtures",
    "closest_names",
    "higher_is_better",
    "parse_scale",
    "whole_steps",
]

#: How far a mixture's weights may sum from 1 before it is rejected. Published mixtures are
#: often rounded to three decimals over many domains (RegMix's sum to 0.998-1.001), so the
#: tolerance is loose; accepted mixtures are renormalized to sum to exactly 1.
MIXTURE_SUM_ATOL = 1e-2

PAPER_DOMAINS = (
    "RedPajamaWikipedia",
    "RedPajamaStackExchange",
    "RedPajamaGithub",
    "RedPajamaArXiv",
    "RedPajamaBook",
)
PAPER_SCALES = (20.0, 60.0, 150.0, 300.0, 500.0, 700.0, 1000.0)
PAPER_STEPS = tuple(range(100, 19_501, 100))
#: Training compute per step, GFLOPs, from the paper's table (batch 512x1024 tokens up to 700M,
#: 1024x1024 at 1B, hence the jump). Source: ``paper_flops_per_step.csv``.
PAPER_GFLOPS_PER_STEP = {
    20.0: 107_036.0,
    60.0: 266_849.0,
    150.0: 617_977.0,
    300.0: 1_219_793.0,
    500.0: 1_788_624.0,
    700.0: 2_463_009.0,
    1000.0: 8_256_873.0,
}
#: Tokens per optimizer step for the 6*N*tokens fallback (the paper's 512 x 1024 batch).
PAPER_TOKENS_PER_STEP = 512 * 1024


def higher_is_better(metric: str) -> bool:
    """Whether a metric name denotes an accuracy (maximized) rather than a loss: names with
    "downstream" (the paper's), or ending in acc / accuracy / acc_norm after a separator
    ("hellaswag/acc", "arc_easy_accuracy")."""
    name = metric.lower()
    return "downstream" in name or bool(
        re.search(r"(^|[/_.\- ])(acc|accuracy)([_.\-]norm)?$", name)
    )


def closest_names(name: str, choices: Sequence[str], n: int = 3) -> str:
    """A human hint listing the choices closest to ``name`` (for 'did you mean' errors)."""
    close = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.3)
    if not close:
        close = list(choices)[:n]
    return ", ".join(repr(c) for c in close)


def _number(value, what: str) -> float:
    """``value`` as a float, or a ``ValueError`` naming ``what`` and the value."""
    if isinstance(value, bool):
        raise ValueError(f"{what}: {value!r} is not a number; write a plain number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{what}: {value!r} is not a number; write it as a plain number, without units "
            "or suffixes (e.g. 19500, not '19.5k')"
        ) from None


def whole_steps(value, what: str) -> int:
    """``value`` (a number or numeric text) as a positive whole number of training steps, or a
    ``ValueError`` naming ``what``, the value and the fix."""
    try:
        number = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number <= 0 or number != round(number):
        raise ValueError(
            f"{what}: {value!r} is not a positive whole number of training steps; write it as a "
            "plain number, e.g. 19500 (not '19.5k')"
        )
    return int(number)


def parse_scale(value: str | float | int) -> float:
    """Model scale in millions of parameters from a number or a label like ``"70M"``/``"1.3B"``.

    Raises ``ValueError`` naming the value when it is neither.
    """
    if isinstance(value, int | float | np.integer | np.floating):
        scale = float(value)
    else:
        text = str(value).strip().replace("_", "")
        multiplier = {"k": 1e-3, "m": 1.0, "b": 1e3, "t": 1e6}.get(text[-1:].lower())
        try:
            scale = float(text[:-1]) * multiplier if multiplier else float(text)
        except ValueError:
            raise ValueError(
                f"cannot read model scale {value!r}: give millions of parameters as a number "
                "(e.g. 70) or a label such as '70M' or '1B'"
            ) from None
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"model scale {value!r} must be a positive number of parameters")
    return scale


def check_mixtures(
    mixtures,
    num_domains: int,
    *,
    names: Sequence[str] | None = None,
    atol: float = MIXTURE_SUM_ATOL,
    what: str = "mixture",
    domains: Sequence[str] | None = None,
) -> np.ndarray:
    """Validate mixtures and return them renormalized, float64, shape ``[B, K]``.

    Args:
      mixtures: array-like ``[B, K]`` (or ``[K]``) of domain weights.
      num_domains: K, the number of domains expected.
      names: optional labels of the B rows, used in error messages (e.g. run ids).
      atol: how far a row may sum from 1 before it is rejected.
      what: what a row is called in error messages.
      domains: optional names of the K domains, used in error messages.

    Raises:
      ValueError naming the first offending row: wrong length, non-finite or negative weights,
      or a sum off by more than ``atol``.
    """
    w = np.asarray(mixtures, dtype=np.float64)
    if w.ndim == 1:
        w = w[None, :]
    if w.ndim != 2 or w.shape[1] != num_domains:
        order = f", in the order {list(domains)}" if domains is not None else ""
        raise ValueError(
            f"{what}s must have shape [B, {num_domains}] (one weight per domain); got shape "
            f"{np.shape(mixtures)}: give {num_domains} weights per {what}{order}"
        )

    def label(i: int) -> str:
        if names is not None:
            return f"{what} {names[i]!r}"
        return f"the {what}" if len(w) == 1 else f"{what} {i}"

    def domain(j: int) -> str:
        return repr(domains[j]) if domains is not None else str(j)

    bad = ~np.isfinite(w).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{label(i)} has non-finite weights {w[i].tolist()}; every weight must be a finite "
            "number >= 0 (write 0 for a domain it does not use)"
        )
    negative = w < -1e-9
    if negative.any():
        i, j = np.argwhere(negative)[0]
        raise ValueError(
            f"{label(i)} has negative weight {w[i, j]:.6g} on domain {domain(j)}; "
            "mixture weights must be >= 0: fix the sign, or write 0 for a domain it does not use"
        )
    w = np.clip(w, 0.0, None)
    sums = w.sum(axis=1)
    off = np.abs(sums - 1.0) > atol
    if off.any():
        i = int(np.argmax(off))
        raise ValueError(
            f"{label(i)} has weights summing to {sums[i]:.6g}, not 1 (tolerance {atol}); "
            "fix the weights or divide them by their sum"
        )
    # rows already on the simplex to float precision are left alone, so that normalizing is
    # idempotent (a saved and reloaded table is bit-for-bit the same)
    return np.where(np.abs(sums - 1.0)[:, None] <= 1e-12, w, w / sums[:, None])


def _default_gflops(scales: Sequence[float], tokens_per_step: int) -> tuple[float, ...]:
    """Paper figures where the scale is in the paper's table, else 6 * N * tokens per step."""
    out = []
    for m in scales:
        paper = PAPER_GFLOPS_PER_STEP.get(float(m))
        out.append(paper if paper is not None else 6.0 * m * 1e6 * tokens_per_step / 1e9)
    return tuple(out)


@dataclass(frozen=True)
class Space:
    """Where mixtures are searched and what runs cost.

    Attributes:
      domains: K >= 2 unique domain names (the order of mixture weights).
      scales: allowed model scales, millions of parameters, ascending.
      steps: allowed training steps (also the checkpoint grid of learning curves), ascending.
      target: ``(scale, steps)`` of the run whose metric we want to optimize; on the grids.
      gflops_per_step: training compute per step for each scale (GFLOPs); by default the paper's
        figures for the paper's scales and ``6 * N * tokens_per_step`` for any other scale.
      tokens_per_step: tokens per optimizer step, for the 6ND fallback.
      maximize: True when higher metric values are better (accuracies).
      metric: optional name of the metric being optimized.
    """

    domains: tuple[str, ...]
    scales: tuple[float, ...]
    steps: tuple[int, ...]
    target: tuple[float, int]
    gflops_per_step: tuple[float, ...] | Mapping[float, float] | None = None
    tokens_per_step: int = PAPER_TOKENS_PER_STEP
    maximize: bool = False
    metric: str | None = None
    _log_scales: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        for name in ("domains", "scales", "steps"):
            if isinstance(getattr(self, name), str):
                raise ValueError(
                    f"{name} must be a list, e.g. domains=['web', 'code'], scales=[20, 60], "
                    f"steps=[1000, 2000]; got the string {getattr(self, name)!r}"
                )
        domains = tuple(str(d) for d in self.domains)
        if len(domains) < 2:
            raise ValueError(
                f"a space needs at least 2 domains to mix; got {list(domains)}. "
                "Add the other data sources you want to weigh against each other."
            )
        dupes = sorted({d for d in domains if domains.count(d) > 1})
        if dupes:
            raise ValueError(f"duplicate domain names {dupes}; give each domain a unique name")
        if len(self.scales) == 0:
            raise ValueError("a space needs at least one model scale (millions of parameters)")
        scales = tuple(sorted(parse_scale(m) for m in self.scales))
        if len(set(scales)) != len(scales):
            raise ValueError(f"duplicate model scales in {list(self.scales)}")
        if len(self.steps) == 0:
            raise ValueError("the step grid is empty; give at least one number of training steps")
        steps_arr = np.asarray(self.steps)
        if not np.issubdtype(steps_arr.dtype, np.number) or np.any(
            steps_arr != np.round(steps_arr)
        ):
            raise ValueError(f"training steps must be whole numbers; got {list(self.steps)[:8]}")
        steps = tuple(sorted({int(s) for s in self.steps}))
        if steps[0] <= 0:
            raise ValueError(f"training steps must be positive; got {steps[0]}")
        if len(self.target) != 2:
            raise ValueError("target must be a pair (scale in millions, steps)")
        target = (parse_scale(self.target[0]), whole_steps(self.target[1], "target steps"))
        if target[0] not in scales:
            raise ValueError(
                f"target scale {target[0]:g}M is not one of the space's scales {list(scales)}; "
                "add it to `scales` or pick one of them"
            )
        if target[1] not in steps:
            raise ValueError(
                f"target steps {target[1]} is not on the step grid "
                f"({steps[0]}..{steps[-1]}, {len(steps)} values); add it to `steps`"
            )
        if self.gflops_per_step is None:
            gflops = _default_gflops(scales, self.tokens_per_step)
        elif isinstance(self.gflops_per_step, Mapping):
            given = {
                parse_scale(k): _number(v, f"gflops_per_step for scale {k!r}")
                for k, v in self.gflops_per_step.items()
            }
            missing = [m for m in scales if m not in given]
            if missing:
                raise ValueError(f"gflops_per_step has no entry for scales {missing}")
            gflops = tuple(given[m] for m in scales)
        else:
            gflops = tuple(_number(g, "gflops_per_step") for g in self.gflops_per_step)
            if len(gflops) != len(scales):
                raise ValueError(
                    f"gflops_per_step has {len(gflops)} entries for {len(scales)} scales"
                )
        if not all(np.isfinite(g) and g > 0 for g in gflops):
            raise ValueError(f"gflops_per_step must be positive numbers; got {gflops}")
        object.__setattr__(self, "domains", domains)
        object.__setattr__(self, "scales", scales)
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "gflops_per_step", gflops)
        object.__setattr__(self, "_log_scales", np.log(np.asarray(scales)))

    @classmethod
    def paper(cls, metric: str = "eval/RedPajamaStackExchange/CrossEntropyLoss") -> Space:
        """The paper's setting: 5 SlimPajama domains, 7 scales (20M..1B), steps 100..19,500
        every 100, target 1B parameters trained for 19,500 steps, the paper's FLOPs table."""
        return cls(
            domains=PAPER_DOMAINS,
            scales=PAPER_SCALES,
            steps=PAPER_STEPS,
            target=(1000.0, 19_500),
            maximize=higher_is_better(metric),
            metric=metric,
        )

    @classmethod
    def from_run_table(
        cls,
        table,
        *,
        target: tuple[float | str, int] | None = None,
        metric: str | None = None,
        **options,
    ) -> Space:
        """The space a :class:`~recipes_jax.RunTable`'s runs live in: its domains, its
        scales and its step grid; ``target`` defaults to (largest scale, last step).

        ``metric`` sets the direction (accuracies are maximized); ``options`` go to
        :class:`Space` (e.g. ``tokens_per_step`` or ``gflops_per_step`` for the cost of
        scales outside the paper's table).
        """
        scales = [float(m) for m in table.unique_scales]
        steps = [int(s) for s in table.steps]
        if target is None:
            target = (scales[-1], steps[-1])
        if metric is not None:
            options.setdefault("maximize", higher_is_better(metric))
        return cls(
            domains=tuple(table.domains),
            scales=tuple(scales),
            steps=tuple(steps),
            target=target,
            metric=metric,
            **options,
        )

    @property
    def num_domains(self) -> int:
        """Number of mixture domains K."""
        return len(self.domains)

    @property
    def target_gflops(self) -> float:
        """Compute of one full target run, GFLOPs (the unit of cost)."""
        return self.gflops_per_step[self.scales.index(self.target[0])] * self.target[1]

    def scale_index(self, scale):
        """Index into ``scales`` of the nearest allowed scale (in log-parameters); jittable.

        ``scale``: array ``[...]`` in millions of parameters -> int32 array ``[...]``.
        """
        log_m = jnp.log(jnp.asarray(scale, dtype=jnp.result_type(float)))
        log_scales = jnp.asarray(self._log_scales, log_m.dtype)
        return jnp.argmin(jnp.abs(log_m[..., None] - log_scales), axis=-1).astype(jnp.int32)

    def cost(self, scale, steps):
        """Cost of training ``scale`` for ``steps``, in units of one full target run; jittable.

        ``scale`` [...] (millions; snapped to the nearest allowed scale), ``steps`` [...] -> [...].
        """
        gflops = jnp.asarray(self.gflops_per_step) / self.target_gflops
        return gflops[self.scale_index(scale)] * jnp.asarray(steps)

    def host_cost(self, scale, steps) -> np.ndarray:
        """:meth:`cost` computed with numpy on the host (float64; no device dispatch, for
        validating many ledger rows quickly). Same snapping to the nearest allowed scale."""
        log_m = np.log(np.asarray(scale, dtype=np.float64))
        index = np.argmin(np.abs(log_m[..., None] - self._log_scales), axis=-1)
        gflops = np.asarray(self.gflops_per_step, np.float64) / self.target_gflops
        return gflops[index] * np.asarray(steps, np.float64)

    def _log_ranges(self):
        log_steps = np.log(np.asarray(self.steps, dtype=np.float64))
        return (
            (self._log_scales[0], np.log(self.target[0]) - self._log_scales[0]),
            (log_steps[0], np.log(self.target[1]) - log_steps[0]),
        )

    def encode(self, mixtures, scales, steps):
        """Encoded decisions, the inputs of the GP; jittable.

        mixtures [..., K], scales [...] (millions), steps [...] -> [..., K + 2] =
        ``[w_1..w_K, u_scale, u_steps]`` with ``u = (log v - log v_min) / (log v_target -
        log v_min)``: 0 at the smallest scale / step count of the grids, 1 at the target (above 1
        for fidelities beyond the target). A grid with one value maps to 1.
        """
        w = jnp.asarray(mixtures)
        dtype = jnp.result_type(w.dtype, float)
        columns = []
        for values, (lo, span) in zip((scales, steps), self._log_ranges(), strict=True):
            log_v = jnp.log(jnp.asarray(values, dtype=dtype))
            u = (log_v - lo) / span if span > 0 else jnp.ones_like(log_v)
            columns.append(jnp.broadcast_to(u, w.shape[:-1])[..., None])
        return jnp.concatenate([w.astype(dtype), *columns], axis=-1)

    def decode_fidelity(self, u_scale, u_steps):
        """Inverse of the fidelity part of :meth:`encode`: (scales, steps) as floats (steps not
        rounded to the grid)."""
        (lo_m, span_m), (lo_s, span_s) = self._log_ranges()
        return jnp.exp(lo_m + span_m * jnp.asarray(u_scale)), jnp.exp(
            lo_s + span_s * jnp.asarray(u_steps)
        )

    def fidelity_grid(self, steps_per_scale: int = 3) -> tuple[np.ndarray, np.ndarray]:
        """Default fidelities for acquisition search: every scale x ``steps_per_scale`` step
        counts (the grid values nearest to ``j / steps_per_scale`` of the target steps, j = 1..),
        always including the target. Returns (scales [F] float64, steps [F] int64)."""
        grid = np.asarray(self.steps)
        wanted = self.target[1] * np.arange(1, steps_per_scale + 1) / steps_per_scale
        chosen = np.unique(grid[np.argmin(np.abs(grid[None, :] - wanted[:, None]), axis=1)])
        m, s = np.meshgrid(np.asarray(self.scales), chosen, indexing="ij")
        return m.ravel().astype(np.float64), s.ravel().astype(np.int64)

    def check_mixtures(self, mixtures, *, atol: float = MIXTURE_SUM_ATOL) -> np.ndarray:
        """Validated, renormalized float64 mixtures ``[B, K]``; ``ValueError`` if not."""
        return check_mixtures(mixtures, self.num_domains, atol=atol, domains=self.domains)

    def check_fidelities(self, scales, steps) -> None:
        """Raise ``ValueError`` naming any scale or step count that is not on the space's grids
        (and the nearest allowed values)."""
        for m in np.atleast_1d(np.asarray(scales, dtype=np.float64)):
            if not np.isclose(self._log_scales, np.log(m) if m > 0 else -np.inf, atol=1e-9).any():
                raise ValueError(
                    f"scale {m:g}M is not one of the space's scales {list(self.scales)}; use one "
                    "of them, or add it to the space's scales"
                )
        grid = np.asarray(self.steps)
        for s in np.atleast_1d(np.asarray(steps)):
            if s not in grid:
                at = int(np.searchsorted(grid, s))
                nearest = " or ".join(str(g) for g in grid[max(at - 1, 0) : at + 1])
                raise ValueError(
                    f"{s} steps is not on the space's step grid ({grid[0]}..{grid[-1]}, "
                    f"{len(grid)} values); use a step count on the grid (nearest: {nearest}), "
                    "or add it to the space's steps"
                )
