"""The run ledger: a plain CSV of a real campaign's runs, finished and pending.

One row per training run, in the order the runs were proposed::

    id,status,scale,steps,w:<domain 1>,...,w:<domain K>,value,curve,cost,score,note

- ``status``: ``pending`` (proposed, not finished), ``done``, ``failed`` or ``diverged``.
  Only ``done`` runs with a finite value inform the model; the others stay in the file.
- ``scale`` (millions of parameters, or a label like ``1B``) and ``steps``: the run's fidelity.
- ``w:<domain>``: the mixture, one column per domain of the space, summing to 1.
- ``value``: the metric at ``steps`` (empty until the run is done).
- ``curve``: optional learning curve, ``step=value`` pairs separated by ``;``.
- ``cost`` (target-run units) and ``score`` (the acquisition value when proposed): written for
  the reader; ``cost`` is recomputed from the space on reading.
- ``note``: free text. Columns of your own are kept as they are.

Every write is atomic (a temporary file renamed over the ledger), so a crash leaves the old
ledger or the new one, never a torn file. Updates (:func:`record`, :func:`append_runs`) re-read
the ledger under a lock (:func:`~recipes_jax.atomic.file_lock`), so two commands at once keep
both changes. Errors name the file, the line and the column, and say how to fix it. Nothing is
ever evaluated: values are parsed as numbers, paths are never opened from ledger contents.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from recipes_jax.atomic import atomic_write, file_lock, read_text
from recipes_jax.space import Space, closest_names, parse_scale

__all__ = [
    "STATUSES",
    "LedgerRun",
    "append_runs",
    "columns",
    "format_curve",
    "next_ids",
    "parse_curve",
    "read_ledger",
    "record",
    "runs_from_table",
    "same_runs",
    "write_ledger",
]

STATUSES = ("pending", "done", "failed", "diverged")
_FIXED_HEAD = ("id", "status", "scale", "steps")
_FIXED_TAIL = ("value", "curve", "cost", "score", "note")


def columns(space: Space) -> list[str]:
    """The ledger's header for ``space``."""
    return [*_FIXED_HEAD, *(f"w:{d}" for d in space.domains), *_FIXED_TAIL]


@dataclass(frozen=True)
class LedgerRun:
    """One row of the ledger.

    mixture: K weights in the space's domain order; scale: millions of parameters; steps: int;
    value: the metric at ``steps`` (NaN until known); curve: ``((step, value), ...)``;
    cost: target-run units; score: acquisition value when proposed (NaN if none);
    extra: the row's columns that are not the ledger's own, kept verbatim.
    """

    id: str
    status: str
    mixture: tuple[float, ...]
    scale: float
    steps: int
    value: float = math.nan
    curve: tuple[tuple[int, float], ...] = ()
    cost: float = math.nan
    score: float = math.nan
    note: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def informs_model(self) -> bool:
        """True for a finished run with a finite value (what the GP learns from)."""
        return self.status == "done" and math.isfinite(self.value)


def parse_curve(text: str) -> tuple[tuple[int, float], ...]:
    """``"1000=2.9;2000=2.7"`` -> ``((1000, 2.9), (2000, 2.7))``; empty text -> ``()``."""
    points = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        step, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"curve point {part!r} is not step=value (e.g. 1000=2.93)")
        try:
            points.append((int(step), float(value)))
        except ValueError:
            raise ValueError(
                f"curve point {part!r}: the step must be a whole number and the value a number"
            ) from None
    steps = [s for s, _ in points]
    if steps != sorted(set(steps)):
        raise ValueError(f"curve steps must be strictly increasing; got {steps}")
    return tuple(points)


def format_curve(curve: Sequence[tuple[int, float]]) -> str:
    """Inverse of :func:`parse_curve`."""
    return ";".join(f"{int(s)}={float(v)!r}" for s, v in curve)


def _number(text: str, where: str, what: str, *, empty_ok: bool) -> float:
    text = text.strip()
    if not text:
        if empty_ok:
            return math.nan
        raise ValueError(f"{where}: {what} is empty; write a number")
    try:
        return float(text)
    except ValueError:
        raise ValueError(
            f"{where}: {what} {text!r} is not a number; write it as a plain number (e.g. 0.25, "
            f"2.31 or 19500){', or leave the cell empty' if empty_ok else ''}"
        ) from None


def _check_run(run: LedgerRun, space: Space, where: str) -> LedgerRun:
    if run.status not in STATUSES:
        raise ValueError(
            f"{where}: status {run.status!r} is not one of {STATUSES} (did you mean "
            f"{closest_names(run.status, STATUSES)}?)"
        )
    try:
        space.check_fidelities(np.array([run.scale]), np.array([run.steps]))
        space.check_mixtures(np.asarray(run.mixture)[None])
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    if run.status == "done" and not math.isfinite(run.value):
        raise ValueError(
            f"{where}: a done run needs a finite value; got {run.value}. Record a run that "
            "blew up with status 'diverged' (or 'failed'), so it is kept but not modeled"
        )
    if run.status == "pending" and (math.isfinite(run.value) or run.curve):
        raise ValueError(f"{where}: a pending run has no value yet; set its status to 'done'")
    late = [s for s, _ in run.curve if s > run.steps]
    if late:
        raise ValueError(f"{where}: curve steps {late} lie beyond the run's {run.steps} steps")
    return replace(run, cost=float(space.host_cost(run.scale, run.steps)))


def runs_from_table(table, space: Space, metric: str | int) -> list[LedgerRun]:
    """Ledger rows for the runs of a :class:`~recipes_jax.RunTable`, to start a campaign
    from runs already trained.

    Each run becomes a ``done`` row at its last step with a value of ``metric``, with its
    learning curve at the earlier such steps; a run with no value of ``metric`` becomes a
    ``failed`` row that says so (kept, not modeled). Mixtures are reordered to the space's
    domains; every scale and step must be on the space's grids (e.g. a space from
    :meth:`Space.from_run_table`). Ids are the table's run ids.
    """
    if set(table.domains) != set(space.domains):
        raise ValueError(
            f"the table's domains {list(table.domains)} differ from the space's "
            f"{list(space.domains)}; build the space with Space.from_run_table(table)"
        )
    order = [table.domains.index(d) for d in space.domains]
    values, mask = table.curve(metric)
    name = table.metrics[table.metric_index(metric)]
    runs = []
    for i, run_id in enumerate(table.run_ids):
        seen = np.flatnonzero(mask[i])
        mixture = tuple(float(w) for w in table.mixtures[i, order])
        scale = float(table.scales[i])
        if len(seen) == 0:
            run = LedgerRun(
                run_id, "failed", mixture, scale, int(table.steps[-1]),
                note=f"no value of {name} in the run table",
            )  # fmt: skip
        else:
            points = [(int(table.steps[j]), float(values[i, j])) for j in seen]
            run = LedgerRun(
                run_id, "done", mixture, scale, points[-1][0], points[-1][1],
                curve=tuple(points[:-1]), note="from a run table",
            )  # fmt: skip
        runs.append(_check_run(run, space, f"run {run_id!r}"))
    return runs


def read_ledger(path: str | os.PathLike, space: Space) -> list[LedgerRun]:
    """The runs of the ledger at ``path`` (an absent or empty file: no runs), validated
    against ``space``. Raises ``ValueError`` naming the line, column and fix."""
    path = Path(path)
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        return []
    text = read_text(path, what="ledger")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    expected = columns(space)
    missing = [c for c in expected if c not in header]
    if missing:
        raise ValueError(
            f"{path}: missing columns {missing}; the header must include "
            f"{','.join(expected)} (domains as in the space file, each as w:<domain>)"
        )
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise ValueError(f"{path}: duplicate columns {dupes}; keep one of each")
    runs: list[LedgerRun] = []
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        where = f"{path} line {line}"
        if None in row or any(v is None for v in row.values()):
            raise ValueError(f"{where}: {len(header)} columns expected; check for stray commas")
        run_id = row["id"].strip()
        if not run_id:
            raise ValueError(f"{where}: empty id; give every run a unique id")
        if run_id in seen:
            raise ValueError(
                f"{where}: duplicate id {run_id!r} (also on line {seen[run_id]}); make ids unique"
            )
        seen[run_id] = line
        try:
            scale = parse_scale(row["scale"])
        except ValueError as e:
            raise ValueError(f"{where}, column 'scale': {e}") from None
        steps = _number(row["steps"], f"{where}, column 'steps'", "steps", empty_ok=False)
        if steps != round(steps):
            raise ValueError(f"{where}, column 'steps': {steps} is not a whole number of steps")
        mixture = tuple(
            _number(row[f"w:{d}"], f"{where}, column 'w:{d}'", "weight", empty_ok=False)
            for d in space.domains
        )
        try:
            curve = parse_curve(row["curve"])
        except ValueError as e:
            raise ValueError(f"{where}, column 'curve': {e}") from None
        run = LedgerRun(
            id=run_id,
            status=row["status"].strip().lower(),
            mixture=mixture,
            scale=scale,
            steps=int(steps),
            value=_number(row["value"], f"{where}, column 'value'", "value", empty_ok=True),
            curve=curve,
            score=_number(row["score"], f"{where}, column 'score'", "score", empty_ok=True),
            note=row["note"],
            extra={k: v for k, v in row.items() if k not in expected},
        )
        runs.append(_check_run(run, space, where))
    return runs


def _cell(x: float) -> str:
    # NaN means "no value"; a diverged run's inf is kept as written
    return "" if math.isnan(x) else repr(float(x))


def write_ledger(path: str | os.PathLike, space: Space, runs: Sequence[LedgerRun]) -> None:
    """Write ``runs`` to ``path`` atomically (validated against ``space`` first, so a bad run
    never reaches the file). Columns of your own (``run.extra``) come after the ledger's."""
    ids = [r.id for r in runs]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"duplicate run ids {dupes}; ids must be unique: give each run its own id")
    runs = [_check_run(r, space, f"run {r.id!r}") for r in runs]
    header = columns(space)
    extra = [k for r in runs for k in r.extra if k not in header]
    header += list(dict.fromkeys(extra))
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for r in runs:
        row = _row(r)
        row += [r.extra.get(k, "") for k in header[len(row) :]]
        writer.writerow(row)
    data = out.getvalue().encode("utf-8")
    atomic_write(path, lambda f: f.write(data), prefix=".ledger-")


def _row(r: LedgerRun) -> list[str]:
    """The ledger's own cells of ``r``, as written."""
    row = [r.id, r.status, f"{r.scale:g}", str(r.steps), *(repr(float(w)) for w in r.mixture)]
    return [*row, _cell(r.value), format_curve(r.curve), _cell(r.cost), _cell(r.score), r.note]


def same_runs(a: Sequence[LedgerRun], b: Sequence[LedgerRun]) -> bool:
    """Whether two lists of runs would be written identically (NaN cells compare equal)."""
    return len(a) == len(b) and all(
        _row(x) == _row(y) and x.extra == y.extra for x, y in zip(a, b, strict=True)
    )


def next_ids(existing: Sequence[str], num: int, prefix: str = "r") -> list[str]:
    """``num`` new ids ``r<k>`` after the largest such id in ``existing``, never reused."""
    taken = set(existing)
    numbers = [int(i[len(prefix) :]) for i in existing if i[len(prefix) :].isdigit()]
    k, out = max(numbers, default=0), []
    while len(out) < num:
        k += 1
        if f"{prefix}{k}" not in taken:
            out.append(f"{prefix}{k}")
    return out


def append_runs(
    path: str | os.PathLike, space: Space, new_runs: Sequence[LedgerRun]
) -> tuple[list[LedgerRun], list[LedgerRun]]:
    """Append ``new_runs`` to the ledger at ``path`` (created if absent), keeping whatever
    other commands wrote to it meanwhile.

    Under the ledger's lock, the ledger is read again and the runs are appended to what it
    holds now; a new run whose id was taken meanwhile (another ``suggest``) gets the next free
    ``r<k>`` id instead. Returns (the ledger's runs before the append, the runs appended, as
    written). Compare the first with what you read earlier (:func:`same_runs`) to learn
    whether the ledger changed while you computed ``new_runs``.
    """
    with file_lock(path):
        current = read_ledger(path, space)
        taken = {r.id for r in current}
        clashing = [r for r in new_runs if r.id in taken]
        fresh = iter(next_ids([*taken, *(r.id for r in new_runs)], len(clashing)))
        added = [replace(r, id=next(fresh)) if r.id in taken else r for r in new_runs]
        write_ledger(path, space, [*current, *added])
    return current, added


def record(
    path: str | os.PathLike,
    space: Space,
    run_id: str,
    *,
    value: float | None = None,
    curve: Sequence[tuple[int, float]] = (),
    status: str | None = None,
    note: str | None = None,
    overwrite: bool = False,
) -> LedgerRun:
    """Record the outcome of run ``run_id`` in the ledger at ``path`` and return it.

    ``value``: the metric at the run's steps (default: the curve's point at those steps);
    ``curve``: ``(step, value)`` pairs up to the run's steps; ``status``: default ``done``
    when the value is finite, ``diverged`` when it is not (``nan``, ``inf``, or a curve that
    blew up before the end); ``failed`` needs no value. A finite curve that stops before the
    run's steps gives no final value: give ``value`` too, or record the run as ``failed``.
    A run already recorded is only changed with ``overwrite``; its curve is kept unless a new
    one is given (its point at the run's steps, if any, takes the corrected value; a new curve
    must agree with a value given beside it).

    The ledger is re-read and written under its lock, so a ``suggest`` or another ``record``
    running at the same time cannot undo this record (or this one theirs).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"no ledger at {path}; check the path (`recipes-jax suggest --ledger {path}` "
            "creates a ledger with the runs to train)"
        )
    with file_lock(path):
        runs = read_ledger(path, space)
        index = {r.id: i for i, r in enumerate(runs)}
        if run_id not in index:
            if not runs:
                raise ValueError(f"{path} has no runs; `recipes-jax suggest` adds them")
            raise ValueError(
                f"no run {run_id!r} in {path} (did you mean {closest_names(run_id, list(index))}?)"
            )
        run = runs[index[run_id]]
        if run.status != "pending" and not overwrite:
            raise ValueError(
                f"run {run_id!r} is already recorded as {run.status}; pass --force to replace it"
            )
        updated = _outcome(run, value, curve, status, note)
        runs[index[run_id]] = _check_run(updated, space, f"run {run_id!r}")
        write_ledger(path, space, runs)
    return runs[index[run_id]]


def _outcome(run: LedgerRun, value, curve, status, note) -> LedgerRun:
    """``run`` with a recorded outcome (see :func:`record` for the rules)."""
    where = f"run {run.id!r}"
    given_curve = tuple((int(s), float(v)) for s, v in curve)
    # correcting an earlier record (--force) without a new curve keeps the old one (a pending
    # run has none)
    curve = given_curve or run.curve
    if status == "pending":
        raise ValueError("record sets an outcome: status done, failed or diverged")
    if value is None:
        at_steps = [v for s, v in given_curve if s == run.steps]
        if at_steps:
            value = at_steps[0]
        elif status is None and not given_curve:
            raise ValueError(
                f"{where}: give its value (--value), its learning curve (--curve) or its "
                "status (--status failed or diverged)"
            )
        elif (
            status is None
            and given_curve[-1][0] < run.steps
            and all(math.isfinite(v) for _, v in given_curve)
        ):
            raise ValueError(
                f"{where}: the curve ends at step {given_curve[-1][0]}, before the run's "
                f"{run.steps} steps, so it gives no final value. Add the value at "
                f"{run.steps} steps (--value, or a point {run.steps}=... in the curve), or "
                "record the run as --status failed if it stopped early (the curve is kept)"
            )
        else:  # a status without a value, or a curve that blew up before the end
            value = math.nan
    value = float(value)
    if curve and not given_curve and math.isfinite(value):
        # the kept curve's point at the run's steps is the value being corrected
        curve = tuple((s, value if s == run.steps else v) for s, v in curve)
    if status is None:
        # a non-finite value, given or in the curve, means the run blew up
        status = "done" if math.isfinite(value) else "diverged"
    at_steps = [v for s, v in curve if s == run.steps]
    if at_steps and math.isfinite(value) and at_steps[0] != value:
        raise ValueError(
            f"{where}: its curve has {at_steps[0]!r} at its {run.steps} steps but the value "
            f"given is {value!r}; give the corrected curve too (--curve), or a value that agrees"
        )
    return replace(
        run, status=status, value=value, curve=curve, note=run.note if note is None else note
    )
