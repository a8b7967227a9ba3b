"""One JAX CPU device per core, so that a sweep on CPU runs several seeds at once.

On CPU :func:`recipes_jax.sweep` loops over each device's seeds, and one seed's campaign keeps
about 1.3 of 2 cores busy (its LAPACK calls take one matrix at a time on one thread). JAX
shows one CPU device unless told otherwise; with one device per core, the sweep shards seeds
over all of them and they run side by side. Measured on 2 cores (64 seeds x 100 asks of
mfms_bo on the paper world, ``benchmarks/throughput.py --cpu-devices 1`` then ``2``): 30.3 ms
per seed-ask on 1 device, 13.1 ms on 2. The CLI's ``demo`` and ``benchmark`` commands call
:func:`use_cpu_cores`; in your own script call it right after ``import recipes_jax``, before
any JAX computation.

On several CPU devices a sweep runs the one-device program on each (``per_device_programs``,
:func:`recipes_jax.sweep`), so its traces are bit for bit those of one device: the number of
devices changes the speed, not the results.
"""

from __future__ import annotations

import os
import re

import jax

__all__ = ["core_count", "use_cpu_cores"]

_FLAG = re.compile(r"--xla_force_host_platform_device_count=(\d+)")


def core_count() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def use_cpu_cores(num_devices: int | None = None, *, strict: bool = True) -> int:
    """Ask JAX for ``num_devices`` CPU devices (default: one per core, :func:`core_count`).

    Must run before JAX's first computation, since JAX fixes its devices then. A device count
    already chosen with ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` is kept.
    Only the CPU backend is affected: on a machine with a GPU, sweeps still use the GPUs.

    Args:
      num_devices: CPU devices wanted (>= 1); None for one per core.
      strict: if JAX has already started with another number of CPU devices, raise (True)
        or leave it and return the number it has (False).
    Returns the number of CPU devices JAX has or will have.
    """
    wanted = core_count() if num_devices is None else int(num_devices)
    if wanted < 1:
        raise ValueError(f"num_devices must be >= 1; got {num_devices}")
    forced = _FLAG.search(os.environ.get("XLA_FLAGS", ""))
    if forced:
        return int(forced.group(1))
    try:
        jax.config.update("jax_num_cpu_devices", wanted)
    except RuntimeError:  # JAX has started: its CPU devices are fixed
        have = len(jax.devices("cpu"))
        if have != wanted and strict:
            raise RuntimeError(
                f"JAX has already started with {have} CPU device(s), so it cannot get "
                f"{wanted}: call recipes_jax.use_cpu_cores() right after importing "
                "recipes_jax, before any JAX computation, or set "
                f"XLA_FLAGS=--xla_force_host_platform_device_count={wanted} before starting "
                "Python"
            ) from None
        return have
    return wanted
