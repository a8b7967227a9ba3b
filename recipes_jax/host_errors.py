"""Exceptions raised by your training function inside a compiled campaign, given back as raised.

:func:`~recipes_jax.run_campaign` and :func:`~recipes_jax.sweep` call a training function
(:func:`~recipes_jax.objective`) on the host from inside their ``lax.scan``
(``jax.pure_callback``). When it raises, XLA stops the program and JAX raises its own runtime
error, whose message holds the traceback only as text: ``except OSError:`` around the campaign
would never match. The callback records the exception here (:func:`record`) and the campaign
re-raises the exception object itself (:func:`raised_as_raised`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import traceback
from collections.abc import Iterator

__all__ = ["raised_as_raised", "record"]

_KEEP = 16  # recorded exceptions that no campaign claimed are dropped beyond this many
_lock = threading.Lock()
_recorded: list[Exception] = []


class _RaisedElsewhere(logging.Filter):
    """Drops JAX's log of a callback's exception ("jax.pure_callback failed" and a traceback
    on stderr) when that exception is recorded here: the campaign raises it to the caller,
    who may catch it, so the log would only repeat it."""

    def filter(self, entry: logging.LogRecord) -> bool:
        error = entry.exc_info[1] if entry.exc_info else None
        with _lock:
            return not any(error is e for e in _recorded)


logging.getLogger("jax._src.callback").addFilter(_RaisedElsewhere())


def record(error: Exception) -> None:
    """Remember ``error`` (raised on the host inside a compiled program) so that
    :func:`raised_as_raised` can raise it in place of JAX's runtime error."""
    with _lock:
        _recorded.append(error)
        del _recorded[:-_KEEP]


def _claim(failure: BaseException) -> Exception | None:
    """The recorded exception that ``failure`` (JAX's error) reports, removed from the record;
    None if it reports none (matched by the line ``Type: message`` that JAX copies into its
    message, so campaigns failing at once in other threads keep theirs)."""
    text = str(failure)
    with _lock:
        for i in range(len(_recorded) - 1, -1, -1):
            error = _recorded[i]
            lines = (
                f"{type(error).__name__}: {error}",
                traceback.format_exception_only(error)[0].strip(),  # module-qualified type
            )
            if any(line in text for line in lines):
                return _recorded.pop(i)
    return None


@contextlib.contextmanager
def raised_as_raised() -> Iterator[None]:
    """Within the block, an error that JAX raises because a host callback raised becomes that
    callback's own exception (its type, message, traceback and notes)."""
    try:
        yield
    except Exception as failure:
        original = _claim(failure)
        if original is None:
            raise
        raise original from None
