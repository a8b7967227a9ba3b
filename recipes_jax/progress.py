"""A text progress bar for campaigns and sweeps (no dependencies).

    bar = ProgressBar("mfms_bo, 16 seeds")
    trace = rj.sweep(strategy, env, budget, keys, progress=bar)

On a terminal the bar redraws in place; elsewhere (logs, CI, notebooks' captured output) it
prints a line at every quarter so that logs stay short.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressBar"]


class ProgressBar:
    """``progress(done, total)`` callback that draws ``label [#####-----] done/total  12.3 s``.

    Args:
      label: text before the bar.
      stream: where to write (default ``sys.stderr``).
      width: characters in the bar.
      unit: what ``done`` counts ("asks").
      interactive: redraw in place (default: whether ``stream`` is a terminal).
    """

    def __init__(
        self,
        label: str,
        *,
        stream: TextIO | None = None,
        width: int = 30,
        unit: str = "asks",
        interactive: bool | None = None,
    ):
        self.label, self.width, self.unit = label, width, unit
        self.stream = sys.stderr if stream is None else stream
        if interactive is None:
            isatty = getattr(self.stream, "isatty", None)
            interactive = bool(isatty and isatty())
        self.interactive = interactive
        self._start: float | None = None
        self._last_quarter = -1
        self._last_draw = 0.0
        self.done = self.total = 0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if self._start is None or done == 0:
            self._start, self._last_quarter = now, -1
        self.done, self.total = done, total
        finished = done >= total
        if self.interactive:
            if finished or now - self._last_draw >= 0.1:
                self._last_draw = now
                end = "\n" if finished else ""
                self.stream.write("\r" + self.render(now) + end)
                self.stream.flush()
            return
        quarter = 4 * done // max(total, 1)
        if quarter > self._last_quarter:
            self._last_quarter = quarter
            self.stream.write(self.render(now) + "\n")
            self.stream.flush()

    def render(self, now: float | None = None) -> str:
        """The bar as a string, e.g. ``mfms_bo [#######-------] 12/30 asks  4.1 s``."""
        now = time.perf_counter() if now is None else now
        frac = self.done / self.total if self.total else 0.0
        filled = round(frac * self.width)
        elapsed = 0.0 if self._start is None else now - self._start
        bar = "#" * filled + "-" * (self.width - filled)
        return f"{self.label} [{bar}] {self.done}/{self.total} {self.unit}  {elapsed:5.1f} s"
