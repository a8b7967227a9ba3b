"""Shared test fixtures: where the shared data lives, and small tables drawn from worlds."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

DATA = Path(
    os.environ.get("RECIPES_JAX_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


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
