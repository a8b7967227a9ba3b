"""Threads of the LAPACK library behind JAX's linear algebra on CPU.

On CPU, jaxlib computes Cholesky factorizations and triangular solves with the LAPACK that
scipy ships (OpenBLAS). After each call OpenBLAS's worker threads keep spinning for a while
and take the cores from XLA's own threads: on 2 cores, the acquisition screen of
``benchmarks/ask_latency.py`` (n = 200) took 115 ms right after a 256 x 256 Cholesky and 64 ms
without one, and an mfms_bo campaign ran 1.3x slower. The GP matrices here are small, so
those threads buy nothing. Importing recipes_jax therefore calls :func:`limit_lapack_threads`
(one thread), unless the environment variable ``RECIPES_JAX_LAPACK_THREADS`` says otherwise:
a number of threads, or ``keep`` to leave the library as it is. numpy's own BLAS is never
touched. Needs ``threadpoolctl`` (a dependency); without it nothing changes.
"""

from __future__ import annotations

import os

__all__ = ["ENV_VAR", "apply_environment", "limit_lapack_threads"]

ENV_VAR = "RECIPES_JAX_LAPACK_THREADS"


def limit_lapack_threads(num_threads: int = 1) -> list[str]:
    """Set the thread count of every BLAS/LAPACK library loaded in this process except
    numpy's own (in practice: scipy's OpenBLAS, which jaxlib calls for CPU linear algebra).

    Returns the paths of the libraries changed (empty when threadpoolctl is missing or no
    such library is loaded). Loads ``scipy.linalg.cython_lapack`` first, as jaxlib does.
    """
    num_threads = int(num_threads)
    if num_threads < 1:
        raise ValueError(f"num_threads must be >= 1; got {num_threads}")
    try:
        import scipy.linalg.cython_lapack  # noqa: F401  (the LAPACK jaxlib's CPU kernels call)
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return []
    changed = []
    for library in ThreadpoolController().lib_controllers:
        if library.user_api != "blas" or "numpy" in os.path.basename(
            os.path.dirname(library.filepath)
        ):
            continue
        library.set_num_threads(num_threads)
        changed.append(library.filepath)
    return changed


def apply_environment() -> list[str]:
    """:func:`limit_lapack_threads` as ``RECIPES_JAX_LAPACK_THREADS`` asks (default 1 thread;
    ``keep``: no change). Called once when recipes_jax is imported."""
    setting = os.environ.get(ENV_VAR, "1").strip().lower()
    if setting == "keep":
        return []
    try:
        threads = int(setting)
    except ValueError:
        raise ValueError(
            f"{ENV_VAR}={setting!r}: use a number of threads (e.g. 1) or 'keep'"
        ) from None
    return limit_lapack_threads(threads)
