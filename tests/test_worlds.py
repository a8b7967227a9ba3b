import jax
import numpy as np
import pytest
from scipy.stats import spearmanr

import recipes_jax as rj
from recipes_jax.simulator.worlds import PAPER_METRICS, law_value

from .conftest import data_file

SE = "eval/RedPajamaStackExchange/CrossEntropyLoss"


def test_default_world_needs_no_files(default_world):
    assert default_world.metrics == PAPER_METRICS
    assert default_world.space == rj.Space.paper()
    truth = jax.jit(default_world.truth(SE))
    w = np.random.default_rng(0).dirichlet(np.ones(5), 64)
    y = np.asarray(truth(w, np.full(64, 1000.0), np.full(64, 19_500.0)))
    assert y.shape == (64,) and np.isfinite(y).all()
    # bigger models and longer runs reach lower loss on average
    small = np.asarray(truth(w, np.full(64, 20.0), np.full(64, 2_000.0)))
    assert small.mean() > y.mean()
    assert default_world.maximize(
        "eval/downstream/hellaswag_len_norm"
    ) and not default_world.maximize(SE)
    with pytest.raises(KeyError, match="did you mean"):
        default_world.truth("eval/StackExchange")


def test_default_world_has_interior_optima_that_move_with_scale(default_world):
    truth = jax.jit(default_world.truth(SE))
    w = np.random.default_rng(1).dirichlet(np.ones(5), 50_000)
    best = {}
    for scale, steps in [(20.0, 2_000.0), (1000.0, 19_500.0)]:
        y = np.asarray(truth(w, np.full(len(w), scale), np.full(len(w), steps)))
        best[scale] = w[np.argmin(y)]
    assert np.abs(best[20.0] - best[1000.0]).sum() > 0.05


def test_run_table_has_the_papers_design(default_world):
    table = default_world.run_table(seed=3)
    assert table.num_runs == 472 and table.num_steps == 195 and table.num_metrics == 11
    has_data = table.mask.any(axis=(1, 2))
    assert has_data.sum() == 454
    cut = has_data & ~table.mask[:, -1, 0]
    assert 0.2 < cut.sum() / has_data.sum() < 0.4
    j = table.metric_index(SE)
    r, s = np.nonzero(table.mask[:, :, j])
    truth = np.asarray(
        jax.jit(default_world.truth(SE))(
            table.mixtures[r], table.scales[r], table.steps[s].astype(float)
        )
    )
    residual = table.values[r, s, j] - truth
    expected_sd = 0.02 * default_world.metric_scale[j]
    assert abs(residual.mean()) < 0.1 * expected_sd
    assert residual.std() == pytest.approx(expected_sd, rel=0.05)
    assert default_world.run_table(seed=3).equals(table)
    assert not default_world.run_table(seed=4).equals(table)


def test_fit_report_is_reproducible_from_the_paper_mlp(default_world):
    mlp = rj.worlds.paper_mlp(data_file("paper_surrogate_mlp.npz"))
    w = np.random.default_rng(1).dirichlet(np.ones(5), 2000)  # as benchmarks/fit_default_world.py
    m, s = np.full(2000, 1000.0), np.full(2000, 19_500.0)
    with jax.enable_x64(True):
        law = np.asarray(default_world.truth(SE)(w, m, s))
        true = np.asarray(mlp.truth(SE)(w, m, s))
    stored = default_world.info[SE]["within_scale_and_steps"]["1000@19500"]["spearman"]
    assert spearmanr(law, true)[0] == pytest.approx(stored, abs=1e-6)


def test_paper_mlp_world_explains_the_stand_in_table():
    mlp = rj.worlds.paper_mlp(data_file("paper_surrogate_mlp.npz"))
    table = rj.RunTable.from_paper_pickle(data_file("surrogate_runs.pkl"), trusted=True)
    j = table.metric_index(SE)
    r, s = np.nonzero(table.mask[:, :, j])
    with jax.enable_x64(True):
        truth = np.asarray(
            mlp.truth(SE)(table.mixtures[r], table.scales[r], table.steps[s].astype(float))
        )
    residual = table.values[r, s, j] - truth
    assert residual.std() == pytest.approx(0.02 * mlp.metric_scale[mlp.metric_index(SE)], rel=0.05)
    assert abs(residual.mean()) < 1e-3


def test_law_value_is_differentiable(default_world):
    from recipes_jax.simulator.worlds import LawParams  # noqa: F401  (public for users)

    truth = default_world.truth(SE)
    grad = jax.grad(lambda w: truth(w, np.array([300.0]), np.array([5_000.0]))[0])(
        np.full((1, 5), 0.2)
    )
    assert np.isfinite(np.asarray(grad)).all()
    assert callable(law_value)
