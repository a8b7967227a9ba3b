"""Campaigns: a strategy against an environment, as one XLA program.

:func:`run_campaign` runs ``num_asks`` ask -> evaluate -> tell -> recommend rounds in one
``lax.scan``; :func:`sweep` vmaps that over seeds and shards the seeds across every visible
device. Both are jitted and compiled once per (strategy, environment structure, num_asks).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from recipes_jax import batching
from recipes_jax.strategies.base import LearningCurve, Proposal, Strategy

__all__ = [
    "CPU_COMPILER_OPTIONS",
    "CompiledSweep",
    "Trace",
    "compile_sweep",
    "compiler_options",
    "run_campaign",
    "sweep",
]

#: A progress callback: ``progress(done, total)`` with asks started so far (summed over vmap
#: batches and devices) and the total the campaign or sweep will run.
Progress = Callable[[int, int], None]

#: An environment: jittable (w [B, K], m [B] millions of parameters, s [B] steps) -> [B].
Env = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


class Trace(NamedTuple):
    """What happened in a campaign, one row per ask (a sweep adds a leading seed axis).

    cost: [T] cumulative cost after each ask (units of one target run; stops growing once a
      proposal would have exceeded the budget).
    recommendation: [T, K] the mixture recommended after each ask.
    proposals: a :class:`~recipes_jax.strategies.base.Proposal` with [T, ...] fields: what was
      asked (also for inactive rows, which were never run).
    values: [T] the metric observed at each proposal's steps (NaN where inactive).
    curves: [T, C] the learning curve reported at the strategy's checkpoints (NaN where not
      reached or inactive; C = 0 for strategies that use final values only).
    active: [T] bool, True where the proposal was run within the budget.
    """

    cost: jax.Array
    recommendation: jax.Array
    proposals: Proposal
    values: jax.Array
    curves: jax.Array
    active: jax.Array


class _ProgressRelay:
    """Forwards the compiled program's per-ask host callbacks to the caller's ``progress``.

    The callback is compiled into the program once; which function it reaches is set per
    call, so a new ``progress`` never recompiles anything."""

    def __init__(self):
        self._lock = threading.Lock()
        self._target: Progress | None = None
        self._done = self._total = 0

    def __call__(self, t) -> None:
        with self._lock:
            if self._target is None:
                return
            self._done += 1
            done, total, target = min(self._done, self._total), self._total, self._target
        target(done, total)

    def run(self, progress: Progress | None, total: int, fn: Callable[[], Any]) -> Any:
        """Call ``fn()`` (blocking on its result) with ``progress`` receiving the callbacks."""
        if progress is None:
            return fn()
        with self._lock:
            self._target, self._done, self._total = progress, 0, total
        try:
            progress(0, total)
            out = jax.block_until_ready(fn())
            jax.effects_barrier()
            progress(total, total)
            return out
        finally:
            with self._lock:
                self._target = None


_relay = _ProgressRelay()


def _split_env(env) -> tuple[list, Any, tuple]:
    """Array leaves of ``env`` (traced arguments) and the rest (static, hashable)."""
    leaves, treedef = jax.tree_util.tree_flatten(env)
    is_array = [isinstance(leaf, jax.Array | np.ndarray) for leaf in leaves]
    dynamic = [leaf if a else None for leaf, a in zip(leaves, is_array, strict=True)]
    static = tuple(None if a else leaf for leaf, a in zip(leaves, is_array, strict=True))
    return dynamic, treedef, static


def _join_env(dynamic, treedef, static):
    leaves = [d if s is None else s for d, s in zip(dynamic, static, strict=True)]
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _evaluate(strategy: Strategy, env: Env, proposal: Proposal, key, noise_sd):
    """Query ``env`` at the proposal's checkpoints and final steps, with optional noise:
    (final value [], curve [C])."""
    from recipes_jax.objectives import Objective, host_evaluate

    checkpoints = jnp.asarray(strategy.checkpoints, jnp.int32)
    steps = jnp.concatenate([checkpoints, proposal.steps[None]])
    B = steps.shape[0]
    dtype = proposal.mixture.dtype
    if isinstance(env, Objective):  # a training function on the host: one run per ask
        k_train = jax.random.fold_in(key, 1)
        final, curve = host_evaluate(env, strategy.checkpoints, dtype)(proposal, k_train)
        y = jnp.concatenate([curve, final[None]])
    else:
        w = jnp.broadcast_to(proposal.mixture, (B, proposal.mixture.shape[0]))
        m = jnp.broadcast_to(proposal.scale, (B,))
        y = jnp.asarray(env(w, m, steps.astype(proposal.scale.dtype))).astype(dtype)
    y = y + noise_sd * jax.random.normal(key, y.shape, y.dtype)
    reached = jnp.concatenate([checkpoints < proposal.steps, jnp.ones((1,), bool)])
    return (
        y[-1],
        jnp.where(reached[:-1], y[:-1], jnp.nan),
        LearningCurve(steps, jnp.where(reached, y, jnp.nan)),
    )


def _campaign(strategy, treedef, static, num_asks, with_progress, dynamic, budget, key, noise_sd):
    env = _join_env(dynamic, treedef, static)
    k_init, k_run = jax.random.split(key)
    state = strategy.init(k_init)
    dtype = jnp.result_type(float)
    budget = jnp.asarray(budget, dtype)
    tolerance = 1e-6 * jnp.maximum(budget, 1.0)

    def step(carry, t):
        state, spent, done = carry
        # unbatched operand: one host call per ask per vmap batch (per seed in a loop)
        if with_progress:
            jax.debug.callback(_relay, t)
        k_ask, k_noise = jax.random.split(jax.random.fold_in(k_run, t))
        proposal, asked = strategy.ask(state, k_ask)
        final, curve, report = _evaluate(strategy, env, proposal, k_noise, noise_sd)
        active = ~done & (spent + proposal.cost <= budget + tolerance)
        told = strategy.tell(asked, proposal, report if strategy.checkpoints else final)
        state = jax.tree_util.tree_map(lambda new, old: jnp.where(active, new, old), told, state)
        spent = spent + jnp.where(active, proposal.cost.astype(dtype), 0.0)
        row = Trace(
            cost=spent,
            recommendation=strategy.recommend(state),
            proposals=proposal,
            values=jnp.where(active, final, jnp.nan),
            curves=jnp.where(active, curve, jnp.nan),
            active=active,
        )
        return (state, spent, done | ~active), row

    init = (state, jnp.asarray(0.0, dtype), jnp.asarray(False))
    _, trace = jax.lax.scan(step, init, jnp.arange(num_asks))
    return trace


#: XLA:CPU options for campaign programs: YNNPACK fusions for matrix products only. Its
#: elementwise fusions pulled the acquisition grid's per-mixture and per-fidelity
#: exponentials into the [F, C, N] cross-covariance and recomputed them there: mfms_bo on the
#: paper world took 46 instead of 36 ms per seed-ask (8 seeds, 2 cores).
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"}


@functools.cache
def compiler_options() -> dict | None:
    """:data:`CPU_COMPILER_OPTIONS` when the default backend is a CPU whose XLA accepts them,
    else None (other backends, or an XLA without the option: its defaults are used)."""
    if jax.default_backend() != "cpu":
        return None
    try:
        jax.jit(lambda x: x + 1, compiler_options=CPU_COMPILER_OPTIONS).lower(1.0).compile()
    except Exception:  # an XLA that no longer knows the option
        return None
    return CPU_COMPILER_OPTIONS


@functools.lru_cache(maxsize=64)
def _run_fn(strategy, treedef, static, num_asks, with_progress):
    run = functools.partial(_campaign, strategy, treedef, static, num_asks, with_progress)
    return jax.jit(run, compiler_options=compiler_options())


def _num_asks(strategy: Strategy, budget: float, num_asks: int | None) -> int:
    n = strategy.default_num_asks(float(budget)) if num_asks is None else num_asks
    if int(n) < 1:
        raise ValueError(f"num_asks must be >= 1; got {n}")
    return int(n)


def _check_budget(budget) -> None:
    if not np.isfinite(budget) or budget <= 0:
        raise ValueError(
            f"budget must be a positive number of target-run costs (e.g. 50); got {budget}"
        )


def run_campaign(
    strategy: Strategy,
    env: Env,
    budget: float,
    key: jax.Array,
    *,
    num_asks: int | None = None,
    noise_sd: float = 0.0,
    progress: Progress | None = None,
) -> Trace:
    """Run ``strategy`` against ``env`` until ``budget`` is spent: one jitted ``lax.scan``.

    Each round asks for a proposal, evaluates ``env`` at it (at the strategy's learning-curve
    checkpoints below its steps too, plus ``N(0, noise_sd^2)`` observation noise), tells the
    strategy and records its recommendation. The first proposal whose cost would take the
    total past ``budget`` ends spending: it and every later round are inactive (state and cost
    frozen), so the scan has a fixed length ``num_asks`` (default:
    ``strategy.default_num_asks(budget)``).

    Args:
      strategy: a :class:`~recipes_jax.strategies.base.Strategy` (reuse the same object to
        reuse the compiled program).
      env: jittable ``(w [B, K], m [B], s [B]) -> [B]``, e.g. a ``Simulator``.
      budget: total cost allowed, in units of one full target run.
      key: PRNG key; the same key gives the same trace, bit for bit, on the same machine.
      progress: optional ``progress(done, total)`` called on the host as asks start (e.g.
        :class:`recipes_jax.progress.ProgressBar`); with it the call blocks until done.
        Reporting compiles a separate program (one host callback per ask) with the same
        results.
    Returns a :class:`Trace`.
    """
    _check_budget(budget)
    dynamic, treedef, static = _split_env(env)
    n = _num_asks(strategy, budget, num_asks)
    run = _run_fn(strategy, treedef, static, n, progress is not None)
    return _relay.run(progress, n, lambda: run(dynamic, budget, key, noise_sd))


def _loops_seeds(env: Env, num_devices: int) -> bool:
    """Whether each device loops over its seeds (and a GP strategy over its fit starts and
    line-search points) instead of vmapping them.

    On CPU it loops, except for a batched training function on the host on one device, which
    should receive every seed's run of an ask at once; GPUs and TPUs vmap. Why, with the
    measurements: :func:`sweep`. (On one CPU device the GP's LAPACK calls take one matrix at
    a time anyway, so a vmap of seeds gains no wider instructions there.)
    """
    from recipes_jax.objectives import Objective

    if jax.default_backend() != "cpu":
        return False
    return num_devices > 1 or not (isinstance(env, Objective) and env.batched)


def _mesh(num_devices: int) -> Mesh:
    return Mesh(np.asarray(jax.devices()[:num_devices]), ("seeds",))


@functools.lru_cache(maxsize=16)
def _sweep_fn(
    strategy,
    treedef,
    static,
    num_asks,
    num_devices,
    batch_size,
    key_impl,
    with_progress,
    sequential,
):

    def local(dynamic, budget, key_data, noise_sd):
        # this device's seeds, batch_size at a time: a vmap of the same width whatever the
        # device count (a loop on CPU), so sharding does not change the runs
        keys = jax.random.wrap_key_data(key_data, impl=key_impl)
        one = lambda k: _campaign(
            strategy, treedef, static, num_asks, with_progress, dynamic, budget, k, noise_sd
        )
        chunks = keys.reshape(-1, batch_size)
        with batching.sequential_batches(sequential):
            traces = jax.lax.map(lambda chunk: batching.batch_map(one, chunk), chunks)
        return jax.tree_util.tree_map(
            lambda a: a.reshape(a.shape[0] * a.shape[1], *a.shape[2:]), traces
        )

    if num_devices == 1:
        return jax.jit(local, compiler_options=compiler_options())
    sharded = jax.shard_map(
        local,
        mesh=_mesh(num_devices),
        in_specs=(PartitionSpec(), PartitionSpec(), PartitionSpec("seeds"), PartitionSpec()),
        out_specs=PartitionSpec("seeds"),
        check_vma=False,
    )
    return jax.jit(sharded, compiler_options=compiler_options())


def _prepare_sweep(
    strategy, env, budget, keys, num_asks, noise_sd, devices, batch_size, with_progress=False
):
    """(jitted sweep function, its arguments, number of real seeds, progress callbacks per
    call)."""
    _check_budget(budget)
    keys = jnp.asarray(keys)
    if keys.ndim != 1 or not jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key):
        raise ValueError(
            "keys must be a 1-D array of typed PRNG keys, e.g. "
            "jax.random.split(jax.random.key(0), 64)"
        )
    dynamic, treedef, static = _split_env(env)
    n = _num_asks(strategy, budget, num_asks)
    num_devices = len(jax.devices()) if devices is None else int(devices)
    if not 1 <= num_devices <= len(jax.devices()):
        raise ValueError(f"devices must be in 1..{len(jax.devices())}; got {devices}")
    S = keys.shape[0]
    per_device = -(-S // num_devices)
    batch = per_device if batch_size is None else int(batch_size)
    if batch < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    batch = min(batch, per_device)  # a wider batch than a device's share would only pad
    padded = -S % (num_devices * batch)
    if padded:
        keys = jnp.concatenate([keys, jnp.broadcast_to(keys[:1], (padded,))])
    key_impl = jax.random.key_impl(keys)
    key_data = jax.random.key_data(keys)
    if jax.process_count() > 1:
        if num_devices != len(jax.devices()):
            raise ValueError(
                "with several processes (jax.distributed), a sweep spans every global device: "
                f"leave devices=None (got devices={devices} of {len(jax.devices())})"
            )
        # every process holds the same keys and environment: make the keys one global array
        # sharded over the seeds, and pass the rest as host values (replicated)
        host_keys = np.asarray(key_data)
        key_data = jax.make_array_from_callback(
            host_keys.shape,
            jax.sharding.NamedSharding(_mesh(num_devices), PartitionSpec("seeds")),
            lambda index: host_keys[index],
        )
        dynamic = [None if d is None else np.asarray(d) for d in dynamic]
    loops = _loops_seeds(env, num_devices)
    run = _sweep_fn(
        strategy, treedef, static, n, num_devices, batch, key_impl, with_progress, loops
    )
    args = (dynamic, budget, key_data, noise_sd)
    # one progress callback per ask of each looped seed, or of each vmapped batch of seeds
    local_devices = num_devices // jax.process_count()
    callbacks = local_devices * (keys.shape[0] // (num_devices * (1 if loops else batch))) * n
    return run, args, S, callbacks


def _unpad(traces: Trace, num_seeds: int) -> Trace:
    if jax.process_count() > 1:
        # seeds live on every process's devices: gather them all, in seed order, everywhere
        from jax.experimental import multihost_utils

        traces = multihost_utils.process_allgather(traces, tiled=True)
    return jax.tree_util.tree_map(lambda a: a[:num_seeds], traces)


def sweep(
    strategy: Strategy,
    env: Env,
    budget: float,
    keys: jax.Array,
    *,
    num_asks: int | None = None,
    noise_sd: float = 0.0,
    devices: int | None = None,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> Trace:
    """:func:`run_campaign` for many seeds at once: seeds sharded across ``devices`` (default:
    every visible device; with several hosts started under ``jax.distributed``, every global
    device) with ``shard_map``; on each device, ``batch_size`` seeds at a time (default: all
    of that device's seeds in one batch), vmapped on GPUs and TPUs, looped on CPU.

    On CPU each device loops over its seeds (and a GP strategy over its fit starts and
    line-search points): several CPU devices share one thread pool on which batched LAPACK
    calls deadlocked (see :mod:`recipes_jax.batching`), and on one device the loop was faster,
    compiled faster and used less memory than the vmap (64 seeds x 100 asks of mfms_bo on
    2 cores, ``benchmarks/throughput.py``: 0.88x the time per seed-ask, 0.73x the compile
    time, 0.79x the peak RSS). One exception: a batched training
    function on the host (``rj.objective(f, batched=True)``) on one CPU device is vmapped, so
    that it receives every seed's run of an ask in one call. One looped seed keeps about 1.3
    of 2 cores busy: call :func:`recipes_jax.use_cpu_cores` right after import to give JAX one
    CPU device per core, and the sweep runs that many seeds side by side.

    Seeds are padded to a multiple of ``devices * batch_size`` and the padding dropped
    (``batch_size`` is capped at a device's share of the seeds).
    Reproducibility: on one CPU device each seed's trace equals :func:`run_campaign` with the
    same key, bit for bit, whatever ``batch_size`` and the number of seeds (the vmapped
    batched host function aside). Elsewhere a seed's trace depends on its key, ``batch_size``
    and the device count: on one GPU, the same ``batch_size`` gives the same bits whatever the
    number of seeds. Across CPU device counts,
    random search and Hyperband traces are bit for bit identical; GP strategies make the same
    runs with values agreeing to ~1e-13 for small GPs (12-ask sweeps of every GP strategy, 1
    vs 4 CPU devices: at most 3.4e-14) and ~1e-9 at a realistic size (mfms_bo, 256-row
    buffer, 2 x 15 refits: scores 2e-9, mixtures 4.5e-10), because XLA fuses a partitioned
    program differently (the refits amplify the last bits). In a long
    model-based campaign such last-bit differences can steer later proposals apart.

    Several hosts: start every process with ``jax.distributed.initialize(...)`` and call
    ``sweep`` with the same arguments (same keys) in each; seeds are sharded over every global
    device and every process gets the whole :class:`Trace` back (``devices`` must then be
    None). Memory per device: on CPU one seed's working set (a ``batch_size``-wide vmap of it
    on GPUs and TPUs), plus the traces, which grow linearly in seeds.

    ``progress``: as in :func:`run_campaign`; ``total`` counts asks of each looped seed (on
    CPU, 64 seeds x 100 asks report 6,400) or of each vmapped batch (on a GPU, one batch of
    64 seeds x 100 asks reports 100), padding seeds included.

    Returns a :class:`Trace` with a leading seed axis [S, ...] on every field.
    """
    run, args, S, callbacks = _prepare_sweep(
        strategy, env, budget, keys, num_asks, noise_sd, devices, batch_size, progress is not None
    )
    return _unpad(_relay.run(progress, callbacks, lambda: run(*args)), S)


class CompiledSweep:
    """A :func:`sweep` compiled ahead of time: call it to run (returns the :class:`Trace`,
    not yet blocked on); :meth:`memory` reports XLA's memory plan for one call."""

    def __init__(self, compiled, args, num_seeds: int, callbacks: int = 0):
        self._compiled, self._args, self._num_seeds = compiled, args, num_seeds
        self._callbacks = callbacks

    def __call__(self, progress: Progress | None = None) -> Trace:
        """Run the sweep; ``progress`` (only if compiled with ``progress=True``) as in
        :func:`sweep`."""
        if progress is not None and not self._callbacks:
            raise ValueError(
                "this sweep was compiled without progress reporting: "
                "compile_sweep(..., progress=True)"
            )
        out = _relay.run(progress, self._callbacks, lambda: self._compiled(*self._args))
        return _unpad(out, self._num_seeds)

    def memory(self) -> dict[str, int] | None:
        """Bytes XLA plans per call: ``temp`` (working buffers), ``argument``, ``output``
        and ``code``; None where the backend does not report them."""
        analysis = self._compiled.memory_analysis()
        if analysis is None:
            return None
        return {
            "temp": int(analysis.temp_size_in_bytes),
            "argument": int(analysis.argument_size_in_bytes),
            "output": int(analysis.output_size_in_bytes),
            "code": int(analysis.generated_code_size_in_bytes),
        }


def compile_sweep(
    strategy: Strategy,
    env: Env,
    budget: float,
    keys: jax.Array,
    *,
    num_asks: int | None = None,
    noise_sd: float = 0.0,
    devices: int | None = None,
    batch_size: int | None = None,
    progress: bool = False,
) -> tuple[CompiledSweep, float]:
    """Compile :func:`sweep` ahead of time, for benchmarks that time compilation separately.

    Same arguments as :func:`sweep`, but ``progress`` is a flag: True compiles in the per-ask
    host callback so that ``run(progress=callback)`` can report. Returns ``(run,
    compile_seconds)``: ``run()`` executes the compiled sweep and returns its :class:`Trace`
    (not yet blocked on unless reporting), identical to ``sweep(...)`` with the same
    arguments; ``run.memory()`` gives XLA's memory plan.
    """
    fn, args, S, callbacks = _prepare_sweep(
        strategy, env, budget, keys, num_asks, noise_sd, devices, batch_size, progress
    )
    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    seconds = time.perf_counter() - start
    return CompiledSweep(compiled, args, S, callbacks if progress else 0), seconds
