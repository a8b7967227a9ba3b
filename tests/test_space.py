import jax
import numpy as np
import pytest

import recipes_jax as rj
from recipes_jax.space import PAPER_GFLOPS_PER_STEP, check_mixtures, parse_scale


def test_paper_space_matches_the_paper():
    space = rj.Space.paper()
    assert space.num_domains == 5
    assert space.scales == (20.0, 60.0, 150.0, 300.0, 500.0, 700.0, 1000.0)
    assert space.steps[0] == 100 and space.steps[-1] == 19_500 and len(space.steps) == 195
    assert space.target == (1000.0, 19_500)
    assert not space.maximize
    assert rj.Space.paper("eval/downstream/hellaswag_len_norm").maximize


def test_cost_unit_is_one_target_run_and_follows_the_flops_table():
    space = rj.Space.paper()
    assert float(space.cost(1000.0, 19_500)) == pytest.approx(1.0)
    ratio = PAPER_GFLOPS_PER_STEP[20.0] / PAPER_GFLOPS_PER_STEP[1000.0]
    assert float(space.cost(20.0, 19_500)) == pytest.approx(ratio)
    assert float(space.cost(300.0, 9_750)) == pytest.approx(
        PAPER_GFLOPS_PER_STEP[300.0] * 9_750 / (PAPER_GFLOPS_PER_STEP[1000.0] * 19_500)
    )
    costs = jax.jit(space.cost)(np.array([20.0, 1000.0]), np.array([100, 19_500]))
    assert costs.shape == (2,) and float(costs[1]) == pytest.approx(1.0)


def test_six_n_d_fallback_for_scales_outside_the_paper_table():
    space = rj.Space(domains=["a", "b"], scales=[10, 1000], steps=[100, 200], target=(1000, 200))
    expected = 6 * 10e6 * 512 * 1024 / 1e9
    assert space.gflops_per_step[0] == pytest.approx(expected)
    assert space.gflops_per_step[1] == PAPER_GFLOPS_PER_STEP[1000.0]


def test_space_accepts_scale_labels_and_custom_costs():
    space = rj.Space(
        domains=["a", "b", "c"],
        scales=["70M", "1B"],
        steps=[10, 20],
        target=("1B", 20),
        gflops_per_step={"70M": 1.0, 1000: 10.0},
    )
    assert space.scales == (70.0, 1000.0)
    assert float(space.cost(70.0, 20)) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"domains": ["a"]}, "at least 2 domains"),
        ({"domains": ["a", "a"]}, "duplicate domain"),
        ({"steps": []}, "step grid is empty"),
        ({"target": (1000, 300)}, "not on the step grid"),
        ({"target": (500, 200)}, "not one of the space's scales"),
        ({"scales": []}, "at least one model scale"),
        ({"steps": [100, 150.5]}, "whole numbers"),
    ],
)
def test_bad_spaces_explain_themselves(kwargs, message):
    base = {"domains": ["a", "b"], "scales": [20, 1000], "steps": [100, 200], "target": (1000, 200)}
    with pytest.raises(ValueError, match=message):
        rj.Space(**{**base, **kwargs})


def test_parse_scale():
    assert parse_scale("70M") == 70.0
    assert parse_scale("1B") == 1000.0
    assert parse_scale("1.3b") == 1300.0
    assert parse_scale(60) == 60.0
    with pytest.raises(ValueError, match="cannot read model scale"):
        parse_scale("huge")
    with pytest.raises(ValueError, match="positive"):
        parse_scale(-3)


def test_check_mixtures_renormalizes_within_tolerance_and_names_bad_rows():
    w = check_mixtures([[0.5, 0.501], [0.2, 0.8]], 2)
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-15)
    with pytest.raises(ValueError, match="run 'b' has negative weight"):
        check_mixtures([[0.5, 0.5], [-0.1, 1.1]], 2, names=["a", "b"], what="run")
    with pytest.raises(ValueError, match=r"summing to 0\.9"):
        check_mixtures([[0.45, 0.45]], 2)
    with pytest.raises(ValueError, match="non-finite"):
        check_mixtures([[np.nan, 1.0]], 2)
    with pytest.raises(ValueError, match=r"shape \[B, 3\]"):
        check_mixtures([[0.5, 0.5]], 3)


def test_check_fidelities(rng):
    space = rj.Space.paper()
    space.check_fidelities([20, 1000], [100, 19_500])
    with pytest.raises(ValueError, match="not one of the space's scales"):
        space.check_fidelities([25], [100])
    with pytest.raises(ValueError, match="not on the space's step grid"):
        space.check_fidelities([20], [150])


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.floats(-1.0, 2.0) | st.sampled_from([np.nan, np.inf, -np.inf]), min_size=3, max_size=3
    )
)
def test_check_mixtures_accepts_exactly_the_valid_rows(weights):
    w = np.array(weights)
    valid = (
        np.isfinite(w).all() and (w >= -1e-9).all() and abs(np.clip(w, 0, None).sum() - 1) <= 1e-2
    )
    if valid:
        out = check_mixtures(w, 3)
        assert (out >= 0).all() and abs(out.sum() - 1) < 1e-12
    else:
        with pytest.raises(ValueError):
            check_mixtures(w, 3)


def test_encode_maps_grids_to_unit_interval_and_back():
    space = rj.Space.paper()
    w = np.full((3, 5), 0.2)
    x = np.asarray(space.encode(w, [20.0, 150.0, 1000.0], [100, 1000, 19_500]))
    assert x.shape == (3, 7)
    np.testing.assert_allclose(x[:, :5], w)
    np.testing.assert_allclose(x[[0, 2], 5], [0.0, 1.0])
    np.testing.assert_allclose(x[[0, 2], 6], [0.0, 1.0])
    m, s = space.decode_fidelity(x[:, 5], x[:, 6])
    np.testing.assert_allclose(m, [20.0, 150.0, 1000.0], rtol=1e-6)
    np.testing.assert_allclose(s, [100, 1000, 19_500], rtol=1e-6)
    scales, steps = space.fidelity_grid()
    assert len(scales) == 21 and set(steps) == {6500, 13_000, 19_500}
    assert (1000.0, 19_500) in set(zip(scales, steps, strict=True))
    one_scale = rj.Space(domains=["a", "b"], scales=[60], steps=[10, 20], target=(60, 20))
    np.testing.assert_allclose(
        one_scale.encode(np.array([[0.5, 0.5]]), [60.0], [10])[0, 2:], [1.0, 0.0]
    )


def test_host_cost_equals_cost():
    import numpy as np

    import recipes_jax as rj

    space = rj.Space.paper()
    m = np.array([20.0, 60.0, 150.0, 1000.0, 1100.0, 25.0])
    s = np.array([100, 6500, 19_500, 19_500, 300, 200])
    np.testing.assert_allclose(space.host_cost(m, s), np.asarray(space.cost(m, s)), rtol=1e-6)
    assert space.host_cost(1000.0, 19_500) == 1.0
