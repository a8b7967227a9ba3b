"""Shared test fixtures: where the shared data lives, and small tables drawn from worlds."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

DATA = Path(
    os.environ.get("RECIPES_JAX_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
_CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"
_MIN_COMPILE_TIME_ENV = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"
#: XLA's CPU backend at its lowest optimization level: the suite is compile-bound (a few
#: hundred distinct programs, each run a handful of times), and LLVM's optimizations are most
#: of a compile. Set for the tests only (never the benchmarks or the library); an
#: ``XLA_FLAGS`` that already chooses a level is left alone.
_TEST_XLA_FLAG = "--xla_backend_optimization_level=0"


def _set_for_the_run(config, name: str, value: str) -> None:
    """Set environment variable ``name`` until :func:`pytest_unconfigure` restores it."""
    config._recipes_jax_saved_env.setdefault(name, os.environ.get(name))
    os.environ[name] = value


def pytest_configure(config):
    """One fresh JAX compilation cache per test run, shared by the xdist workers and the
    subprocesses and notebook kernels the tests start (they inherit the environment), so a
    program compiled by two of them is compiled once. It starts empty and is deleted at the
    end: nothing carries over between runs. An existing setting is left alone.

    It keeps every program, not only those that took a second to compile (JAX's default):
    op-by-op calls outside ``jit`` compile one small program per primitive and shape, about
    8,000 of them in a run of the suite, 400 of its 1,240 compile-seconds (2 cores).

    Everything compiles at XLA's lowest optimization level (``_TEST_XLA_FLAG``)."""
    if hasattr(config, "workerinput"):
        return
    config._recipes_jax_saved_env = {}
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_backend_optimization_level" not in flags:
        _set_for_the_run(config, "XLA_FLAGS", f"{flags} {_TEST_XLA_FLAG}".strip())
    if _CACHE_ENV in os.environ:
        return
    config._recipes_jax_cache = tempfile.mkdtemp(prefix="recipes-jax-test-jax-cache-")
    _set_for_the_run(config, _CACHE_ENV, config._recipes_jax_cache)
    if _MIN_COMPILE_TIME_ENV not in os.environ:
        _set_for_the_run(config, _MIN_COMPILE_TIME_ENV, "0")


def without_test_xla_flag(environ) -> dict:
    """A copy of ``environ`` without the suite's XLA optimization flag (``_TEST_XLA_FLAG``):
    for a subprocess that must compile as a user's would."""
    env = dict(environ)
    flags = env.pop("XLA_FLAGS", "").replace(_TEST_XLA_FLAG, "").split()
    if flags:
        env["XLA_FLAGS"] = " ".join(flags)
    return env


def pytest_unconfigure(config):
    """Delete the run's compilation cache and restore the environment variables that
    :func:`pytest_configure` set."""
    path = getattr(config, "_recipes_jax_cache", None)
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)
    for name, value in getattr(config, "_recipes_jax_saved_env", {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session", autouse=True)
def _jax_started_with_its_default_devices():
    """Start JAX before any test, with its default devices: the CLI's
    ``use_cpu_cores(strict=False)``, called in-process by CLI tests, then keeps them instead of
    giving the rest of that worker's tests one CPU device per core."""
    import jax

    jax.devices()


def data_file(*parts: str) -> Path:
    """Path of a file under ../shared/data, or skip the test with the reason."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared data set lives beside the project, in CI)")
    return path


@pytest.fixture(scope="session")
def default_world():
    from recipes_jax.simulator import worlds

    return worlds.default()


@pytest.fixture(scope="session")
def world(default_world):
    """The built-in world (alias used by the strategy and campaign tests)."""
    return default_world


@pytest.fixture(scope="session")
def truth(default_world):
    """Exact StackExchange cross-entropy of the built-in world, jittable."""
    return default_world.truth("eval/RedPajamaStackExchange/CrossEntropyLoss")


def small_design(world, *, runs=12, scales=(20.0, 150.0, 1000.0), seed=0, noise=0.0, cut=0.3):
    """A small run table from a world: a few scales, a coarse step grid."""
    from dataclasses import replace

    coarse = replace(
        world,
        space=world.space.__class__(
            domains=world.space.domains,
            scales=world.space.scales,
            steps=tuple(range(500, 19_501, 1500)),
            target=(1000.0, 18_500),
        ),
    )
    return coarse.run_table(
        seed,
        runs_per_scale={s: runs for s in scales},
        empty_runs_per_scale={},
        cut_short_fraction=cut,
        noise=noise,
    )


@pytest.fixture
def rng():
    return np.random.default_rng(0)
