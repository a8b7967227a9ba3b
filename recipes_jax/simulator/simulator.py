"""Simulator: answers (mixture, scale, steps) -> metric from a RunTable, jitted and batched."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from recipes_jax.simulator.interpolant import (
    InterpolantParams,
    evaluate,
    fit_interpolant,
    valid_log_step_range,
)
from recipes_jax.simulator.run_table import RunTable
from recipes_jax.space import check_mixtures

__all__ = ["Simulator"]

_query = jax.jit(evaluate, static_argnames=("clamp",))


def _noise_sd(noise_sd, info: dict | None) -> float:
    """A checked observation-noise sd: a finite number >= 0, or ``"table"`` (the eval noise
    the fit estimated, ``info["noise_sd"]``)."""
    if isinstance(noise_sd, str) and noise_sd == "table":
        if info is None:
            raise ValueError(
                "noise_sd='table' needs the fit's estimate, which a Simulator rebuilt from its "
                "arrays (tree_unflatten) does not keep; give a number instead"
            )
        return float(info["noise_sd"])
    try:
        value = math.nan if isinstance(noise_sd, str | bool) else float(noise_sd)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"noise_sd must be a finite number >= 0 or 'table'; got {noise_sd!r}")
    return value


def _is_traced(*xs) -> bool:
    return any(isinstance(x, jax.core.Tracer) for x in xs)


@jax.tree_util.register_pytree_node_class
class Simulator:
    """A cheap stand-in for training runs, built from a table of real ones.

    ``sim(w, m, s)`` returns the metric a run with mixture ``w`` [B, K], model scale ``m`` [B]
    (millions of parameters) and ``s`` [B] training steps would reach: a lookup of bracketing
    knots plus a kernel-weighted sum (see :mod:`recipes_jax.simulator.interpolant`). It is
    jitted, batched, and runs unchanged on CPU, GPU and TPU. A Simulator is a pytree, so it can
    be passed into ``jit``/``vmap``-ed code (e.g. as a campaign's environment).

    Args:
      table: the runs to interpolate.
      metric: name (or index) of the metric; optional when the table has one metric.
      noise_sd: Gaussian observation noise added to every answer (metric units); ``"table"``
        uses the eval noise estimated from the table. Off (0) by default; when on, pass
        ``key=`` to each call.
      clamp: clamp queries outside the table's scales/steps onto the supported region instead
        of raising (eager calls) or returning NaN (inside ``jit``). Mixtures are checked
        either way: off the simplex, eager calls raise.
      max_step_knots: how many step knots the interpolant keeps along learning curves.
      seed: seed of the subsampling used while fitting (construction is deterministic).

    Construction takes seconds (it fits the interpolant in float64); queries are cheap. A domain
    the table never varies (every run gives it the same weight, e.g. no run uses it) is named
    in a ``UserWarning`` and in ``info["unvaried_domains"]``; queries ignore its weight.
    Outside ``jit``, queries are validated and bad ones raise ``ValueError`` naming the query.
    """

    def __init__(
        self,
        table: RunTable,
        metric: str | int | None = None,
        *,
        noise_sd: float | str = 0.0,
        clamp: bool = False,
        max_step_knots: int = 48,
        seed: int = 0,
    ):
        if metric is None:
            if table.num_metrics != 1:
                raise ValueError(
                    f"this table has {table.num_metrics} metrics; choose one with metric=..., "
                    f"e.g. {table.metrics[0]!r}"
                )
            metric = 0
        metric_name = table.metrics[table.metric_index(metric)]
        params, info = fit_interpolant(table, metric_name, max_step_knots=max_step_knots, seed=seed)
        noise_sd = _noise_sd(noise_sd, info)
        dtype = jnp.result_type(float)
        self._params = InterpolantParams(*(jnp.asarray(x, dtype=dtype) for x in params))
        self._static = (metric_name, tuple(table.domains), bool(clamp), noise_sd)
        self.info = info

    # -- pytree protocol: arrays are children, names and options are static
    def tree_flatten(self):
        """Pytree children (the interpolant's arrays) and static data (names, options)."""
        return (self._params,), self._static

    @classmethod
    def tree_unflatten(cls, static, children):
        """Rebuild a Simulator from :meth:`tree_flatten`'s output (``info`` is not kept)."""
        sim = object.__new__(cls)
        sim._params, sim._static, sim.info = children[0], static, None
        return sim

    @property
    def params(self) -> InterpolantParams:
        """The fitted interpolant's arrays (see :class:`InterpolantParams`)."""
        return self._params

    @property
    def metric(self) -> str:
        """Name of the simulated metric."""
        return self._static[0]

    @property
    def domains(self) -> tuple[str, ...]:
        """Names of the K mixture domains, in the order of a mixture's weights."""
        return self._static[1]

    @property
    def clamp(self) -> bool:
        """Whether out-of-range queries are clamped onto the table's scales and steps."""
        return self._static[2]

    @property
    def noise_sd(self) -> float:
        """Standard deviation of the observation noise added to answers (metric units; 0: off)."""
        return self._static[3]

    @property
    def scales(self) -> np.ndarray:
        """The table's distinct scales (millions of parameters), ascending."""
        return np.exp(np.asarray(self._params.log_scales, dtype=np.float64))

    def step_range(self, scale: float) -> tuple[int, int]:
        """(first, last) number of steps supported at ``scale`` (millions of parameters)."""
        lo, hi = valid_log_step_range(self._params, jnp.log(jnp.asarray(float(scale))))
        return round(float(np.exp(lo))), round(float(np.exp(hi)))

    def with_options(
        self, *, noise_sd: float | str | None = None, clamp: bool | None = None
    ) -> Simulator:
        """A copy sharing the fitted interpolant with other noise / clamping options
        (``noise_sd`` as in the constructor, ``"table"`` included)."""
        metric, domains, old_clamp, old_noise = self._static
        static = (
            metric,
            domains,
            old_clamp if clamp is None else bool(clamp),
            old_noise if noise_sd is None else _noise_sd(noise_sd, self.info),
        )
        sim = Simulator.tree_unflatten(static, (self._params,))
        sim.info = self.info
        return sim

    def __repr__(self) -> str:
        return (
            f"Simulator(metric={self.metric!r}, domains={len(self.domains)}, "
            f"scales={self.scales.round(6).tolist()}, clamp={self.clamp}, "
            f"noise_sd={self.noise_sd:g})"
        )

    # -- queries
    def _validate(self, w, m, s) -> None:
        check_mixtures(w, len(self.domains), what="query mixture", domains=self.domains)
        if self.clamp:  # out-of-range scales and steps are clamped, not refused
            return
        m64, s64 = np.asarray(m, dtype=np.float64), np.asarray(s, dtype=np.float64)
        lo_m, hi_m = self.scales[0], self.scales[-1]
        bad = ~np.isfinite(m64) | (m64 < lo_m * (1 - 1e-6)) | (m64 > hi_m * (1 + 1e-6))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"query {i}: scale {m64[i]:g}M is outside the table's scales "
                f"[{lo_m:g}M, {hi_m:g}M]; query inside them or build the Simulator with clamp=True "
                "(recipes-jax simulate --clamp)"
            )
        lo, hi = jax.jit(valid_log_step_range)(self._params, jnp.log(jnp.asarray(m64)))
        lo, hi = np.exp(np.asarray(lo, np.float64)), np.exp(np.asarray(hi, np.float64))
        bad = ~np.isfinite(s64) | (s64 < lo * (1 - 1e-6)) | (s64 > hi * (1 + 1e-6))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"query {i}: {s64[i]:g} steps is outside the steps the table supports at "
                f"{m64[i]:g}M ({lo[i]:.0f}..{hi[i]:.0f}); query inside them or build the "
                "Simulator with clamp=True (recipes-jax simulate --clamp)"
            )

    def __call__(self, w, m, s, *, key: jax.Array | None = None) -> jax.Array:
        """Metric values [B] at mixtures w [B, K], scales m [B] (millions), steps s [B].

        ``w`` may be a single mixture [K] and ``m``, ``s`` scalars: each is repeated for the
        batch. Mixtures are renormalized to sum to 1 (their sums may be off by the stated
        tolerance). Inputs may be numpy or jax arrays. With observation noise on, ``key`` is
        required.
        """
        w, m, s = jnp.atleast_2d(jnp.asarray(w)), jnp.asarray(m), jnp.asarray(s)
        if w.ndim != 2 or w.shape[-1] != len(self.domains):
            raise ValueError(
                f"mixtures must have {len(self.domains)} weights (domains {list(self.domains)}); "
                f"got shape {tuple(w.shape)}: give one weight per domain, in that order"
            )
        try:
            if m.ndim > 1 or s.ndim > 1:
                raise ValueError
            batch = np.broadcast_shapes((w.shape[0],), m.shape, s.shape)
        except ValueError:
            raise ValueError(
                f"mixtures {tuple(w.shape)}, scales {tuple(m.shape)} and steps {tuple(s.shape)} "
                "do not form one batch: give B mixtures [B, K] with B scales [B] and B steps "
                "[B]; one mixture [K], one scale or one step is repeated for the whole batch"
            ) from None
        w = jnp.broadcast_to(w, (*batch, w.shape[-1]))
        m, s = jnp.broadcast_to(m, batch), jnp.broadcast_to(s, batch)
        if not _is_traced(w, m, s):  # mixtures are checked even with clamp=True
            self._validate(np.asarray(w), np.asarray(m), np.asarray(s))
        value = _query(self._params, w, m, s, clamp=self.clamp)
        if self.noise_sd > 0:
            if key is None:
                raise ValueError(
                    "this Simulator adds observation noise: pass key=jax.random.key(...)"
                )
            value = value + self.noise_sd * jax.random.normal(key, value.shape, value.dtype)
        return value
