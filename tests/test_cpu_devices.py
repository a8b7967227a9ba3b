"""rj.use_cpu_cores: one JAX CPU device per core, asked for before JAX starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from recipes_jax import cpu_devices

SCRIPT = textwrap.dedent(
    """
    import json, jax, numpy as np, recipes_jax as rj
    out = {}
    try:
        rj.use_cpu_cores(0)
    except ValueError as e:
        out["zero"] = str(e)
    out["set"] = rj.use_cpu_cores(3)
    out["devices"] = len(jax.devices())
    out["again"] = rj.use_cpu_cores(3)
    try:
        rj.use_cpu_cores(2)
    except RuntimeError as e:
        out["late"] = str(e)
    out["lenient"] = rj.use_cpu_cores(2, strict=False)
    world = rj.worlds.default()
    truth = world.truth("eval/RedPajamaStackExchange/CrossEntropyLoss")
    keys = jax.random.split(jax.random.key(0), 5)
    strategy = rj.random_search(world.space)
    spread = rj.sweep(strategy, truth, 3.0, keys)
    one = rj.sweep(strategy, truth, 3.0, keys, devices=1)
    out["same"] = bool(np.array_equal(spread.recommendation, one.recommendation))
    compiled = lambda **kw: rj.campaign.compile_sweep(strategy, truth, 3.0, keys, **kw)[0]
    out["per_device"] = [
        compiled().per_device_programs,
        compiled(per_device_programs=False).per_device_programs,
        compiled(devices=1).per_device_programs,
    ]
    out["shape"] = list(spread.recommendation.shape)
    print(json.dumps(out))
    """
)


def _run(script: str, **env) -> dict:
    base = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**base, "JAX_PLATFORMS": "cpu", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_use_cpu_cores_before_jax_starts_gives_that_many_devices_and_sweeps_use_them():
    out = _run(SCRIPT)
    assert "num_devices must be >= 1" in out["zero"]
    assert out["set"] == out["devices"] == out["again"] == 3
    assert "already started with 3 CPU device(s)" in out["late"]
    assert "XLA_FLAGS=--xla_force_host_platform_device_count=2" in out["late"]
    assert out["lenient"] == 3  # strict=False keeps what JAX has
    assert out["shape"] == [5, 3, 5] and out["same"]  # 5 seeds over 3 devices, unpadded
    assert out["per_device"] == [True, False, False]  # CPU default; asked; one device


def test_use_cpu_cores_keeps_a_device_count_forced_by_xla_flags():
    script = "import json, jax, recipes_jax as rj\n"
    script += "print(json.dumps([rj.use_cpu_cores(), len(jax.devices())]))"
    forced = _run(script, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    assert forced == [2, 2]
    default = _run(script)
    assert default == [cpu_devices.core_count()] * 2


def test_core_count_is_positive():
    assert cpu_devices.core_count() >= 1
    with pytest.raises(ValueError, match="num_devices"):
        cpu_devices.use_cpu_cores(-1)
