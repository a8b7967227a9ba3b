"""Campaigns: a strategy against an environment, as one XLA program.

:func:`run_campaign` runs ``num_asks`` ask -> evaluate -> tell -> recommend rounds in one
``lax.scan``; :func:`sweep` vmaps that over seeds and shards the seeds across every visible
device. Both are jitted and compiled once per (strategy, environment structure, num_asks).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import functools
import io
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from recipes_jax import batching, host_errors
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

    def run(
        self,
        progress: Progress | None,
        total: int,
        fn: Callable[[], Any],
        trains: Callable | None = None,
    ) -> Any:
        """Call ``fn()`` with ``progress`` receiving the callbacks. It blocks on the result if
        reporting, or if the program calls the training function ``trains`` on the host, so
        that an exception the function raised inside the program is raised here as itself
        (:mod:`recipes_jax.host_errors`). Inside the caller's own trace it never blocks."""
        with host_errors.raised_as_raised(trains):
            if progress is None:
                out = fn()
                return out if trains is None or _traced(out) else jax.block_until_ready(out)
            return self._reporting(progress, total, fn)

    def _reporting(self, progress: Progress, total: int, fn: Callable[[], Any]) -> Any:
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


def _evaluate(strategy: Strategy, env: Env, proposal: Proposal, key, noise_sd, active=True):
    """Query ``env`` at the proposal's checkpoints and final steps, with optional noise:
    (final value [], curve [C]). A training function on the host is not called for an
    inactive run (past the budget)."""
    from recipes_jax.objectives import Objective, host_evaluate

    checkpoints = jnp.asarray(strategy.checkpoints, jnp.int32)
    steps = jnp.concatenate([checkpoints, proposal.steps[None]])
    B = steps.shape[0]
    dtype = proposal.mixture.dtype
    if isinstance(env, Objective):  # a training function on the host: one run per ask
        k_train = jax.random.fold_in(key, 1)
        final, curve = host_evaluate(env, strategy.checkpoints, dtype)(proposal, k_train, active)
        y = jnp.concatenate([curve, final[None]])
    else:
        w = jnp.broadcast_to(proposal.mixture, (B, proposal.mixture.shape[0]))
        m = jnp.broadcast_to(proposal.scale, (B,))
        y = jnp.asarray(env(w, m, steps.astype(proposal.scale.dtype))).astype(dtype)
        if y.shape != (B,):
            raise ValueError(
                f"env must return one value per query: called with mixtures {tuple(w.shape)}, "
                f"scales {tuple(m.shape)} and steps {tuple(steps.shape)} it returned shape "
                f"{tuple(y.shape)}, not ({B},). Make it map (w [B, K], m [B], s [B]) -> [B] "
                "(e.g. drop a trailing axis of size 1)"
            )
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
        active = ~done & (spent + proposal.cost <= budget + tolerance)
        final, curve, report = _evaluate(strategy, env, proposal, k_noise, noise_sd, active)
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


#: Default campaign lengths above this are refused unless ``num_asks`` is given: a huge budget
#: (1e6 target runs, say, meant as "unlimited") is more often a slip than a wish.
MAX_DEFAULT_ASKS = 1_000_000


@functools.lru_cache(maxsize=64)
def _run_fn(strategy, treedef, static, num_asks, with_progress, options=True):
    run = functools.partial(_campaign, strategy, treedef, static, num_asks, with_progress)
    return jax.jit(run, compiler_options=compiler_options() if options else None)


def _num_asks(strategy: Strategy, budget: float, num_asks: int | None) -> int:
    if num_asks is None and isinstance(budget, jax.core.Tracer):
        raise ValueError(
            "a budget traced by jit or vmap needs num_asks=: the campaign is a scan whose "
            "length must be known when it is traced (strategy.default_num_asks(b) is the "
            "default for a budget b; rounds past the budget are inactive)"
        )
    n = strategy.default_num_asks(float(budget)) if num_asks is None else num_asks
    if num_asks is None and n > MAX_DEFAULT_ASKS:
        raise ValueError(
            f"a budget of {float(budget):g} target runs means {n:,} asks for {strategy.name} "
            f"(more than {MAX_DEFAULT_ASKS:,}): a campaign is one scan of that length. Give "
            "num_asks= to run that many (or fewer) on purpose, or a smaller budget"
        )
    if int(n) < 1:
        raise ValueError(f"num_asks must be >= 1; got {n}")
    return int(n)


def _cacheable(strategy: Strategy) -> Strategy:
    """``strategy`` with its checkpoints as a tuple of ints, checked to be hashable: the
    compiled campaign is cached per strategy (a list of checkpoints raised "unhashable type:
    'list'" from deep inside the cache)."""
    checkpoints = strategy.checkpoints
    if not (isinstance(checkpoints, tuple) and all(type(c) is int for c in checkpoints)):
        steps = np.asarray(checkpoints).ravel()
        if steps.size and not np.array_equal(steps, np.round(steps)):
            raise ValueError(f"strategy.checkpoints must be whole step counts; got {checkpoints}")
        strategy = strategy._replace(checkpoints=tuple(int(c) for c in steps))
    try:
        hash(strategy)
    except TypeError as error:
        raise ValueError(
            f"every field of a Strategy must be hashable, as the compiled campaign is cached "
            f"per strategy ({error}): give tuples, not lists or arrays"
        ) from None
    return strategy


def _check_budget(budget) -> None:
    if isinstance(budget, jax.core.Tracer):  # under the caller's jit / vmap: no value yet
        return
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
    strategy = _cacheable(strategy)
    dynamic, treedef, static = _split_env(env)
    n = _num_asks(strategy, budget, num_asks)
    args = (dynamic, budget, key, noise_sd)
    if progress is not None and _traced(args):
        raise ValueError(_PROGRESS_AT_TOP)
    run = _run_fn(strategy, treedef, static, n, progress is not None)

    def launch():
        try:
            return run(*args)
        except ValueError as error:
            # inside the caller's own jit (its arguments traced or not), XLA options are
            # refused, as only a top-level jit takes them: trace the campaign into the
            # caller's program without them
            if "top-level" not in str(error):
                raise
            if progress is not None:
                raise ValueError(_PROGRESS_AT_TOP) from None
            return _run_fn(strategy, treedef, static, n, False, options=False)(*args)

    return _relay.run(progress, n, launch, _training_function(env))


_PROGRESS_AT_TOP = (
    "progress= reports from a running program: call run_campaign at the top level (not "
    "inside your own jit or vmap) to use it"
)


def _traced(tree) -> bool:
    """Whether any leaf of ``tree`` is a tracer (we are inside the caller's jit or vmap)."""
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(tree))


def _closes_over_tracers(env, space) -> bool:
    """Whether ``env`` closes over a value traced by the caller (a ``vmap`` over a parameter
    of the world, say): not one of its array leaves, so only tracing it shows it."""
    from recipes_jax.objectives import Objective

    if isinstance(env, Objective):  # a training function on the host
        return False
    dtype = jnp.result_type(float)
    k = space.num_domains
    w = jnp.full((1, k), 1.0 / k, dtype)
    m, s = (jnp.full((1,), v, dtype) for v in space.target)
    try:
        closed = jax.make_jaxpr(env)(w, m, s)
    except Exception:  # not traceable with these inputs: the campaign reports it
        return False
    return _traced(closed.consts)


def _under_jit() -> bool:
    """Whether we are being traced into the caller's program (``jax.jit``, ``jax.eval_shape``,
    ``lax.scan`` ...), whether or not our own arguments are traced: there every operation is
    staged, so even one on constants comes back a tracer. (Not under a ``vmap`` alone.)"""
    return isinstance(jnp.zeros((), jnp.int32) + 0, jax.core.Tracer)


def _training_function(env) -> Callable | None:
    """The training function of ``env`` if it is one called on the host (an
    ``rj.objective``), else None."""
    from recipes_jax.objectives import Objective

    return env.train_and_eval if isinstance(env, Objective) else None


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
    options=True,
):
    options = compiler_options() if options else None  # a nested jit refuses XLA options

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
        return jax.jit(local, compiler_options=options)
    sharded = jax.shard_map(
        local,
        mesh=_mesh(num_devices),
        in_specs=(PartitionSpec(), PartitionSpec(), PartitionSpec("seeds"), PartitionSpec()),
        out_specs=PartitionSpec("seeds"),
        check_vma=False,
    )
    return jax.jit(sharded, compiler_options=options)


def _resolve_per_device(option: bool | None, num_devices: int) -> bool:
    """Whether a sweep over ``num_devices`` runs one single-device program per device."""
    if num_devices == 1:
        return False  # one program either way
    if option is None:
        return jax.default_backend() == "cpu"
    return bool(option)


class _Program(NamedTuple):
    """A prepared sweep: ``fn`` (jitted) applied to ``args``, once for the whole mesh, or once
    per device of this process with that device's arguments (``devices`` not None; the
    traces then form arrays over ``mesh_devices``, seeds in that order, every process's
    devices included)."""

    fn: Any
    args: Any  # one argument tuple, or one per device of this process
    devices: tuple | None
    mesh_devices: tuple | None = None


def _prepare_sweep(
    strategy,
    env,
    budget,
    keys,
    num_asks,
    noise_sd,
    devices,
    batch_size,
    with_progress=False,
    per_device_programs=None,
    under_jit=False,
    ahead_of_time=False,
):
    """(program, number of real seeds, progress callbacks per call). ``under_jit``: traced
    into the caller's program (:func:`_under_jit`), so without our XLA options;
    ``ahead_of_time``: for :func:`compile_sweep`, which needs the top level."""
    _check_budget(budget)
    strategy = _cacheable(strategy)
    keys = jnp.asarray(keys)
    if keys.ndim == 2 and keys.dtype == jnp.uint32:  # legacy keys: split(PRNGKey(0), n)
        with contextlib.suppress(TypeError, ValueError):  # not key data: refused below
            keys = jax.random.wrap_key_data(keys)
    if keys.ndim != 1 or not jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key):
        raise ValueError(
            "keys must be a 1-D array of typed PRNG keys, e.g. "
            "jax.random.split(jax.random.key(0), 64) (or legacy jax.random.PRNGKey keys, "
            f"[S, 2] uint32); got shape {tuple(keys.shape)}, dtype {keys.dtype}"
        )
    if keys.shape[0] == 0:
        raise ValueError("keys is empty: give one key per seed, e.g. split(key(0), 64)")
    dynamic, treedef, static = _split_env(env)
    num_devices = len(jax.devices()) if devices is None else int(devices)
    if not 1 <= num_devices <= len(jax.devices()):
        raise ValueError(f"devices must be in 1..{len(jax.devices())}; got {devices}")
    per_device = _resolve_per_device(per_device_programs, num_devices)
    # inside the caller's jit, eval_shape or vmap: a traced argument, or (what only matters
    # for programs compiled ahead of time) a tracer the environment closes over
    transformed = (
        under_jit
        or _traced((dynamic, budget, keys, noise_sd))
        or ((per_device or ahead_of_time) and _closes_over_tracers(env, strategy.space))
    )
    if transformed and ahead_of_time:
        raise ValueError(
            "compile_sweep compiles ahead of time, at the top level: inside your own jit or "
            "vmap, call sweep (it is traced into your program)"
        )
    if transformed and with_progress:
        raise ValueError(_PROGRESS_AT_TOP.replace("run_campaign", "sweep"))
    if transformed and jax.process_count() > 1:
        raise ValueError(
            "with several processes (jax.distributed), call sweep at the top level, not "
            "inside your own jit or vmap: each process launches its devices' share"
        )
    if transformed and num_devices > 1 and per_device_programs:
        raise ValueError(
            "per-device programs are compiled and launched one per device from the top "
            "level: inside your own jit or vmap, a sweep over several devices is one "
            "program partitioned over them (per_device_programs=None or False), or give "
            "devices=1"
        )
    # inside the caller's jit or vmap, several devices take one partitioned program
    per_device = per_device and not transformed
    n = _num_asks(strategy, budget, num_asks)
    if jax.process_count() > 1 and num_devices != len(jax.devices()):
        raise ValueError(
            "with several processes (jax.distributed), a sweep spans every global device: "
            f"leave devices=None (got devices={devices} of {len(jax.devices())})"
        )
    S = keys.shape[0]
    share = -(-S // num_devices)
    batch = share if batch_size is None else int(batch_size)
    if batch < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    batch = min(batch, share)  # a wider batch than a device's share would only pad
    padded = -S % (num_devices * batch)
    if padded:
        keys = jnp.concatenate([keys, jnp.broadcast_to(keys[:1], (padded,))])
    key_impl = jax.random.key_impl(keys)
    key_data = jax.random.key_data(keys)
    loops = _loops_seeds(env, num_devices)
    # one progress callback per ask of each looped seed, or of each vmapped batch of seeds
    local_devices = num_devices // jax.process_count()
    callbacks = local_devices * (keys.shape[0] // (num_devices * (1 if loops else batch))) * n
    if per_device:
        # the one-device program, compiled for each device: the same bits as on one device.
        # Seeds go to the devices in global order; each process runs its own devices' share
        # options= as a keyword in both calls: the cache keys positional and keyword apart
        fn = _sweep_fn(
            strategy, treedef, static, n, 1, batch, key_impl, with_progress, loops, options=True
        )
        chosen = tuple(jax.devices()[:num_devices])
        per = keys.shape[0] // num_devices
        # arrays made here, not Python floats: the devices' programs are called from worker
        # threads, where thread-local settings (jax.enable_x64) would type a float otherwise
        dtype = jnp.result_type(float)
        scalars = (jnp.asarray(budget, dtype), jnp.asarray(noise_sd, dtype))
        here = jax.process_index()
        mine = [(i, d) for i, d in enumerate(chosen) if d.process_index == here]
        args = tuple(
            jax.device_put(
                (dynamic, scalars[0], key_data[i * per : (i + 1) * per], scalars[1]), device
            )
            for i, device in mine
        )
        local = tuple(device for _, device in mine)
        return _Program(fn, args, local, chosen), S, callbacks
    if jax.process_count() > 1:
        # every process holds the same keys and environment: make the keys one global array
        # sharded over the seeds, and pass the rest as host values (replicated)
        host_keys = np.asarray(key_data)
        key_data = jax.make_array_from_callback(
            host_keys.shape,
            jax.sharding.NamedSharding(_mesh(num_devices), PartitionSpec("seeds")),
            lambda index: host_keys[index],
        )
        dynamic = [None if d is None else np.asarray(d) for d in dynamic]
    fn = _sweep_fn(
        strategy,
        treedef,
        static,
        n,
        num_devices,
        batch,
        key_impl,
        with_progress,
        loops,
        options=not under_jit,
    )
    return _Program(fn, (dynamic, budget, key_data, noise_sd), None), S, callbacks


#: Per-device executables of recent sweeps, by (program, device, argument types): each with
#: whether it was compiled in this process (only those can be loaded onto other devices).
_PER_DEVICE_CACHE: collections.OrderedDict = collections.OrderedDict()
_PER_DEVICE_CACHE_SIZE = 64
_PER_DEVICE_LOCK = threading.Lock()
_PERSISTENT_CACHE_HITS = threading.local()


def _count_persistent_cache_hit(event: str, **kwargs) -> None:
    if event == "/jax/compilation_cache/cache_hits":  # recorded in the compiling thread
        _PERSISTENT_CACHE_HITS.count = getattr(_PERSISTENT_CACHE_HITS, "count", 0) + 1


jax.monitoring.register_event_listener(_count_persistent_cache_hit)


def _compile(lowered) -> tuple[Any, bool]:
    """``lowered.compile()``, and whether it was compiled here (True) rather than read from
    JAX's persistent compilation cache (False, with ``JAX_COMPILATION_CACHE_DIR`` set)."""
    before = getattr(_PERSISTENT_CACHE_HITS, "count", 0)
    compiled = lowered.compile()
    return compiled, getattr(_PERSISTENT_CACHE_HITS, "count", 0) == before


def _argument_types(args) -> tuple:
    leaves, treedef = jax.tree_util.tree_flatten(args)
    return treedef, tuple(jax.typeof(leaf) for leaf in leaves)


def _compile_per_device(program: _Program, cached: bool) -> list:
    """One executable per device, all the same compiled program: compiled once (traced and
    lowered in this thread, which holds settings such as ``jax.enable_x64``), then loaded
    onto the other devices without recompiling (:func:`_load_on`).

    Only an executable compiled in this process is loaded elsewhere. One read from JAX's
    persistent compilation cache reloads into an executable that fails when run (jaxlib 0.10
    on CPU: "NOT_FOUND: Function ... not found", or another device waiting forever), and a
    loaded copy is itself deserialized, so neither is reloaded. When the first device's copy
    came from that cache, each other device's copy is compiled for it, which the cache
    answers too once it holds them (its keys name the device). Where loading fails (another
    JAX version), each device's copy is compiled as well, with a warning. Copies are
    compiled side by side in threads."""
    keys = [
        (program.fn, device, _argument_types(args))
        for device, args in zip(program.devices, program.args, strict=True)
    ]
    with _PER_DEVICE_LOCK:
        entries = [_PER_DEVICE_CACHE.get(k) if cached else None for k in keys]
    missing = [i for i, entry in enumerate(entries) if entry is None]
    if missing:
        source = next((e[0] for e in entries if e is not None and e[1]), None)
        if source is None and not any(entries):
            first = missing.pop(0)
            entries[first] = _compile(program.fn.lower(*program.args[first]))
            source = entries[first][0] if entries[first][1] else None
        loaded = None
        if missing and source is not None:
            try:
                loaded = [
                    (c, False) for c in _load_on(source, [program.devices[i] for i in missing])
                ]
            except Exception as error:  # any failure: fall back to compiling
                warnings.warn(
                    f"could not load the compiled sweep onto other devices ({error!r}); "
                    "compiling it once per device instead (same results, longer compilation)",
                    RuntimeWarning,
                    stacklevel=3,
                )
        if loaded is None and missing:
            lowered = [program.fn.lower(*program.args[i]) for i in missing]
            with concurrent.futures.ThreadPoolExecutor(len(lowered)) as pool:
                loaded = list(pool.map(_compile, lowered))
        for i, entry in zip(missing, loaded or [], strict=True):
            entries[i] = entry
    with _PER_DEVICE_LOCK:
        for k, entry in zip(keys, entries, strict=True):
            _PER_DEVICE_CACHE[k] = entry
            _PER_DEVICE_CACHE.move_to_end(k)
        while len(_PER_DEVICE_CACHE) > _PER_DEVICE_CACHE_SIZE:
            _PER_DEVICE_CACHE.popitem(last=False)
    return [executable for executable, _ in entries]


def _load_on(compiled, devices: list) -> list:
    """``compiled`` (a one-device ``jax.stages.Compiled``) loaded onto each of ``devices``:
    the same machine code, so the same bits, without compiling again.

    JAX binds an executable to the device it was compiled for, but its experimental
    serialization (``jax.experimental.serialize_executable``) can reload one under a new
    device assignment. This follows its ``serialize`` / ``deserialize_and_load`` with every
    device reference mapped to the new device, and with the objects that cannot be pickled
    (host callbacks, such as the progress relay's) passed by reference: the bytes never
    leave this process, and only these just-made bytes are unpickled (pickle runs code)."""
    if not devices:
        return []
    import pickle

    from jax._src import compiler
    from jax.experimental import serialize_executable as serialization

    unloaded = compiled._executable._unloaded_executable
    if unloaded is None or compiled._params.const_args:
        raise ValueError("this executable cannot be serialized")
    kept = [*unloaded.host_callbacks, *unloaded.keepalive]

    class Keeping(serialization._JaxPjrtPickler):
        def persistent_id(self, obj):
            for i, item in enumerate(kept):
                if obj is item:
                    return ("kept", i)
            return super().persistent_id(obj)

    args_info, in_tree = jax.tree_util.tree_flatten(compiled.args_info)
    with io.BytesIO() as file:
        Keeping(file, protocol=pickle.HIGHEST_PROTOCOL).dump(
            (unloaded, args_info, compiled._no_kwargs)
        )
        payload = file.getvalue()
    overrides = compiler_options()

    class Relocating(serialization._JaxPjrtUnpickler):
        def persistent_load(self, pid):
            (device,) = self.execution_devices
            if pid[0] == "kept":
                return kept[pid[1]]
            if pid[0] == "device":
                return device
            if pid[0] == "exec":
                options = compiler.get_compile_options(
                    1,
                    1,
                    device_assignment=np.asarray([[device]]),
                    env_options_overrides=overrides,
                    backend=self.backend,
                )
                return self.backend.deserialize_executable(
                    pid[1],
                    executable_devices=self.execution_devices,
                    compile_options=options,
                    host_callbacks=list(unloaded.host_callbacks),
                )
            return super().persistent_load(pid)

    loaded = []
    for device in devices:
        relocated, info, no_kwargs = Relocating(io.BytesIO(payload), device.client, [device]).load()
        loaded.append(
            jax.stages.Compiled(
                relocated.load(), [], in_tree.unflatten(info), compiled.out_tree, no_kwargs
            )
        )
    return loaded


def _launch_per_device(compiled: list, program: _Program) -> Trace:
    """Start every device's program (asynchronously) and join their traces into arrays
    sharded over the devices, seeds in device order."""
    # one thread per device: a program with host callbacks (progress) returns only when it
    # has run, so called one after another the devices would take turns
    with concurrent.futures.ThreadPoolExecutor(len(compiled)) as pool:
        outs = list(pool.map(lambda c, args: c(*args), compiled, program.args))
    sharding = jax.sharding.NamedSharding(
        Mesh(np.asarray(program.mesh_devices), ("seeds",)), PartitionSpec("seeds")
    )

    def join(*parts):  # every device's part has the same shape, other processes' too
        shape = (len(program.mesh_devices) * parts[0].shape[0], *parts[0].shape[1:])
        return jax.make_array_from_single_device_arrays(shape, sharding, list(parts))

    return jax.tree_util.tree_map(join, *outs)


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
    per_device_programs: bool | None = None,
    progress: Progress | None = None,
) -> Trace:
    """:func:`run_campaign` for many seeds at once: seeds sharded across ``devices`` (default:
    every visible device; with several hosts started under ``jax.distributed``, every global
    device); on each device, ``batch_size`` seeds at a time (default: all of that device's
    seeds in one batch), vmapped on GPUs and TPUs, looped on CPU.

    Two ways to use several devices (``per_device_programs``):

    - True (the default on CPU): each device runs the one-device program on its share of
      the seeds, compiled once (in each process) and loaded onto every device (about a
      second each). Every seed's trace is then bit for bit what one device gives, whatever the
      device count (``benchmarks/device_programs.py``: mfms_bo on 2 CPU devices compiled in
      20.1 s against 21.9 s for one partitioned program, and ran at the same speed).
    - False (the default on GPUs and TPUs): one program
      partitioned over the devices with ``shard_map``, compiled once. XLA optimizes a
      partitioned program differently (it turns other divisions by a broadcast into
      multiplications by a reciprocal), so GP strategies agree with one device only to the
      last bits (below).

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
    batched host function aside), and so do per-device programs on any number of CPU
    devices. On a GPU a seed's trace depends on its key and ``batch_size`` (the same
    ``batch_size`` gives the same bits whatever the number of seeds). With one partitioned
    program, random search and Hyperband traces are still bit for bit identical across
    device counts; GP strategies agree to ~1e-13 for small GPs and ~1e-9 at a realistic size
    (mfms_bo, 256-row buffer, 2 x 15 refits), and over a long campaign such last-bit
    differences steer some proposals apart (mfms_bo with its defaults on the built-in world,
    8 seeds x 30 asks, 1 vs 2 CPU devices: 3 seeds chose other runs from ask 25 on;
    ``benchmarks/results/device_programs_default_world.json``).

    Several hosts: start every process with ``jax.distributed.initialize(...)`` and call
    ``sweep`` with the same arguments (same keys) in each; seeds are sharded over every global
    device and every process gets the whole :class:`Trace` back (``devices`` must then be
    None). With per-device programs each process compiles the one-device program once and
    runs its own devices' seeds, so the traces are again one device's, bit for bit.

    Inside the caller's own ``jit`` or ``eval_shape`` (or a ``vmap``, over budgets say, with
    ``num_asks`` given) the sweep is traced into the caller's program, without our XLA:CPU
    options under ``jit``. Per-device programs are compiled and launched from the top level,
    so there several devices take the partitioned program (``per_device_programs=True`` is
    refused), and ``progress`` and several processes need the top level.

    Memory per device: on CPU one seed's working set (a ``batch_size``-wide vmap of it on
    GPUs and TPUs), plus the traces, which grow linearly in seeds.

    ``progress``: as in :func:`run_campaign`; ``total`` counts asks of each looped seed (on
    CPU, 64 seeds x 100 asks report 6,400) or of each vmapped batch (on a GPU, one batch of
    64 seeds x 100 asks reports 100), padding seeds included.

    ``keys``: one PRNG key per seed, [S] typed keys (``jax.random.split(jax.random.key(0),
    S)``); legacy ``jax.random.PRNGKey`` keys, [S, 2] uint32, are accepted too.

    Returns a :class:`Trace` with a leading seed axis [S, ...] on every field.
    """
    program, S, callbacks = _prepare_sweep(
        strategy,
        env,
        budget,
        keys,
        num_asks,
        noise_sd,
        devices,
        batch_size,
        progress is not None,
        per_device_programs,
        under_jit=_under_jit(),
    )
    if program.devices is None:
        compiled = [program.fn]  # jit compiles it on the first call, and caches it
    else:
        compiled = _compile_per_device(program, cached=True)
    trains = _training_function(env)
    return CompiledSweep(compiled, program, S, callbacks, trains=trains)(progress)


class CompiledSweep:
    """A :func:`sweep` compiled ahead of time: call it to run (returns the :class:`Trace`,
    not yet blocked on, unless it calls a training function ``trains`` on the host);
    :meth:`memory` reports XLA's memory plan for one call."""

    def __init__(
        self,
        compiled: list,
        program: _Program,
        num_seeds: int,
        callbacks: int = 0,
        *,
        trains: Callable | None = None,
    ):
        self._compiled, self._program, self._num_seeds = compiled, program, num_seeds
        self._callbacks, self._trains = callbacks, trains

    def __call__(self, progress: Progress | None = None) -> Trace:
        """Run the sweep; ``progress`` (only if compiled with ``progress=True``) as in
        :func:`sweep`."""
        if progress is not None and not self._callbacks:
            raise ValueError(
                "this sweep was compiled without progress reporting: "
                "compile_sweep(..., progress=True)"
            )
        compiled, program = self._compiled, self._program
        if program.devices is None:
            launch = lambda: compiled[0](*program.args)
        else:
            launch = lambda: _launch_per_device(compiled, program)
        trace = _relay.run(progress, self._callbacks, launch, self._trains)
        return _unpad(trace, self._num_seeds)

    @property
    def per_device_programs(self) -> bool:
        """True where every device runs its own copy of the one-device program, False where
        one partitioned program spans the devices (or there is one device)."""
        return self._program.devices is not None

    def memory(self) -> dict[str, int] | None:
        """Bytes XLA plans per call on each device: ``temp`` (working buffers), ``argument``,
        ``output`` and ``code``; None where the backend does not report them. (With
        per-device programs every device runs the same program, so these are one device's.)"""
        analysis = self._compiled[0].memory_analysis()
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
    per_device_programs: bool | None = None,
    progress: bool = False,
) -> tuple[CompiledSweep, float]:
    """Compile :func:`sweep` ahead of time, for benchmarks that time compilation separately.

    Same arguments as :func:`sweep`, but ``progress`` is a flag: True compiles in the per-ask
    host callback so that ``run(progress=callback)`` can report. Returns ``(run,
    compile_seconds)``: ``run()`` executes the compiled sweep and returns its :class:`Trace`
    (not yet blocked on unless reporting), identical to ``sweep(...)`` with the same
    arguments; ``run.memory()`` gives XLA's memory plan.
    """
    program, S, callbacks = _prepare_sweep(
        strategy,
        env,
        budget,
        keys,
        num_asks,
        noise_sd,
        devices,
        batch_size,
        progress,
        per_device_programs,
        under_jit=_under_jit(),
        ahead_of_time=True,
    )
    start = time.perf_counter()
    if program.devices is None:
        compiled = [program.fn.lower(*program.args).compile()]
    else:
        compiled = _compile_per_device(program, cached=False)
    seconds = time.perf_counter() - start
    run = CompiledSweep(
        compiled, program, S, callbacks if progress else 0, trains=_training_function(env)
    )
    return run, seconds
