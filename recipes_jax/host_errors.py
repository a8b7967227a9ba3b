"""Exceptions raised by your training function inside a compiled campaign, given back as raised.

:func:`~recipes_jax.run_campaign` and :func:`~recipes_jax.sweep` call a training function
(:func:`~recipes_jax.objective`) on the host from inside their ``lax.scan``
(``jax.pure_callback``). When it raises, XLA stops the program and JAX raises its own runtime
error, whose message holds the traceback only as text: ``except OSError:`` around the campaign
would never match. The callback records the exception here under its training function
(:func:`record`), and the campaign running that function re-raises the exception object itself
(:func:`raised_as_raised`). Records are scoped to the function and dropped when its campaign
ends, so a campaign never receives another's exception, and a failed run's frames (its model,
its device memory) are not kept alive.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

__all__ = ["raised_as_raised", "record"]

_KEEP = 4  # records per training function that no campaign claimed (e.g. under your own jit)
_lock = threading.Lock()
_recorded: dict[int, list[BaseException]] = {}  # id(training function) -> its exceptions


class _RaisedElsewhere(logging.Filter):
    """Drops JAX's log of a callback's exception ("jax.pure_callback failed" and a traceback
    on stderr) when that exception is recorded here: the campaign raises it to the caller,
    who may catch it, so the log would only repeat it."""

    def filter(self, entry: logging.LogRecord) -> bool:
        error = entry.exc_info[1] if entry.exc_info else None
        with _lock:
            return not any(error is e for errors in _recorded.values() for e in errors)


logging.getLogger("jax._src.callback").addFilter(_RaisedElsewhere())


def record(owner: object, error: BaseException) -> None:
    """Remember ``error``, raised on the host inside a compiled program by ``owner`` (the
    training function's :class:`~recipes_jax.objectives.Objective`), so that the campaign
    running ``owner`` can raise it in place of JAX's runtime error."""
    with _lock:
        errors = _recorded.setdefault(id(owner), [])
        errors.append(error)
        del errors[:-_KEEP]


def _take(owner: object, failure: BaseException) -> BaseException | None:
    """Remove ``owner``'s records; return the one that ``failure`` (JAX's error) reports, if
    any (the first recorded whose ``Type: message`` line JAX copied into its text; several
    devices may each have failed)."""
    text = str(failure)
    with _lock:
        errors = _recorded.pop(id(owner), [])
    for error in errors:
        if f"{type(error).__name__}: {error}".rstrip(": ") in text:
            return error
    return None


@contextlib.contextmanager
def raised_as_raised(owner: object | None) -> Iterator[None]:
    """Within the block (a campaign calling ``owner``'s training function; None: no training
    function, nothing to do), an error that JAX raises because the function raised becomes
    the function's own exception: its type, message, traceback and notes."""
    if owner is None:
        yield
        return
    with _lock:
        _recorded.pop(id(owner), None)  # left by a campaign inside the caller's own jit
    try:
        yield
    except Exception as failure:
        original = _take(owner, failure)
        if original is None:
            raise
        raise original from None
    finally:
        with _lock:
            _recorded.pop(id(owner), None)
