"""Campaigns: run_campaign (one lax.scan), sweep (vmap + sharding), budgets, determinism, and
the acceptance check that MFMS-BO beats random search on the built-in world."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import recipes_jax as rj
from recipes_jax import analysis, campaign
from recipes_jax.progress import ProgressBar
from tests.conftest import small_design
from tests.test_strategies import LEAN, METRIC, all_strategies, check_proposal, shared


def check_trace(trace, space, budget, T):
    K = space.num_domains
    assert trace.cost.shape == (T,)
    assert trace.recommendation.shape == (T, K)
    assert trace.proposals.mixture.shape == (T, K)
    assert trace.values.shape == (T,) and trace.active.shape == (T,)
    cost, active = np.asarray(trace.cost), np.asarray(trace.active)
    assert np.all(np.diff(cost) >= 0) and cost[-1] <= budget * (1 + 1e-6)
    # spending ends at the first proposal that does not fit: no active row after an inactive
    if not active.all():
        first = int(np.argmin(active))
        assert not active[first:].any()
        assert np.all(cost[first:] == cost[first - 1] if first else cost[first:] == 0)
    np.testing.assert_allclose(
        np.diff(cost, prepend=0.0), np.where(active, trace.proposals.cost, 0.0), rtol=1e-6
    )
    assert np.all(np.isnan(np.asarray(trace.values)[~active]))
    assert np.all(np.isfinite(np.asarray(trace.values)[active]))
    w = np.asarray(trace.recommendation)
    assert np.all(w >= 0) and np.allclose(w.sum(-1), 1.0)
    for t in range(T):
        check_proposal(space, jax.tree_util.tree_map(lambda a, i=t: a[i], trace.proposals))
    # asks are numbered in order; once spending ends the state is frozen
    np.testing.assert_array_equal(trace.proposals.index[active], np.arange(active.sum()))


@pytest.mark.slow
def test_every_strategy_runs_under_run_campaign_and_sweep(world, truth):
    """mfms_bo's run_campaign and sweep traces are checked by
    test_same_key_same_trace_bit_for_bit_and_sweep_matches_run_campaign; the other GP
    strategies share its campaign code, so sweeping them checks them (compiling each twice
    would cost a minute of the suite)."""
    space, budget = world.space, 2.5
    with jax.enable_x64(True):
        for strategy in all_strategies(space):
            if strategy.name == "mfms_bo":
                continue
            T = 8
            if strategy.observe is None:
                trace = rj.run_campaign(strategy, truth, budget, jax.random.key(0), num_asks=T)
                check_trace(trace, space, budget, T)
            traces = rj.sweep(
                strategy, truth, budget, jax.random.split(jax.random.key(1), 3), num_asks=T
            )
            assert traces.cost.shape == (3, T)
            for seed in range(3):
                one = jax.tree_util.tree_map(lambda a, i=seed: a[i], traces)
                check_trace(one, space, budget, T)


@pytest.mark.slow
def test_same_key_same_trace_bit_for_bit_and_sweep_matches_run_campaign(world, truth):
    space = world.space
    with jax.enable_x64(True):
        strategy = shared(space, "mfms_bo")
        a = rj.run_campaign(strategy, truth, 1.0, jax.random.key(7), num_asks=8)
        check_trace(a, space, 1.0, 8)
        b = rj.run_campaign(strategy, truth, 1.0, jax.random.key(7), num_asks=8)
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
            np.testing.assert_array_equal(x, y)
        c = rj.run_campaign(strategy, truth, 1.0, jax.random.key(8), num_asks=8)
        assert not np.array_equal(a.proposals.mixture, c.proposals.mixture)
        keys = jnp.stack([jax.random.key(7), jax.random.key(8), jax.random.key(9)])
        # batches of 2 over 3 seeds: the last batch is padded
        swept = rj.sweep(strategy, truth, 1.0, keys, num_asks=8, batch_size=2)
        assert swept.cost.shape == (3, 8)
        for seed in range(3):
            check_trace(jax.tree_util.tree_map(lambda v, i=seed: v[i], swept), space, 1.0, 8)
        if jax.default_backend() == "cpu":
            # one CPU device loops over seeds, whatever the batch width: each is
            # run_campaign, bit for bit
            for seed, single in ((0, a), (1, c)):
                for x, y in zip(
                    jax.tree_util.tree_leaves(swept), jax.tree_util.tree_leaves(single), strict=True
                ):
                    np.testing.assert_array_equal(x[seed], y)
        else:
            # the design is exact; model-driven asks agree up to batched-vs-unbatched rounding
            np.testing.assert_array_equal(swept.proposals.mixture[0, :3], a.proposals.mixture[:3])
            np.testing.assert_allclose(swept.cost[1], c.cost, rtol=1e-6)


def test_learning_curves_reach_the_strategy_and_the_trace(world, truth):
    with jax.enable_x64(True):
        strategy = shared(world.space, "mfms_bo")
        trace = rj.run_campaign(strategy, truth, 1.0, jax.random.key(0), num_asks=8)
        curves, steps = np.asarray(trace.curves), np.asarray(trace.proposals.steps)
        assert curves.shape == (8, 3)
        reached = np.asarray(strategy.checkpoints)[None, :] < steps[:, None]
        assert np.array_equal(np.isfinite(curves), reached & np.asarray(trace.active)[:, None])
        # the truth is what the curve reports
        for t in range(8):
            for c, s in enumerate(strategy.checkpoints):
                if reached[t, c]:
                    expect = truth(
                        trace.proposals.mixture[t][None],
                        trace.proposals.scale[t][None],
                        jnp.asarray([float(s)]),
                    )[0]
                    np.testing.assert_allclose(curves[t, c], expect, rtol=1e-12)


def test_budget_masking_and_noise(world, truth):
    space = world.space
    strategy = rj.random_search(space)
    trace = rj.run_campaign(strategy, truth, 0.5, jax.random.key(0), num_asks=3)
    assert not np.asarray(trace.active).any() and float(trace.cost[-1]) == 0.0
    np.testing.assert_allclose(trace.recommendation, np.full((3, 5), 0.2))
    clean = rj.run_campaign(strategy, truth, 3.0, jax.random.key(0))
    noisy = rj.run_campaign(strategy, truth, 3.0, jax.random.key(0), noise_sd=0.01)
    assert clean.values.shape == (3,)  # random search: budget / target cost asks
    diff = np.asarray(noisy.values - clean.values)
    assert np.all(diff != 0) and np.all(np.abs(diff) < 0.06)
    with pytest.raises(ValueError, match="budget"):
        rj.run_campaign(strategy, truth, 0.0, jax.random.key(0))
    with pytest.raises(ValueError, match="PRNG keys"):  # [4, 2] uint32 is legacy keys: taken
        rj.sweep(strategy, truth, 1.0, jnp.zeros((4, 3), jnp.uint32))
    with pytest.raises(ValueError, match="PRNG keys"):
        rj.sweep(strategy, truth, 1.0, jnp.zeros(4))


def test_progress_reports_every_ask_and_leaves_results_unchanged(world, truth):
    strategy = rj.random_search(world.space)
    calls = []
    trace = rj.run_campaign(
        strategy, truth, 3.0, jax.random.key(0), progress=lambda d, n: calls.append((d, n))
    )
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3), (3, 3)]
    plain = rj.run_campaign(strategy, truth, 3.0, jax.random.key(0))
    np.testing.assert_array_equal(trace.recommendation, plain.recommendation)
    keys = jax.random.split(jax.random.key(1), 5)
    stream = io.StringIO()
    bar = ProgressBar("rs", stream=stream)
    swept = rj.sweep(strategy, truth, 3.0, keys, batch_size=2, progress=bar)
    # 5 seeds padded to 3 batches of 2, x 3 asks: CPU loops over each batch's seeds
    total = 18 if jax.default_backend() == "cpu" else 9
    assert (bar.done, bar.total) == (total, total)
    lines = stream.getvalue().splitlines()
    assert lines[-1].startswith(f"rs [{'#' * 30}] {total}/{total} asks") and len(lines) == 5
    plain = rj.sweep(strategy, truth, 3.0, keys, batch_size=2)
    np.testing.assert_array_equal(swept.recommendation, plain.recommendation)
    run, _ = campaign.compile_sweep(strategy, truth, 3.0, keys, batch_size=2)
    with pytest.raises(ValueError, match="progress=True"):
        run(progress=bar)


def test_a_simulator_is_an_environment(world):
    sim = rj.Simulator(small_design(world, runs=8), METRIC, clamp=True)
    trace = rj.run_campaign(rj.hyperband(world.space), sim, 2.0, jax.random.key(0))
    active = np.asarray(trace.active)
    assert active.sum() > 50
    values = np.asarray(trace.values)[active]
    assert np.all(np.isfinite(values))
    expect = sim(
        trace.proposals.mixture[active],
        trace.proposals.scale[active],
        trace.proposals.steps[active],
    )
    np.testing.assert_allclose(values, expect, rtol=1e-4)  # float32: batch of 1 vs of 109


@pytest.mark.slow
def test_mfms_bo_beats_random_search_on_the_built_in_world(world, truth):
    """Acceptance: median final regret over 16 seeds at an equal budget (3 target runs)."""
    space, budget = world.space, 3.0
    with jax.enable_x64(True):
        optimum = analysis.find_optimum(truth, 5, *space.target, jax.random.key(0))
        keys = jax.random.split(jax.random.key(1), 16)
        lean = {**LEAN, "capacity": 64, "num_candidates": 256, "fit_steps": 8, "refine_steps": 10}
        regrets = {}
        for strategy in (rj.random_search(space), rj.mfms_bo(space, num_asks=20, **lean)):
            traces = rj.sweep(strategy, truth, budget, keys)
            assert float(traces.cost.max()) <= budget * (1 + 1e-6)
            r = analysis.regret(truth, traces.recommendation[:, -1], *space.target, optimum.value)
            regrets[strategy.name] = np.asarray(r)
    med_bo, med_rs = np.median(regrets["mfms_bo"]), np.median(regrets["random_search"])
    print(f"median final regret: mfms_bo {med_bo:.4f}, random_search {med_rs:.4f}")
    assert med_bo < med_rs


#: mfms_bo settings small enough for the 4-device subprocess below (a 3-run design, so 6
#: asks reach the GP)
SHARDED_MFMS = dict(
    num_initial=3,
    capacity=32,
    num_candidates=64,
    top_k=2,
    refine_steps=3,
    fit_starts=1,
    fit_steps=3,
    recommend_candidates=64,
)

#: What the sharding scripts record of a sweep, per strategy.
SWEEP_FIELDS = textwrap.dedent(
    """
    def fields(traces):
        return {
            "cost": np.asarray(traces.cost).tolist(),
            "recommendation": np.asarray(traces.recommendation).tolist(),
            "scale": np.asarray(traces.proposals.scale).tolist(),
            "steps": np.asarray(traces.proposals.steps).tolist(),
            "active": np.asarray(traces.active).tolist(),
        }
    """
)

MULTI_DEVICE = SWEEP_FIELDS + textwrap.dedent(
    """
    import json, sys, warnings
    import jax, numpy as np, recipes_jax as rj
    from recipes_jax import campaign
    # per-device programs must be loaded, not recompiled: the fallback warns
    warnings.filterwarnings("error", message="could not load the compiled sweep")
    path, settings = sys.argv[1], json.loads(sys.argv[2])
    world = rj.worlds.default()
    truth = world.truth("eval/RedPajamaStackExchange/CrossEntropyLoss")
    assert len(jax.devices()) == 4, jax.devices()
    keys = jax.random.split(jax.random.key(3), 7)  # not a multiple of 4 x 2: padded

    def difference(a, b):
        return [
            float(np.nanmax(np.abs(np.asarray(x, float) - np.asarray(y, float)), initial=0))
            for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))
        ]

    out, one_device = {}, {}
    with jax.enable_x64(True):
        hyperband = rj.hyperband(world.space)
        for strategy in (hyperband, rj.mfms_bo(world.space, **settings)):
            sweep = lambda **kw: rj.sweep(
                strategy, truth, 1.0, keys, num_asks=6, batch_size=2, **kw
            )
            one, four, partitioned = sweep(devices=1), sweep(), sweep(per_device_programs=False)
            one_device[strategy.name] = one
            assert four.cost.sharding.num_devices == 4, four.cost.sharding
            out[strategy.name] = {
                "one": fields(one),
                "four": fields(four),
                "partitioned": fields(partitioned),
                "four_difference": difference(one, four),
                "partitioned_difference": difference(one, partitioned),
            }
        # inside the caller's jit: one partitioned program (per-device ones need the top level)
        inside = jax.jit(
            lambda k: rj.sweep(hyperband, truth, 1.0, k, num_asks=6, batch_size=2)
        )(keys)
        out["inside_jit_difference"] = difference(one_device["hyperband"], inside)
        # a vmap whose traced value reaches the sweep only through the env's closure
        scaled = jax.vmap(
            lambda c: rj.sweep(
                hyperband, lambda w, m, s: truth(w, m, s) * c, 1.0, keys, num_asks=6,
                batch_size=2,
            ).values
        )(jax.numpy.array([1.0, 2.0]))
        out["vmap_closure_difference"] = [
            difference(one_device["hyperband"].values, scaled[0])[0],
            difference(2 * scaled[0], scaled[1])[0],
        ]
        try:
            jax.jit(
                lambda k: rj.sweep(hyperband, truth, 1.0, k, num_asks=6, per_device_programs=True)
            )(keys)
            out["per_device_inside_jit_refused"] = False
        except ValueError as error:
            out["per_device_inside_jit_refused"] = "partitioned over them" in str(error)
        # where loading onto other devices fails, each device compiles its copy: same bits
        # (compiled, not read from the tests' persistent compilation cache: then no loading)
        jax.config.update("jax_enable_compilation_cache", False)
        def broken(compiled, devices):
            raise RuntimeError("simulated")
        campaign._load_on, campaign._PER_DEVICE_CACHE = broken, type(campaign._PER_DEVICE_CACHE)()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fallback = rj.sweep(hyperband, truth, 1.0, keys, num_asks=6, batch_size=2)
        out["fallback"] = {
            "warned": any("compiling it once per device" in str(w.message) for w in caught),
            "difference": difference(one_device["hyperband"], fallback),
        }
    with open(path, "w") as f:
        json.dump(out, f)
    """
)

MULTI_PROCESS = SWEEP_FIELDS + textwrap.dedent(
    """
    import json, sys
    import jax
    process_id, port, path, settings = sys.argv[1:5]
    jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=int(process_id))
    import numpy as np, recipes_jax as rj
    assert jax.process_count() == 2 and len(jax.devices()) == 4, jax.devices()
    world = rj.worlds.default()
    truth = world.truth("eval/RedPajamaStackExchange/CrossEntropyLoss")
    keys = jax.random.split(jax.random.key(3), 7)  # padded to 4 devices x batch 2
    sweep = lambda strategy, **kw: fields(
        rj.sweep(strategy, truth, 1.0, keys, num_asks=6, batch_size=2, **kw)
    )
    with jax.enable_x64(True):  # as the reference
        out = {
            # per-device programs (the default on CPU): each process runs its 2 devices' seeds
            "mfms_bo": sweep(rj.mfms_bo(world.space, **json.loads(settings))),
            # one partitioned program over both processes' devices
            "hyperband": sweep(rj.hyperband(world.space), per_device_programs=False),
        }
    with open(f"{path}.{process_id}", "w") as f:
        json.dump(out, f)
    """
)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _cpu_devices_env(num_devices: int) -> dict:
    # the suite's other XLA flags stay (tests/conftest.py); only the device count is ours
    device_count = "--xla_force_host_platform_device_count"
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(device_count)]
    return dict(
        os.environ,
        XLA_FLAGS=" ".join([*flags, f"{device_count}={num_devices}"]),
        JAX_PLATFORMS="cpu",
    )


@pytest.mark.slow
def test_sweep_shards_seeds_over_devices_and_processes_with_the_same_results(tmp_path):
    """The same 7 seeds swept on one device, on 4 CPU devices of one process (Hyperband and
    mfms_bo; per-device programs, the default, and one partitioned program), and on 2
    processes x 2 CPU devices started with jax.distributed (mfms_bo with per-device programs,
    Hyperband with one partitioned program; every process gets every seed's trace), all at
    once in fresh processes. Per-device programs give one device's traces bit for bit, in one
    process or several (the executable loaded onto each device, or, where that fails,
    compiled for each). One partitioned program chooses the same runs; no model: bit for bit;
    GP strategy: values equal to the last bits; inside the caller's jit a sweep is that
    program. (The one-device sweeps run in the 4-device process: every sharded run is checked
    against one reference.)"""
    settings = json.dumps(SHARDED_MFMS)
    four_path, port, path = tmp_path / "four.json", str(_free_port()), str(tmp_path / "out")
    popen = lambda args, devices: subprocess.Popen(
        [sys.executable, "-c", *args],
        env=_cpu_devices_env(devices),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    procs = [popen([MULTI_DEVICE, str(four_path), settings], 4)]
    procs += [popen([MULTI_PROCESS, str(i), port, path, settings], 2) for i in range(2)]
    try:
        for proc in procs:
            _, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err[-3000:]
    except subprocess.TimeoutExpired:
        pytest.fail("a sharded sweep ran past 600 s: hung?")
    finally:
        for proc in procs:
            proc.kill()
    four = json.loads(four_path.read_text())
    first, second = (json.loads((tmp_path / f"out.{i}").read_text()) for i in range(2))
    assert first == second and sorted(first) == ["hyperband", "mfms_bo"]
    assert first["mfms_bo"] == four["mfms_bo"]["one"], "2 processes differ from one device"
    for name, tol in (("hyperband", 0.0), ("mfms_bo", 1e-12)):
        one = four[name]["one"]
        assert np.shape(one["cost"]) == (7, 6)
        assert four[name]["four"] == one, f"{name}: per-device programs differ from one device"
        assert max(four[name]["four_difference"]) == 0.0, four[name]["four_difference"]
        assert max(four[name]["partitioned_difference"]) <= tol, four[name]
        for sharded in [four[name]["partitioned"], *([first[name]] if name == "hyperband" else [])]:
            for field in ("scale", "steps", "active"):
                assert sharded[field] == one[field], f"{name}: other runs than on one device"
            for field in ("cost", "recommendation"):
                np.testing.assert_allclose(sharded[field], one[field], rtol=0, atol=tol)
    assert max(four["inside_jit_difference"]) == 0.0, four["inside_jit_difference"]
    assert max(four["vmap_closure_difference"]) == 0.0, four["vmap_closure_difference"]
    assert four["per_device_inside_jit_refused"], "per-device programs inside a jit ran"
    assert four["fallback"]["warned"], "the fallback to one compile per device did not warn"
    assert max(four["fallback"]["difference"]) == 0.0, four["fallback"]


PERSISTENT_CACHE_SWEEP = SWEEP_FIELDS + textwrap.dedent(
    """
    import json
    import jax, numpy as np, recipes_jax as rj
    hits = []
    jax.monitoring.register_event_listener(
        lambda event, **kw: hits.append(event) if event.endswith("/cache_hits") else None
    )
    assert len(jax.devices()) == 2, jax.devices()
    world = rj.worlds.default()
    truth = world.truth("eval/RedPajamaStackExchange/CrossEntropyLoss")
    keys = jax.random.split(jax.random.key(5), 4)
    with jax.enable_x64(True):
        traces = rj.sweep(rj.hyperband(world.space), truth, 1.0, keys, num_asks=6)
    print(json.dumps({"traces": fields(traces), "cache_hits": len(hits)}))
    """
)


def test_per_device_sweeps_run_from_jax_s_persistent_compilation_cache(tmp_path):
    """With JAX's persistent compilation cache on (``JAX_COMPILATION_CACHE_DIR``), a 2-device
    sweep in a second process reads its program from the cache. Such an executable cannot be
    reloaded onto the other device (jaxlib: "NOT_FOUND: Function ... not found" when run, or
    a hang), so each device's copy comes from the cache or is compiled: the second and third
    processes run, and give the first one's traces bit for bit."""
    cache = {
        "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "cache"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    }
    runs = [_run_on_cpu_devices(PERSISTENT_CACHE_SWEEP, 2, 300, cache) for _ in range(3)]
    # the later processes read from the cache (the first one filled it)
    assert runs[1]["cache_hits"] > 0 and runs[2]["cache_hits"] > 0, runs
    assert runs[1]["traces"] == runs[0]["traces"] == runs[2]["traces"]


def test_a_sweep_of_every_gp_strategy_makes_no_batched_lapack_call(world, truth):
    """jaxlib 0.10 can deadlock when two batched LAPACK calls run at once, even on one device
    (recipes_jax.linalg): in a vmapped campaign (a caller's vmap, or a one-device sweep of a
    batched host objective; CPU sweeps otherwise loop) every Cholesky and triangular solve
    must hold a single matrix."""
    from tests.test_linalg import _lapack_operand_shapes

    space = world.space
    strategies = [shared(space, n) for n in ("single_fidelity_bo", "mf_bo_steps", "mfms_bo")]
    strategies.append(rj.mfms_bo(space, num_initial=3, acquisition="kg", **LEAN))
    keys = jax.random.split(jax.random.key(0), 3)
    dynamic, treedef, static = campaign._split_env(truth)
    with jax.enable_x64(True):
        for strategy in strategies:
            # the un-jitted campaign of one seed (run_campaign jits it, with compiler options)
            campaign_of = lambda k, s=strategy: campaign._campaign(
                s, treedef, static, 4, False, dynamic, 2.5, k, 0.0
            )
            jaxpr = jax.make_jaxpr(jax.vmap(campaign_of))(keys)
            shapes = _lapack_operand_shapes(jaxpr.jaxpr)
            assert shapes, strategy.name
            batched = [(p, s) for p, s in shapes if len(s) != 2]
            assert not batched, (strategy.name, batched)


def _run_on_cpu_devices(
    script: str, num_devices: int, timeout: float, extra_env: dict | None = None
) -> dict:
    """Run ``script`` in a fresh process that sees ``num_devices`` CPU devices (and
    ``extra_env`` in its environment); returns the JSON object on its last output line. Past
    ``timeout`` seconds the test fails (a hang)."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", script],
            env={**_cpu_devices_env(num_devices), **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"a script on {num_devices} CPU devices ran past {timeout} s: hung?")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


REALISTIC_MULTI_DEVICE = textwrap.dedent(
    """
    import json, jax, numpy as np, recipes_jax as rj
    world = rj.worlds.default()
    truth = world.truth("eval/RedPajamaStackExchange/CrossEntropyLoss")
    keys = jax.random.split(jax.random.key(5), 4)
    with jax.enable_x64(True):
        strategy = rj.single_fidelity_bo(world.space, num_candidates=256, recommend_candidates=256)
        two = rj.sweep(strategy, truth, 3.0, keys, num_asks=6, batch_size=2)
        one = rj.sweep(strategy, truth, 3.0, keys, num_asks=6, devices=1, batch_size=2)
    print(json.dumps({
        "same_runs": bool(np.array_equal(one.proposals.scale, two.proposals.scale)
                          and np.array_equal(one.proposals.steps, two.proposals.steps)),
        "recommendation": float(np.max(np.abs(np.asarray(one.recommendation)
                                              - np.asarray(two.recommendation)))),
    }))
    """
)


@pytest.mark.slow
def test_sweep_of_a_full_size_gp_on_two_cpu_devices_does_not_hang():
    """A GP strategy at a realistic size (a 256-candidate single-fidelity BO, whose Cholesky
    factors are large enough for jaxlib to split batches over its thread pool) on 2 CPU
    devices. Before the per-device loop over seeds, fit starts and line-search points
    (recipes_jax.batching) this deadlocked; the timeout turns a regression into a failure.
    Per-device programs (the default on CPU) give one device's results bit for bit."""
    out = _run_on_cpu_devices(REALISTIC_MULTI_DEVICE, 2, timeout=300)
    assert out["same_runs"], "2 devices chose other runs than 1 device"
    assert out["recommendation"] == 0.0, out


def test_per_device_programs_default_and_the_device_rule_across_processes(monkeypatch):
    """One device: one program either way. Several: per-device programs by default on CPU,
    in one process or several; one partitioned program on GPUs and TPUs or when asked. With
    several processes a sweep must span every global device, whichever way: a clear error."""
    resolve = campaign._resolve_per_device
    assert resolve(None, 1) is False and resolve(True, 1) is False
    assert resolve(None, 4) is (jax.default_backend() == "cpu")
    assert resolve(False, 4) is False and resolve(True, 4) is True
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    assert resolve(None, 4) is (jax.default_backend() == "cpu")
    devices = jax.devices()
    monkeypatch.setattr(jax, "devices", lambda: devices * 2)  # 2 processes' devices
    world = rj.worlds.default()
    strategy, truth = rj.random_search(world.space), world.truth(0)
    keys = jax.random.split(jax.random.key(0), 2)
    for per_device in (None, True, False):
        with pytest.raises(ValueError, match="a sweep spans every global device"):
            rj.sweep(strategy, truth, 1.0, keys, devices=1, per_device_programs=per_device)
