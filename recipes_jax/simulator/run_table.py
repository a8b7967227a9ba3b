"""RunTable: a table of pre-training runs (mixture, scale, learning curves of several metrics).

Stored as plain numpy arrays; saved as ``.npz`` without pickle. Loaders for the paper's pickle
and for CSV files live in :mod:`recipes_jax.simulator.loaders`.
"""

from __future__ import annotations

import csv
import io
import os
import textwrap
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recipes_jax.atomic import atomic_write
from recipes_jax.space import MIXTURE_SUM_ATOL, check_mixtures, closest_names

__all__ = ["UNVARIED_WEIGHT_SPREAD", "RunTable", "describe_never_varied", "never_varied"]

#: A domain whose weight spans at most this much (max - min) over a set of runs counts as never
#: varied by them: they say nothing about what the domain does.
UNVARIED_WEIGHT_SPREAD = 1e-9


def never_varied(mixtures: np.ndarray) -> np.ndarray:
    """[K] bool: the domains whose weight is the same (within ``UNVARIED_WEIGHT_SPREAD``) in
    every row of ``mixtures`` [R, K] (typically 0: no run used them)."""
    return np.ptp(np.asarray(mixtures), axis=0) <= UNVARIED_WEIGHT_SPREAD


def describe_never_varied(mixtures: np.ndarray, domains: Sequence[str]) -> str:
    """``"'d' (always 0), ..."``: the :func:`never_varied` domains of ``mixtures`` [R, K] and
    their one weight, for messages; ``""`` when every domain varies."""
    mixtures = np.asarray(mixtures)
    return ", ".join(
        f"{domains[d]!r} (always {mixtures[0, d]:.6g})"
        for d in np.nonzero(never_varied(mixtures))[0]
    )


_FORMAT = "recipes_jax.RunTable/1"
_ARRAYS = ("mixtures", "scales", "steps", "values", "mask")
_NAMES = ("domains", "metrics", "run_ids")


def _unique_names(names: Sequence[str], what: str) -> tuple[str, ...]:
    names = tuple(str(n) for n in names)
    seen: set[str] = set()
    dupes = [n for n in names if n in seen or seen.add(n)]
    if dupes:
        raise ValueError(f"duplicate {what} {sorted(set(dupes))[:5]}; each must be unique")
    return names


_NOT_A_TABLE = "not a run table .npz written by RunTable.save"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # an npz is a zip archive (the second: empty)


def _what_file(path, head: bytes) -> str:
    """What the file at ``path``, not an npz, looks like from its first bytes ``head``, and how
    to get a run table from it."""
    if not head:
        return "it is empty; save the table again with RunTable.save, or give the right file"
    if head.startswith(b"\x93NUMPY"):
        return (
            "it holds a single numpy array (.npy); give the path of the .npz that "
            "RunTable.save wrote"
        )
    if head.startswith(b"\x80"):
        return (
            "it looks like a pickle, such as the paper's data_mixing_runs.pkl, which is never "
            "loaded here (loading a pickle can run code); if you trust where it came from, "
            f"convert it once: recipes-jax convert {path} --trusted -o runs.npz (or "
            "RunTable.from_paper_pickle(path, trusted=True).save('runs.npz'))"
        )
    if b"\x00" not in head:
        return (
            "it looks like a text file; read a CSV of runs with RunTable.from_long_csv(path, "
            "...) or RunTable.from_wide_csvs(mixtures_path, values_path, ...), then save it with "
            "RunTable.save('runs.npz')"
        )
    return "give the path of a file that RunTable.save wrote"


def _read_npz(path) -> dict[str, np.ndarray]:
    """Every array of the npz at ``path``, read without pickle; a clear error for any other
    file."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder; give the path of a .npz file")
    with open(path, "rb") as f:
        head = f.read(512)
    if not head.startswith(_ZIP_MAGIC):
        raise ValueError(f"{path} is {_NOT_A_TABLE}: {_what_file(path, head)}")
    try:
        with np.load(os.fspath(path), allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except ValueError as e:
        if "pickle" not in str(e):
            raise _damaged(path, e) from None
        raise ValueError(
            f"{path} is {_NOT_A_TABLE}: it holds pickled objects, which are never loaded; "
            "give the path of a file that RunTable.save wrote"
        ) from None
    except (zipfile.BadZipFile, EOFError, zlib.error) as e:
        raise _damaged(path, e) from None


def _damaged(path, error: Exception) -> ValueError:
    return ValueError(
        f"{path} is a damaged or cut-short .npz ({type(error).__name__}: {error}), not a "
        "readable run table; save the table again with RunTable.save, or use another copy"
    )


def _check_csv_names(header: Sequence[str], run_ids: Sequence[str]) -> None:
    """Refuse names a long CSV cannot give back: a column named twice, a name that is empty
    or starts or ends with spaces (a CSV reader strips them)."""
    clash = sorted({h for h in header if header.count(h) > 1})
    if clash:
        raise ValueError(
            f"column names {clash} would repeat in the CSV (a domain named like a metric or "
            "like run/scale/step); rename them first"
        )
    padded = [n for n in (*header, *run_ids) if not n or n != n.strip()]
    if padded:
        raise ValueError(
            f"names {padded[:5]} are empty or start or end with spaces, which a CSV reader "
            "drops; rename them first (e.g. strip the spaces)"
        )


@dataclass(frozen=True, eq=False)
class RunTable:
    """Runs with their mixture, model scale and learning curves.

    Attributes:
      mixtures: float64 ``[R, K]``, rows on the simplex (renormalized on construction).
      scales: float64 ``[R]``, model scale of each run in millions of parameters.
      steps: int64 ``[S]``, strictly increasing step grid shared by all runs.
      values: float64 ``[R, S, M]``, metric values; NaN wherever ``mask`` is False.
      mask: bool ``[R, S, M]``, True where a value was observed and finite.
      domains: K domain names (order of mixture weights).
      metrics: M metric names.
      run_ids: R unique run names.

    Construction validates everything and fails with a message naming the problem. ``mask=None``
    means "observed wherever ``values`` is not NaN". Non-finite observed values (diverged runs,
    ``inf``) are dropped from the mask with one warning that counts them.
    """

    mixtures: np.ndarray
    scales: np.ndarray
    steps: np.ndarray
    values: np.ndarray
    mask: np.ndarray | None
    domains: tuple[str, ...]
    metrics: tuple[str, ...]
    run_ids: tuple[str, ...] | None = None
    mixture_atol: float = MIXTURE_SUM_ATOL

    def __post_init__(self):
        domains = _unique_names(self.domains, "domain names")
        if len(domains) < 2:
            raise ValueError(f"a run table needs at least 2 domains; got {list(domains)}")
        metrics = _unique_names(self.metrics, "metric names")
        if not metrics:
            raise ValueError("a run table needs at least one metric")
        values = np.array(self.values, dtype=np.float64)
        if values.ndim != 3:
            raise ValueError(f"values must have shape [runs, steps, metrics]; got {values.shape}")
        num_runs, num_steps, num_metrics = values.shape
        if num_runs == 0:
            raise ValueError(
                "the run table is empty: it has no runs; build it from at least one run (an "
                "empty selection, file or filter gives none)"
            )
        if num_metrics != len(metrics):
            raise ValueError(
                f"values have {num_metrics} metrics but {len(metrics)} names were given"
            )
        run_ids = (
            tuple(f"run-{i:04d}" for i in range(num_runs))
            if self.run_ids is None
            else _unique_names(self.run_ids, "run ids")
        )
        if len(run_ids) != num_runs:
            raise ValueError(f"{len(run_ids)} run ids for {num_runs} runs")
        steps = np.asarray(self.steps)
        if steps.ndim != 1 or len(steps) != num_steps:
            raise ValueError(
                f"steps must be a vector of length {num_steps}; got shape {steps.shape}"
            )
        if not np.issubdtype(steps.dtype, np.number) or np.any(steps != np.round(steps)):
            raise ValueError("steps must be whole numbers")
        steps = steps.astype(np.int64)
        if num_steps == 0 or steps[0] <= 0 or np.any(np.diff(steps) <= 0):
            raise ValueError(f"steps must be positive and strictly increasing; got {steps[:8]}...")
        scales = np.asarray(self.scales, dtype=np.float64)
        if scales.shape != (num_runs,):
            raise ValueError(f"scales must have shape [{num_runs}]; got {scales.shape}")
        if not (np.isfinite(scales) & (scales > 0)).all():
            i = int(np.argmax(~(np.isfinite(scales) & (scales > 0))))
            raise ValueError(f"run {run_ids[i]!r} has invalid scale {scales[i]}; must be > 0")
        mixtures = check_mixtures(
            self.mixtures,
            len(domains),
            names=run_ids,
            atol=self.mixture_atol,
            what="run",
            domains=domains,
        )
        if len(mixtures) != num_runs:
            raise ValueError(f"{len(mixtures)} mixtures for {num_runs} runs")
        if self.mask is None:
            mask = ~np.isnan(values)
        else:
            mask = np.array(self.mask, dtype=bool)
            if mask.shape != values.shape:
                raise ValueError(
                    f"mask shape {mask.shape} differs from values shape {values.shape}"
                )
        nonfinite = mask & ~np.isfinite(values)
        if nonfinite.any():
            runs_hit = np.unique(np.nonzero(nonfinite)[0])
            warnings.warn(
                f"dropped {int(nonfinite.sum())} non-finite values (NaN or inf) in "
                f"{len(runs_hit)} runs, e.g. {run_ids[runs_hit[0]]!r}; they are treated as not "
                "observed",
                RuntimeWarning,
                stacklevel=3,
            )
            mask = mask & ~nonfinite
        values = np.where(mask, values, np.nan)
        for name, value in [
            ("domains", domains),
            ("metrics", metrics),
            ("run_ids", run_ids),
            ("values", values),
            ("mask", mask),
            ("steps", steps),
            ("scales", scales),
            ("mixtures", mixtures),
        ]:
            object.__setattr__(self, name, value)
        for array in (values, mask, steps, scales, mixtures):
            array.setflags(write=False)

    # ------------------------------------------------------------------ sizes and lookups
    @property
    def num_runs(self) -> int:
        """Number of runs R."""
        return self.values.shape[0]

    @property
    def num_steps(self) -> int:
        """Length S of the shared step grid."""
        return self.values.shape[1]

    @property
    def num_metrics(self) -> int:
        """Number of metrics M."""
        return self.values.shape[2]

    @property
    def num_domains(self) -> int:
        """Number of mixture domains K."""
        return len(self.domains)

    @property
    def unique_scales(self) -> np.ndarray:
        """Sorted distinct model scales ``[T]`` (millions of parameters)."""
        return np.unique(self.scales)

    def metric_index(self, metric: str | int) -> int:
        """Position of ``metric``; a ``KeyError`` suggests close names when it does not exist."""
        if isinstance(metric, int | np.integer):
            if not 0 <= metric < self.num_metrics:
                raise KeyError(f"metric index {metric} out of range 0..{self.num_metrics - 1}")
            return int(metric)
        if metric not in self.metrics:
            raise KeyError(
                f"no metric {metric!r} in this run table; did you mean "
                f"{closest_names(metric, self.metrics)}? ({self.num_metrics} metrics available)"
            )
        return self.metrics.index(metric)

    def curve(self, metric: str | int) -> tuple[np.ndarray, np.ndarray]:
        """Values ``[R, S]`` (NaN where missing) and mask ``[R, S]`` of one metric."""
        j = self.metric_index(metric)
        return self.values[:, :, j], self.mask[:, :, j]

    def summary(self) -> str:
        """A few lines describing the table: runs per scale, steps, metrics, how many runs use
        each domain, and the domains no run varies."""
        reached = self.mask.any(axis=2)
        lines = [
            f"RunTable: {self.num_runs} runs, {self.num_domains} domains, {self.num_steps} steps "
            f"({self.steps[0]}..{self.steps[-1]}), {self.num_metrics} metrics"
        ]
        for m in self.unique_scales:
            rows = self.scales == m
            usable = reached[rows].any(axis=1)
            complete = reached[rows][:, -1]
            lines.append(
                f"  {m:g}M: {rows.sum()} runs, {usable.sum()} with data, "
                f"{complete.sum()} reach step {self.steps[-1]}"
            )
        used = (self.mixtures > 0).sum(axis=0)
        fewest = np.argsort(used, kind="stable")[:3]
        lines.append(
            f"  runs using each domain (weight > 0): {used.min()}..{used.max()}; fewest: "
            + ", ".join(f"{self.domains[d]} {used[d]}" for d in fewest)
        )
        unvaried = describe_never_varied(self.mixtures, self.domains)
        if unvaried:
            lines.append(f"  never varied (a Simulator ignores them): {unvaried}")
        lines.extend(
            textwrap.wrap(
                "metrics: " + ", ".join(self.metrics),
                width=100,
                initial_indent="  ",
                subsequent_indent="    ",
                break_on_hyphens=False,
                break_long_words=False,
            )
        )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"RunTable(runs={self.num_runs}, domains={list(self.domains)}, "
            f"scales={self.unique_scales.tolist()}, steps={self.num_steps}, "
            f"metrics={self.num_metrics})"
        )

    def equals(self, other: RunTable) -> bool:
        """Exact equality of every array and name (NaNs at the same places count as equal)."""
        return (
            isinstance(other, RunTable)
            and all(getattr(self, n) == getattr(other, n) for n in _NAMES)
            and all(
                np.array_equal(getattr(self, n), getattr(other, n), equal_nan=(n == "values"))
                for n in _ARRAYS
            )
        )

    def select_runs(self, keep) -> RunTable:
        """A new table with the runs where boolean ``keep`` [R] is True (or integer indices).

        Keeping no run (an all-False mask, an empty list) raises the empty-table ``ValueError``.
        """
        keep = np.asarray(keep)
        if keep.size == 0:  # [] is float64 to numpy, which refuses it as an index
            keep = np.zeros(0, dtype=np.int64)
        idx = np.arange(self.num_runs)[keep]
        return RunTable(
            mixtures=self.mixtures[idx],
            scales=self.scales[idx],
            steps=self.steps,
            values=self.values[idx],
            mask=self.mask[idx],
            domains=self.domains,
            metrics=self.metrics,
            run_ids=tuple(self.run_ids[i] for i in idx),
        )

    @classmethod
    def concatenate(
        cls, tables: Sequence[RunTable], *, prefixes: Sequence[str] | None = None
    ) -> RunTable:
        """One table holding the runs of every table in ``tables``, in order.

        The tables must share their domains (in any order: mixtures are reordered to the
        first table's). Step grids are merged (a run is unobserved at steps its table lacks)
        and metrics are the union in order of appearance (unobserved where a table lacks
        one). Run ids must stay unique: pass ``prefixes`` (one per table, e.g. ``("1m/",
        "60m/")``) when the same id names runs in several tables.
        """
        tables = list(tables)
        if not tables:
            raise ValueError("concatenate needs at least one run table")
        if prefixes is not None and len(prefixes) != len(tables):
            raise ValueError(f"{len(prefixes)} prefixes for {len(tables)} tables; give one each")
        domains = tables[0].domains
        for i, t in enumerate(tables[1:], 1):
            if set(t.domains) != set(domains):
                extra = [d for d in t.domains if d not in domains]
                lacks = [d for d in domains if d not in t.domains]
                differences = [f"has {extra} that table 0 lacks"] if extra else []
                differences += [f"lacks {lacks}"] if lacks else []
                raise ValueError(
                    f"table {i}'s domains differ from table 0's: it {' and '.join(differences)}; "
                    "runs can only be pooled over the same domains: rename the domains to match, "
                    "or pool only tables that share them"
                )
        metrics = tuple(dict.fromkeys(m for t in tables for m in t.metrics))
        steps = np.unique(np.concatenate([t.steps for t in tables]))
        R, S, M = sum(t.num_runs for t in tables), len(steps), len(metrics)
        values = np.full((R, S, M), np.nan)
        mask = np.zeros((R, S, M), bool)
        mixtures, scales, run_ids, row = [], [], [], 0
        for i, t in enumerate(tables):
            order = [t.domains.index(d) for d in domains]
            mixtures.append(t.mixtures[:, order])
            scales.append(t.scales)
            prefix = "" if prefixes is None else prefixes[i]
            run_ids.extend(prefix + r for r in t.run_ids)
            rows = slice(row, row + t.num_runs)
            cols = np.searchsorted(steps, t.steps)
            for j, m in enumerate(t.metrics):
                values[rows, cols, metrics.index(m)] = t.values[:, :, j]
                mask[rows, cols, metrics.index(m)] = t.mask[:, :, j]
            row += t.num_runs
        if len(set(run_ids)) != len(run_ids):
            raise ValueError(
                "the tables share run ids; pass prefixes=(...) with one prefix per table to "
                "keep them apart"
            )
        return cls(
            mixtures=np.concatenate(mixtures),
            scales=np.concatenate(scales),
            steps=steps,
            values=values,
            mask=mask,
            domains=domains,
            metrics=metrics,
            run_ids=tuple(run_ids),
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the table to ``path`` as ``.npz`` (no pickle), atomically.

        The file is written to a temporary name beside ``path`` and renamed over it, so a crash
        mid-write leaves either the old file or the new one, never a torn one.
        """
        arrays = {n: getattr(self, n) for n in _ARRAYS}
        arrays.update({n: np.asarray(getattr(self, n), dtype=np.str_) for n in _NAMES})
        arrays["format"] = np.asarray(_FORMAT)
        atomic_write(path, lambda f: np.savez(f, **arrays), prefix=".runtable-")

    def to_long_csv(self, path: str | os.PathLike) -> None:
        """Write the table as a long CSV, atomically: columns ``run, scale, step``, one per
        domain (weights), one per metric (empty where not observed). Read it back with::

            RunTable.from_long_csv(path, run_column="run", scale_column="scale",
                                   step_column="step", mixture_columns=table.domains,
                                   metric_columns=table.metrics)

        which gives back an equal table (:meth:`equals`). There is one row per (run, step) with
        any value, plus rows with every metric empty where needed to keep the rest: one for a
        run with no value at all (at the first step) and, on the first run, one for each step
        no run has a value at.
        """
        header = ["run", "scale", "step", *self.domains, *self.metrics]
        _check_csv_names(header, self.run_ids)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for i, run in enumerate(self.run_ids):
            weights = [repr(float(w)) for w in self.mixtures[i]]
            for j in self._long_csv_steps(i):
                cells = [repr(float(v)) if ok else "" for v, ok in
                         zip(self.values[i, j], self.mask[i, j], strict=True)]  # fmt: skip
                writer.writerow([run, repr(float(self.scales[i])), int(self.steps[j]), *weights,
                                 *cells])  # fmt: skip
        text = out.getvalue().encode()
        atomic_write(path, lambda f: f.write(text), prefix=".runtable-")

    def _long_csv_steps(self, run: int) -> np.ndarray:
        """Indices of the steps :meth:`to_long_csv` writes a row for, for run ``run``."""
        observed = self.mask[run].any(axis=1)
        if run == 0:
            observed = observed | ~self.mask.any(axis=(0, 2))  # steps no run reached
        if not observed.any():
            observed[0] = True  # a run with no value: one empty row keeps it
        return np.flatnonzero(observed)

    @classmethod
    def load(cls, path: str | os.PathLike) -> RunTable:
        """Read a table written by :meth:`save`. Never unpickles (``allow_pickle=False``).

        Any other file (a CSV, a pickle, a ``.npy``, an empty or damaged file, a folder) is
        refused with a message saying what it looks like and how to get a run table from it.
        """
        contents = _read_npz(path)
        fmt = str(contents.get("format", ""))
        missing = [n for n in (*_ARRAYS, *_NAMES) if n not in contents]
        if fmt != _FORMAT or missing:
            raise ValueError(
                f"{path} is {_NOT_A_TABLE} (an npz with format {fmt or 'unknown'!r}, missing "
                f"{missing}); give the path of a file that RunTable.save wrote"
            )
        return cls(
            mixtures=contents["mixtures"],
            scales=contents["scales"],
            steps=contents["steps"],
            values=contents["values"],
            mask=contents["mask"],
            domains=tuple(contents["domains"].tolist()),
            metrics=tuple(contents["metrics"].tolist()),
            run_ids=tuple(contents["run_ids"].tolist()),
        )

    # ------------------------------------------------------------------ loaders
    @classmethod
    def from_paper_pickle(cls, path, *, trusted: bool = False, **kwargs) -> RunTable:
        """Read the paper's ``data_mixing_runs.pkl``; see :func:`loaders.from_paper_pickle`."""
        from recipes_jax.simulator.loaders import from_paper_pickle

        return from_paper_pickle(path, trusted=trusted, **kwargs)

    @classmethod
    def from_long_csv(cls, path, **kwargs) -> RunTable:
        """Read one row per (run, step) from a CSV; see :func:`loaders.from_long_csv`."""
        from recipes_jax.simulator.loaders import from_long_csv

        return from_long_csv(path, **kwargs)

    @classmethod
    def from_wide_csvs(cls, mixtures_path, values_path, **kwargs) -> RunTable:
        """Join a mixtures CSV and a final-values CSV (RegMix layout); see
        :func:`loaders.from_wide_csvs`."""
        from recipes_jax.simulator.loaders import from_wide_csvs

        return from_wide_csvs(mixtures_path, values_path, **kwargs)
