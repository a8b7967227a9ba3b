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
import io
import math
import os
import pickle
import warnings
from collections.abc import Sequence

import numpy as np

from recipes_jax.atomic import read_text
from recipes_jax.simulator.run_table import RunTable
from recipes_jax.space import check_mixtures, closest_names, parse_scale, whole_steps

__all__ = ["UntrustedFileError", "from_long_csv", "from_paper_pickle", "from_wide_csvs"]


class UntrustedFileError(PermissionError):
    """Raised when asked to unpickle a file without ``trusted=True``."""


# ---------------------------------------------------------------------------- CSV helpers
_FILL_WEIGHT = "fill it in (a weight of 0 for a domain the run does not use) or drop the row"


def _read_csv(path, delimiter: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and ``(line number, cells)`` rows of a CSV file (line numbers as an editor shows).

    The file must be UTF-8 (a byte-order mark is dropped); other bytes are refused with their
    line and column."""
    text = read_text(os.fspath(path), what="CSV file")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
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


def _refuse_repeated_columns(header: list[str], used: Sequence[str], path) -> None:
    """Refuse a header that names a column the reader uses more than once: which copy holds
    the data would be a guess."""
    repeated = [n for n in dict.fromkeys(used) if header.count(n) > 1]
    if repeated:
        where = ", ".join(
            f"{n!r} (columns {', '.join(str(i + 1) for i, h in enumerate(header) if h == n)})"
            for n in repeated
        )
        raise ValueError(
            f"{path}: the header repeats {where}; the reader cannot tell which copy holds the "
            "data: rename or delete the extra copies"
        )


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


def _number(text: str, path, line: int, column: str, *, fill: str = _FILL_WEIGHT) -> float:
    """A float from a CSV cell (``nan``/``inf`` allowed); a clear error for empty or text cells.
    ``fill`` says how to fix an empty cell."""
    text = text.strip()
    if not text:
        raise ValueError(
            f"{path} line {line}: column {column!r} is empty; it needs a number: {fill}"
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


def _step_cell(text: str, path, line: int, column: str) -> int:
    """The training step in a row's step cell."""
    fill = "fill in the training step the row's values were measured at (e.g. 1000) or drop the row"
    return _whole_steps(_number(text, path, line, column, fill=fill), path, line, column)


def _run_id(cells: list[str], position: int, path, line: int, column: str) -> str:
    """The run id in a row; refuses an empty one."""
    run = cells[position].strip()
    if not run:
        raise ValueError(
            f"{path} line {line}: the run column {column!r} is empty; give the run an id (or "
            "drop the row)"
        )
    return run


def _check_fields(cells: list[str], header: list[str], path, line: int) -> None:
    if len(cells) != len(header):
        raise ValueError(
            f"{path} line {line}: {len(cells)} fields but the header has {len(header)}; check "
            "the row for a missing or extra separator"
        )


class _RunCollector:
    """Accumulates rows into runs keyed by (run name, scale), checking consistency."""

    def __init__(self, path, domains: Sequence[str]):
        if len(domains) < 2:
            raise ValueError(
                f"a run table needs at least 2 domains; got {list(domains)}: list every domain's "
                "weight column in mixture_columns="
            )
        self.path = path
        self.domains = list(domains)
        self.mixture: dict[tuple[str, float], tuple[np.ndarray, int]] = {}
        self.cells: dict[tuple[tuple[str, float], int, str], tuple[float | None, int]] = {}

    def add_run(self, key, mixture: np.ndarray, line: int) -> None:
        known = self.mixture.get(key)
        if known is None:
            self._check_mixture(key, mixture, line)
            self.mixture[key] = (mixture, line)
        elif not np.allclose(known[0], mixture, rtol=0, atol=1e-9):
            raise ValueError(
                f"{self.path}: run {key[0]!r} ({key[1]:g}M) has mixture {known[0].tolist()} on "
                f"line {known[1]} but {mixture.tolist()} on line {line}; one run must keep one "
                "mixture (give different runs different ids)"
            )

    def _check_mixture(self, key, mixture: np.ndarray, line: int) -> None:
        """Refuse weights off the simplex (negative, or not summing to 1) on the run's first
        row, naming the file and the line."""
        try:
            check_mixtures(
                mixture, len(self.domains), names=[key[0]], what="run", domains=self.domains
            )
        except ValueError as e:
            raise ValueError(f"{self.path} line {line}: {e}") from None

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
    used = [run_column, *mixture_columns, scale_column, step_column]
    used += [metric_name_column, value_column] if tidy else list(metric_columns)
    _refuse_repeated_columns(header, [c for c in used if c is not None], path)
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
    fixed_step = whole_steps(step, "the step= argument") if step is not None else None

    collector = _RunCollector(path, domains)
    for line, cells in rows:
        _check_fields(cells, header, path, line)
        run = _run_id(cells, run_pos, path, line, run_column)
        if scale_pos is None:
            run_scale = fixed_scale
        else:
            try:
                run_scale = parse_scale(cells[scale_pos])
            except ValueError as e:
                raise ValueError(f"{path} line {line}: {e}") from None
        run_step = (
            fixed_step if step_pos is None else _step_cell(cells[step_pos], path, line, step_column)
        )
        mixture = np.array([_number(cells[p], path, line, header[p]) for p in mix_pos])
        key = (run, run_scale)
        collector.add_run(key, mixture, line)
        if tidy:
            metric = cells[name_pos].strip()
            if not metric:
                raise ValueError(
                    f"{path} line {line}: the metric name column {metric_name_column!r} is "
                    "empty; name the metric the row's value measures (or drop the row)"
                )
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
    fixed_scale = parse_scale(scale)
    fixed_step = whole_steps(step, "the step= argument")
    mix_header, mix_rows = _read_csv(mixtures_path, delimiter)
    val_header, val_rows = _read_csv(values_path, delimiter)
    skip = {run_column, *ignore_columns}
    mixture_columns = list(mixture_columns or [c for c in mix_header if c not in skip])
    metric_columns = list(metric_columns or [c for c in val_header if c not in skip])
    domains = list(domains) if domains is not None else mixture_columns
    _refuse_repeated_columns(mix_header, [run_column, *mixture_columns], mixtures_path)
    _refuse_repeated_columns(val_header, [run_column, *metric_columns], values_path)
    run_pos = _column_positions(mix_header, [run_column], mixtures_path, "run")[0]
    mix_pos = _column_positions(mix_header, mixture_columns, mixtures_path, "mixture")
    val_run_pos = _column_positions(val_header, [run_column], values_path, "run")[0]
    metric_pos = _column_positions(val_header, metric_columns, values_path, "metric")

    collector = _RunCollector(mixtures_path, domains)
    for line, cells in mix_rows:
        _check_fields(cells, mix_header, mixtures_path, line)
        key = (_run_id(cells, run_pos, mixtures_path, line, run_column), fixed_scale)
        if key in collector.mixture:
            raise ValueError(
                f"{mixtures_path}: run {key[0]!r} appears on lines {collector.mixture[key][1]} "
                f"and {line}; keep one row per run (or give different runs different ids)"
            )
        mixture = np.array([_number(cells[p], mixtures_path, line, mix_header[p]) for p in mix_pos])
        collector.add_run(key, mixture, line)
    value_lines: dict[str, int] = {}
    for line, cells in val_rows:
        _check_fields(cells, val_header, values_path, line)
        key = (_run_id(cells, val_run_pos, values_path, line, run_column), fixed_scale)
        if key not in collector.mixture:
            raise ValueError(
                f"{values_path} line {line}: run {key[0]!r} has values but no mixture in "
                f"{mixtures_path}; add its mixture or drop the row"
            )
        if key[0] in value_lines:
            raise ValueError(
                f"{values_path}: run {key[0]!r} has values on lines {value_lines[key[0]]} and "
                f"{line}; keep one row per run"
            )
        value_lines[key[0]] = line
        for metric, p in zip(metric_columns, metric_pos, strict=True):
            text = cells[p]
            value = _number(text, values_path, line, metric) if text.strip() else None
            collector.add_value(key, fixed_step, metric, value, line)
    unmatched = len(collector.mixture) - len(value_lines)
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
_PAPER_FORMAT = "the paper's data_mixing_runs.pkl format"


def _unpickle_runs(path, pd):
    """The DataFrame in the pickle at ``path``; a ``ValueError`` for a file that is not one."""
    if os.path.isdir(path):
        raise IsADirectoryError(
            f"{path} is a folder; give the path of the pickle of runs (data_mixing_runs.pkl)"
        )
    try:
        frame = pd.read_pickle(os.fspath(path))
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as e:
        raise ValueError(
            f"{path} is not a pickle of runs ({_PAPER_FORMAT}): unpickling it fails "
            f"({type(e).__name__}: {e}); give the path of that file (a CSV of runs is read with "
            "RunTable.from_long_csv or RunTable.from_wide_csvs)"
        ) from None
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(
            f"{path} holds a {type(frame).__name__}, not a DataFrame of runs in {_PAPER_FORMAT}; "
            "give the path of that file"
        )
    missing = [c for c in _PAPER_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{path} lacks the paper's columns {missing}; found {list(frame.columns)}: it is not "
            f"a pickle of runs in {_PAPER_FORMAT}"
        )
    return frame


def _paper_history(history, where: str, pd) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A run's history as its steps ``[n]`` (int) and ``{metric: values [n]}``."""
    if not isinstance(history, pd.DataFrame):
        raise ValueError(
            f"{where}: 'history' holds a {type(history).__name__}, not a DataFrame with a "
            "'_step' column and one column per metric; fix the run's history or drop the run"
        )
    if not len(history):
        return np.zeros(0, dtype=np.int64), {}
    if "_step" not in history.columns:
        raise ValueError(f"{where}: history has no '_step' column; add the steps or drop the run")
    columns = {}
    for c in history.columns:
        try:
            columns[str(c)] = history[c].to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"{where}: history column {str(c)!r} holds values that are not numbers; fix "
                "them or drop the column"
            ) from None
    steps = columns.pop("_step")
    bad = ~np.isfinite(steps) | (steps <= 0) | (steps != np.round(steps))
    if bad.any():
        raise ValueError(
            f"{where}: history's '_step' holds {float(steps[bad][0])!r}; steps must be "
            "positive whole numbers: fix the step or drop that row"
        )
    unique, counts = np.unique(steps, return_counts=True)
    if (counts > 1).any():
        raise ValueError(
            f"{where}: step {unique[counts > 1][0]:g} appears twice in its history; keep one row "
            "per step"
        )
    return steps.astype(np.int64), columns


def _paper_run(row, path, pd) -> tuple[str, float, list[str], np.ndarray, tuple]:
    """``(run id, scale, categories, mixture, (steps, {metric: values}))`` of one row."""
    run_id = str(row["run_id"])
    where = f"{path}: run {run_id!r}"
    try:
        scale = parse_scale(row["group"])
    except ValueError as e:
        raise ValueError(f"{where}: 'group': {e}") from None
    cats = row["categories"]
    if isinstance(cats, str) or not hasattr(cats, "__iter__"):
        raise ValueError(
            f"{where}: 'categories' holds {cats!r}, not a list of domain names; fix the run's "
            "categories or drop it"
        )
    cats = [str(c) for c in cats]
    try:
        probs = np.asarray(row["token_probabilities"], dtype=np.float64)
    except (TypeError, ValueError):
        probs = None
    if probs is None or probs.ndim != 1:
        raise ValueError(
            f"{where}: 'token_probabilities' holds {row['token_probabilities']!r}, not a list "
            "of numbers (one weight per category); fix them or drop the run"
        )
    if len(cats) != len(probs):
        raise ValueError(
            f"{where}: {len(cats)} categories but {len(probs)} token probabilities; give one "
            "weight per category"
        )
    return run_id, scale, cats, probs, _paper_history(row["history"], where, pd)


def from_paper_pickle(path, *, trusted: bool = False) -> RunTable:
    """Read the paper's ``data_mixing_runs.pkl`` (pandas DataFrame, one row per run).

    Columns used: ``run_id``, ``group`` (scale label such as '20M' or '1B'), ``categories``
    (domain names), ``token_probabilities`` (mixture), ``history`` (a DataFrame with ``_step``
    and one column per metric). Runs with an empty history are kept, unobserved; runs cut short
    have their later steps masked. A file that is not such a pickle, or a row whose fields do
    not fit this schema, raises ``ValueError`` naming the file (and the run).

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
    frame = _unpickle_runs(path, pd)
    domains: list[str] | None = None
    metrics: list[str] = []
    runs = []
    for _, row in frame.iterrows():
        run_id, scale, cats, probs, history = _paper_run(row, path, pd)
        if domains is None:
            domains = cats
        elif set(cats) != set(domains) or len(cats) != len(domains):
            raise ValueError(
                f"run {run_id!r} mixes domains {cats}, but earlier runs mix {domains}; all runs "
                "of one table must share one domain list: fix the run's categories or drop it"
            )
        mixture = probs[[cats.index(d) for d in domains]]  # same set, possibly reordered
        metrics.extend(m for m in history[1] if m not in metrics)
        runs.append((run_id, scale, mixture, history))
    if not runs:
        raise ValueError(f"{path} has no runs")
    steps = sorted({int(s) for _, _, _, (run_steps, _) in runs for s in run_steps})
    if not steps:
        raise ValueError(f"{path}: every run has an empty history")
    col_of = {s: i for i, s in enumerate(steps)}
    values = np.full((len(runs), len(steps), len(metrics)), np.nan)
    mask = np.zeros(values.shape, dtype=bool)
    for r, (_, _, _, (run_steps, columns)) in enumerate(runs):
        cols = [col_of[int(s)] for s in run_steps]
        for j, metric in enumerate(metrics):
            if metric in columns:
                values[r, cols, j] = columns[metric]
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
