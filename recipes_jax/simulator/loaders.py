"""Readers that turn files of real runs into a :class:`RunTable`.

- :func:`from_paper_pickle`: the paper's ``data_mixing_runs.pkl`` (a pandas DataFrame). Pickle
  files run code when loaded, so this reader refuses unless called with ``trusted=True``.
- :func:`from_long_csv`: one row per (run, step), metrics in columns ("wide") or one row per
  (run, step, metric) with a metric-name column and a value column ("tidy").
- :func:`from_wide_csvs`: a mixtures file and a final-values file joined on a run column (the
  RegMix layout).

CSV readers never execute anything: cells are parsed as text and numbers only.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from collections.abc import Sequence

import numpy as np

from recipes_jax.simulator.run_table import RunTable
from recipes_jax.space import closest_names, parse_scale

__all__ = ["UntrustedFileError", "from_long_csv", "from_paper_pickle", "from_wide_csvs"]


class UntrustedFileError(PermissionError):
    """Raised when asked to unpickle a file without ``trusted=True``."""


# ---------------------------------------------------------------------------- CSV helpers
def _read_csv(path, delimiter: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and ``(line number, cells)`` rows of a CSV file (line numbers as an editor shows)."""
    with open(os.fspath(path), newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise ValueError(
                f"{path} is empty: expected a header row naming the columns, then the runs' rows"
            ) from None
        rows = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    if not rows:
        raise ValueError(
            f"{path} has a header but no data rows; add the runs' rows below the header (or "
            "check that this is the right file)"
        )
    return header, rows


def _column_positions(header: list[str], wanted: Sequence[str], path, role: str) -> list[int]:
    positions = []
    for name in wanted:
        if name not in header:
            raise ValueError(
                f"{path}: no {role} column {name!r}; did you mean {closest_names(name, header)}? "
                f"(columns: {header[:12]}{' ...' if len(header) > 12 else ''})"
            )
        positions.append(header.index(name))
    return positions


def _number(text: str, path, line: int, column: str) -> float:
    """A float from a CSV cell (``nan``/``inf`` allowed); a clear error for empty or text cells."""
    text = text.strip()
    if not text:
        raise ValueError(
            f"{path} line {line}: column {column!r} is empty; it needs a number: fill it in "
            "(a weight of 0 for a domain the run does not use) or drop the row"
        )
    try:
        return float(text)
    except ValueError:
        raise ValueError(
            f"{path} line {line}: column {column!r} holds {text!r}, which is not a number; "
            "fix the cell or drop the row"
        ) from None


def _whole_steps(value: float, path, line: int, column: str) -> int:
    if not math.isfinite(value) or value <= 0 or value != round(value):
        raise ValueError(
            f"{path} line {line}: column {column!r} holds {value!r}; steps must be a positive "
            "whole number"
        )
    return int(value)


class _RunCollector:
    """Accumulates rows into runs keyed by (run name, scale), checking consistency."""

    def __init__(self, path, domains: Sequence[str]):
        self.path = path
        self.domains = list(domains)
        self.mixture: dict[tuple[str, float], tuple[np.ndarray, int]] = {}
        self.cells: dict[tuple[tuple[str, float], int, str], tuple[float | None, int]] = {}

    def add_run(self, key, mixture: np.ndarray, line: int) -> None:
        known = self.mixture.get(key)
        if known is None:
            self.mixture[key] = (mixture, line)
        elif not np.allclose(known[0], mixture, rtol=0, atol=1e-9):
            raise ValueError(
                f"{self.path}: run {key[0]!r} ({key[1]:g}M) has mixture {known[0].tolist()} on "
                f"line {known[1]} but {mixture.tolist()} on line {line}; one run must keep one "
                "mixture (give different runs different ids)"
            )

    def add_value(self, key, step: int, metric: str, value: float | None, line: int) -> None:
        cell = (key, step, metric)
        if cell in self.cells:
            raise ValueError(
                f"{self.path}: duplicate rows for run {key[0]!r} ({key[1]:g}M) at step {step}"
                f" (metric {metric!r}) on lines {self.cells[cell][1]} and {line}; keep one"
            )
        self.cells[cell] = (value, line)

    def table(self, metrics: Sequence[str]) -> RunTable:
        keys = list(self.mixture)
        names = [k[0] for k in keys]
        shared = {n for n in names if names.count(n) > 1}
        run_ids = [f"{n}@{m:g}M" if n in shared else n for n, m in keys]
        steps = sorted({c[1] for c in self.cells})
        if not steps:
            raise ValueError(f"{self.path}: no metric values found")
        row_of = {k: i for i, k in enumerate(keys)}
        col_of = {s: i for i, s in enumerate(steps)}
        met_of = {m: i for i, m in enumerate(metrics)}
        values = np.full((len(keys), len(steps), len(metrics)), np.nan)
        mask = np.zeros(values.shape, dtype=bool)
        for (key, step, metric), (value, _) in self.cells.items():
            if value is None:  # an empty cell: not observed
                continue
            idx = row_of[key], col_of[step], met_of[metric]
            values[idx] = value
            mask[idx] = True
        return RunTable(
            mixtures=np.stack([self.mixture[k][0] for k in keys]),
            scales=np.array([k[1] for k in keys]),
            steps=np.array(steps),
            values=values,
            mask=mask,
            domains=self.domains,
            metrics=tuple(metrics),
            run_ids=tuple(run_ids),
        )


def from_long_csv(
    path,
    *,
    run_column: str,
    mixture_columns: Sequence[str],
    scale_column: str | None = None,
    scale: float | str | None = None,
    step_column: str | None = None,
    step: int | None = None,
    metric_columns: Sequence[str] | None = None,
    metric_name_column: str | None = None,
    value_column: str | None = None,
    domains: Sequence[str] | None = None,
    delimiter: str = ",",
) -> RunTable:
    """Read runs from a long CSV file.

    Two layouts:
      * wide: one row per (run, step), one column per metric (``metric_columns``);
      * tidy: one row per (run, step, metric), with ``metric_name_column`` naming the metric and
        ``value_column`` holding its value (as in the Data Mixing Laws release).

    Args:
      path: the CSV file.
      run_column: column identifying a run. A run id reused at several scales is read as
        several runs, named ``"<id>@<scale>M"``.
      mixture_columns: the K columns of mixture weights (the same on every row of a run).
      scale_column / scale: column of model scales (numbers in millions, or labels like "70M",
        "1B"), or one scale for the whole file.
      step_column / step: column of training steps, or one step count for the whole file
        (final values only).
      metric_columns: wide layout: the metric columns to read.
      metric_name_column, value_column: tidy layout.
      domains: names for the mixture columns (default: the column names).
      delimiter: field separator.

    Empty metric cells are read as "not observed". ``nan``/``inf`` cells are dropped with a
    warning that counts them. Every other problem (missing columns, text in numeric fields,
    duplicate rows, a run whose mixture changes, mixtures off the simplex) raises ``ValueError``
    naming the file, the line and the fix.
    """
    if (scale_column is None) == (scale is None):
        raise ValueError("give exactly one of scale_column= (a column) or scale= (one value)")
    if (step_column is None) == (step is None):
        raise ValueError("give exactly one of step_column= (a column) or step= (one value)")
    tidy = metric_name_column is not None or value_column is not None
    if tidy == (metric_columns is not None):
        raise ValueError(
            "give either metric_columns= (one column per metric) or both metric_name_column= "
            "and value_column= (one row per metric)"
        )
    if tidy and (metric_name_column is None or value_column is None):
        raise ValueError("the tidy layout needs both metric_name_column= and value_column=")
    mixture_columns = list(mixture_columns)
    domains = list(domains) if domains is not None else mixture_columns
    if len(domains) != len(mixture_columns):
        raise ValueError(f"{len(domains)} domain names for {len(mixture_columns)} mixture columns")

    header, rows = _read_csv(path, delimiter)
    run_pos = _column_positions(header, [run_column], path, "run")[0]
    mix_pos = _column_positions(header, mixture_columns, path, "mixture")
    scale_pos = (
        _column_positions(header, [scale_column], path, "scale")[0] if scale_column else None
    )
    step_pos = _column_positions(header, [step_column], path, "step")[0] if step_column else None
    if tidy:
        name_pos, value_pos = _column_positions(
            header, [metric_name_column, value_column], path, "metric"
        )
        metrics: list[str] = []
    else:
        metric_pos = _column_positions(header, list(metric_columns), path, "metric")
        metrics = list(metric_columns)
    fixed_scale = parse_scale(scale) if scale is not None else None
    fixed_step = _whole_steps(float(step), path, 1, "step=") if step is not None else None

    collector = _RunCollector(path, domains)
    for line, cells in rows:
        if len(cells) != len(header):
            raise ValueError(
                f"{path} line {line}: {len(cells)} fields but the header has {len(header)}"
            )
        run = cells[run_pos].strip()
        if not run:
            raise ValueError(f"{path} line {line}: the run column {run_column!r} is empty")
        if scale_pos is None:
            run_scale = fixed_scale
        else:
            try:
                run_scale = parse_scale(cells[scale_pos])
            except ValueError as e:
                raise ValueError(f"{path} line {line}: {e}") from None
        run_step = (
            fixed_step
            if step_pos is None
            else _whole_steps(
                _number(cells[step_pos], path, line, step_column), path, line, step_column
            )
        )
        mixture = np.array([_number(cells[p], path, line, header[p]) for p in mix_pos])
        key = (run, run_scale)
        collector.add_run(key, mixture, line)
        if tidy:
            metric = cells[name_pos].strip()
            if not metric:
                raise ValueError(f"{path} line {line}: the metric name column is empty")
            if metric not in metrics:
                metrics.append(metric)
            pairs = [(metric, cells[value_pos], value_column)]
        else:
            pairs = [(m, cells[p], m) for m, p in zip(metrics, metric_pos, strict=True)]
        for metric, text, column in pairs:
            value = _number(text, path, line, column) if text.strip() else None
            collector.add_value(key, run_step, metric, value, line)
    return collector.table(metrics)


def from_wide_csvs(
    mixtures_path,
    values_path,
    *,
    run_column: str = "index",
    scale: float | str,
    step: int,
    mixture_columns: Sequence[str] | None = None,
    metric_columns: Sequence[str] | None = None,
    domains: Sequence[str] | None = None,
    ignore_columns: Sequence[str] = (),
    delimiter: str = ",",
) -> RunTable:
    """Join a CSV of mixtures and a CSV of final metric values on ``run_column``.

    This is the RegMix layout (``train_mixture_1m.csv`` + ``train_pile_loss_1m.csv``): every run
    at one ``scale`` (millions of parameters, or "1B") and one ``step`` count. Columns other
    than ``run_column`` and ``ignore_columns`` (e.g. a run's name, or pandas' unnamed index
    column ``""``; names absent from a file are fine) are mixture weights / metrics unless
    chosen explicitly. Runs with a mixture but no values are kept as unobserved; values without
    a mixture are an error.
    """
    mix_header, mix_rows = _read_csv(mixtures_path, delimiter)
    val_header, val_rows = _read_csv(values_path, delimiter)
    skip = {run_column, *ignore_columns}
    mixture_columns = list(mixture_columns or [c for c in mix_header if c not in skip])
    metric_columns = list(metric_columns or [c for c in val_header if c not in skip])
    domains = list(domains) if domains is not None else mixture_columns
    run_pos = _column_positions(mix_header, [run_column], mixtures_path, "run")[0]
    mix_pos = _column_positions(mix_header, mixture_columns, mixtures_path, "mixture")
    val_run_pos = _column_positions(val_header, [run_column], values_path, "run")[0]
    metric_pos = _column_positions(val_header, metric_columns, values_path, "metric")
    fixed_scale = parse_scale(scale)
    fixed_step = _whole_steps(float(step), mixtures_path, 1, "step=")

    collector = _RunCollector(mixtures_path, domains)
    for line, cells in mix_rows:
        if len(cells) != len(mix_header):
            raise ValueError(
                f"{mixtures_path} line {line}: {len(cells)} fields but the header has "
                f"{len(mix_header)}"
            )
        run = cells[run_pos].strip()
        if (run, fixed_scale) in collector.mixture:
            raise ValueError(f"{mixtures_path} line {line}: run {run!r} appears twice")
        mixture = np.array([_number(cells[p], mixtures_path, line, mix_header[p]) for p in mix_pos])
        collector.add_run((run, fixed_scale), mixture, line)
    for line, cells in val_rows:
        if len(cells) != len(val_header):
            raise ValueError(
                f"{values_path} line {line}: {len(cells)} fields but the header has "
                f"{len(val_header)}"
            )
        key = (cells[val_run_pos].strip(), fixed_scale)
        if key not in collector.mixture:
            raise ValueError(
                f"{values_path} line {line}: run {key[0]!r} has values but no mixture in "
                f"{mixtures_path}; add its mixture or drop the row"
            )
        for metric, p in zip(metric_columns, metric_pos, strict=True):
            text = cells[p]
            value = _number(text, values_path, line, metric) if text.strip() else None
            collector.add_value(key, fixed_step, metric, value, line)
    seen_runs = {c[0] for c in collector.cells}
    unmatched = len(collector.mixture) - len(seen_runs)
    if unmatched:
        warnings.warn(
            f"{unmatched} runs in {mixtures_path} have no values in {values_path}; they are kept "
            "as unobserved",
            UserWarning,
            stacklevel=2,
        )
    return collector.table(metric_columns)


# ---------------------------------------------------------------------------- paper pickle
_PAPER_COLUMNS = ("run_id", "group", "categories", "token_probabilities", "history")


def from_paper_pickle(path, *, trusted: bool = False) -> RunTable:
    """Read the paper's ``data_mixing_runs.pkl`` (pandas DataFrame, one row per run).

    Columns used: ``run_id``, ``group`` (scale label such as '20M' or '1B'), ``categories``
    (domain names), ``token_probabilities`` (mixture), ``history`` (a DataFrame with ``_step``
    and one column per metric). Runs with an empty history are kept, unobserved; runs cut short
    have their later steps masked.

    Pickle files execute code when loaded. This function refuses unless ``trusted=True``: pass it
    only for a file whose origin you trust. Needs pandas (``pip install 'recipes-jax[paper]'``).
    """
    if not trusted:
        raise UntrustedFileError(
            f"refusing to load {os.fspath(path)!r}: pickle files can run arbitrary code when "
            "loaded. If you trust where this file came from, call "
            "RunTable.from_paper_pickle(path, trusted=True); then save it with RunTable.save() "
            "and load the safe .npz from then on."
        )
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(
            "reading the paper's pickle needs pandas: pip install 'recipes-jax[paper]'"
        ) from None
    frame = pd.read_pickle(os.fspath(path))
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{path} holds a {type(frame).__name__}, not the paper's DataFrame")
    missing = [c for c in _PAPER_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path} lacks the paper's columns {missing}; found {list(frame.columns)}")
    domains: list[str] | None = None
    metrics: list[str] = []
    runs = []
    for _, row in frame.iterrows():
        run_id = str(row["run_id"])
        cats = [str(c) for c in row["categories"]]
        probs = np.asarray(row["token_probabilities"], dtype=np.float64)
        if len(cats) != len(probs):
            raise ValueError(
                f"run {run_id!r}: {len(cats)} categories but {len(probs)} token probabilities"
            )
        if domains is None:
            domains = cats
        elif set(cats) != set(domains) or len(cats) != len(domains):
            raise ValueError(
                f"run {run_id!r} mixes domains {cats}, but earlier runs mix {domains}; all runs "
                "of one table must share one domain list: fix the run's categories or drop it"
            )
        mixture = probs[[cats.index(d) for d in domains]]  # same set, possibly reordered
        history = row["history"]
        if len(history):
            if "_step" not in history.columns:
                raise ValueError(f"run {run_id!r}: history has no '_step' column")
            steps_col = history["_step"].to_numpy(dtype=np.float64)
            dupes = pd.Series(steps_col).duplicated()
            if dupes.any():
                raise ValueError(
                    f"run {run_id!r}: step {steps_col[dupes.to_numpy()][0]:g} appears twice in its "
                    "history; keep one row per step"
                )
            for c in history.columns:
                if c != "_step" and c not in metrics:
                    metrics.append(str(c))
        runs.append((run_id, parse_scale(row["group"]), mixture, history))
    if not runs:
        raise ValueError(f"{path} has no runs")
    steps = sorted({int(s) for _, _, _, h in runs if len(h) for s in h["_step"]})
    if not steps:
        raise ValueError(f"{path}: every run has an empty history")
    col_of = {s: i for i, s in enumerate(steps)}
    values = np.full((len(runs), len(steps), len(metrics)), np.nan)
    mask = np.zeros(values.shape, dtype=bool)
    for r, (_, _, _, history) in enumerate(runs):
        if not len(history):
            continue
        cols = [col_of[int(s)] for s in history["_step"]]
        for j, metric in enumerate(metrics):
            if metric in history.columns:
                values[r, cols, j] = history[metric].to_numpy(dtype=np.float64)
                mask[r, cols, j] = True
    return RunTable(
        mixtures=np.stack([m for _, _, m, _ in runs]),
        scales=np.array([s for _, s, _, _ in runs]),
        steps=np.array(steps),
        values=values,
        mask=mask,
        domains=tuple(domains),
        metrics=tuple(metrics),
        run_ids=tuple(r for r, _, _, _ in runs),
    )
