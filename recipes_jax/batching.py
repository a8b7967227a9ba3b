"""Mapping a function over a batch: ``vmap``, or one element at a time where batched LAPACK
calls must be avoided.

jaxlib 0.10's CPU LAPACK kernels (Cholesky, triangular solves) split a batch of matrices into
tasks on XLA's intra-op thread pool, which has one thread per core, and block until those
finish. When every pool thread is itself blocked that way (several CPU devices running their
programs at once, each factoring a batch), nothing runs the tasks and the program hangs
(gdb: each pool thread in ``lapack_dpotrf_ffi`` -> ``ParallelBatchMap`` ->
``BlockingCounter::Wait``). A single matrix per call runs inline, so inside
:func:`sequential_batches` :func:`batch_map` loops instead of vmapping. (The GP's own LAPACK
calls, in :mod:`recipes_jax.linalg`, take one matrix per call on CPU in any mode; this mode
loops whole computations, such as each device's seeds in a sweep on CPU.)

The mode is read while tracing. A separately jitted function that calls :func:`batch_map`
must take :func:`is_sequential` as a static argument (as ``gp.GP.fit`` does), or jit's trace
cache would replay a trace made in the other mode.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import jax

__all__ = ["batch_map", "is_sequential", "sequential_batches"]

_state = threading.local()


def is_sequential() -> bool:
    """True inside :func:`sequential_batches` (read at trace time)."""
    return getattr(_state, "sequential", False)


@contextlib.contextmanager
def sequential_batches(enabled: bool = True) -> Iterator[None]:
    """While tracing inside this block, :func:`batch_map` uses ``lax.map``."""
    previous = is_sequential()
    _state.sequential = bool(enabled)
    try:
        yield
    finally:
        _state.sequential = previous


def batch_map(fn: Callable, xs):
    """``fn`` over the leading axis of the pytree ``xs``: ``jax.vmap(fn)(xs)``, or
    ``jax.lax.map(fn, xs)`` inside :func:`sequential_batches` (same results up to rounding)."""
    return jax.lax.map(fn, xs) if is_sequential() else jax.vmap(fn)(xs)
