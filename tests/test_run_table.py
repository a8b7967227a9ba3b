import os
import re

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import recipes_jax as rj


def make_table(R=4, S=3, M=2, K=3, seed=0, **overrides):
    rng = np.random.default_rng(seed)
    kwargs = dict(
        mixtures=rng.dirichlet(np.ones(K), R),
        scales=np.array([20.0, 20.0, 60.0, 60.0][:R] + [60.0] * max(0, R - 4)),
        steps=np.arange(1, S + 1) * 100,
        values=rng.normal(size=(R, S, M)),
        mask=None,
        domains=[f"d{k}" for k in range(K)],
        metrics=[f"m{j}" for j in range(M)],
    )
    kwargs.update(overrides)
    return rj.RunTable(**kwargs)


def test_construction_normalizes_and_freezes():
    t = make_table()
    assert t.num_runs == 4 and t.num_steps == 3 and t.num_metrics == 2 and t.num_domains == 3
    assert t.run_ids[0] == "run-0000"
    np.testing.assert_allclose(t.mixtures.sum(1), 1.0)
    with pytest.raises(ValueError):
        t.values[0, 0, 0] = 1.0  # read-only arrays


def test_nan_means_missing_and_nonfinite_observed_values_are_dropped_with_a_count():
    values = np.random.default_rng(0).normal(size=(4, 3, 2))
    values[0, 2, :] = np.nan  # never reached
    mask = ~np.isnan(values)
    values[1, 0, 0] = np.inf  # diverged
    values[2, 1, 1] = np.nan
    mask[2, 1, 1] = True  # observed but NaN
    with pytest.warns(RuntimeWarning, match="dropped 2 non-finite values"):
        t = make_table(values=values, mask=mask)
    assert not t.mask[1, 0, 0] and not t.mask[2, 1, 1] and not t.mask[0, 2].any()
    assert np.isnan(t.values[~t.mask]).all()
    assert np.isfinite(t.values[t.mask]).all()


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"domains": ["a", "b", "a"]}, ValueError, "duplicate domain names"),
        ({"domains": ["a", "b"]}, ValueError, r"shape \[B, 2\]"),
        ({"metrics": ["m0"]}, ValueError, "2 metrics but 1 names"),
        ({"run_ids": ["x", "x", "y", "z"]}, ValueError, "duplicate run ids"),
        ({"steps": np.array([100, 100, 200])}, ValueError, "strictly increasing"),
        ({"scales": np.array([20.0, -1, 60, 60])}, ValueError, "invalid scale"),
        ({"values": np.zeros((0, 3, 2)), "mixtures": np.zeros((0, 3))}, ValueError, "empty"),
        (
            {"mixtures": np.array([[0.5, 0.5, 0.0]] * 3 + [[0.7, 0.7, -0.4]])},
            ValueError,
            "run 'run-0003' has negative weight",
        ),
        (
            {"mixtures": np.array([[0.5, 0.5, 0.0]] * 3 + [[0.3, 0.3, 0.3]])},
            ValueError,
            "run 'run-0003' has weights summing to 0.9",
        ),
    ],
)
def test_validation_errors_name_the_problem(overrides, error, message):
    with pytest.raises(error, match=message):
        make_table(**overrides)


def test_metric_lookup_suggests_close_names():
    t = make_table(metrics=["eval/loss", "eval/acc"])
    assert t.metric_index("eval/acc") == 1
    with pytest.raises(KeyError, match="did you mean 'eval/loss'"):
        t.metric_index("eval/los")


def test_save_load_round_trip_is_exact(tmp_path):
    values = np.random.default_rng(1).normal(size=(4, 3, 2))
    values[3, 1:, :] = np.nan
    t = make_table(values=values, run_ids=["a", "b", "c", "d"])
    path = tmp_path / "t.npz"
    t.save(path)
    loaded = rj.RunTable.load(path)
    assert loaded.equals(t)
    assert loaded.run_ids == ("a", "b", "c", "d")
    assert [p.name for p in tmp_path.iterdir()] == ["t.npz"]  # no temp files left behind


@settings(max_examples=25, deadline=None)
@given(
    R=st.integers(1, 6),
    S=st.integers(1, 5),
    M=st.integers(1, 3),
    K=st.integers(2, 6),
    data=st.data(),
)
def test_round_trip_property(tmp_path_factory, R, S, M, K, data):
    w = data.draw(hnp.arrays(np.float64, (R, K), elements=st.floats(0.01, 1.0)))
    w = w / w.sum(1, keepdims=True)
    values = data.draw(
        hnp.arrays(np.float64, (R, S, M), elements=st.floats(-1e6, 1e6) | st.just(np.nan))
    )
    t = rj.RunTable(
        mixtures=w,
        scales=np.full(R, 20.0),
        steps=np.arange(1, S + 1) * 10,
        values=values,
        mask=None,
        domains=[f"dom{k}" for k in range(K)],
        metrics=[f"metric/{j}" for j in range(M)],
    )
    path = tmp_path_factory.mktemp("rt") / "t.npz"
    t.save(path)
    assert rj.RunTable.load(path).equals(t)


def test_save_is_atomic_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "t.npz"
    old = make_table(seed=1)
    old.save(path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        make_table(seed=2).save(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["t.npz"]


def test_load_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, mixtures=np.array([object()], dtype=object))
    not_a_table = re.escape("not a run table .npz written by RunTable.save")
    with pytest.raises(ValueError, match=not_a_table + ": it holds pickled objects"):
        rj.RunTable.load(path)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(ValueError, match=not_a_table):
        rj.RunTable.load(other)


def test_select_runs_and_summary():
    t = make_table(run_ids=["a", "b", "c", "d"])
    sub = t.select_runs(np.array([True, False, True, False]))
    assert sub.run_ids == ("a", "c")
    assert "20M: 2 runs" in t.summary()
    assert "runs using each domain (weight > 0): 4..4" in t.summary()
    assert "never varied" not in t.summary()
    # the CLI's `simulate` without --metric sends the user here for the metric names
    assert f"metrics: {', '.join(t.metrics)}" in t.summary()
    names = [f"eval/Domain{j}/CrossEntropyLoss" for j in range(40)]
    lines = make_table(M=40, metrics=names).summary().splitlines()
    listed = " ".join(
        line.strip() for line in lines if line.startswith("    ") or "metrics:" in line
    )
    assert set(names) <= set(listed.replace(",", " ").split()) and max(map(len, lines)) <= 100
    unused = make_table(mixtures=np.array([[0.5, 0.5, 0.0], [0.2, 0.8, 0.0], [1, 0, 0], [0, 1, 0]]))
    assert "fewest: d2 0, d0 3, d1 3" in unused.summary()
    assert "never varied (a Simulator ignores them): 'd2' (always 0)" in unused.summary()


def test_select_runs_with_an_empty_list_is_an_empty_selection():
    t = make_table()
    for keep in ([], np.zeros(0, int), np.zeros(t.num_runs, bool)):
        with pytest.raises(ValueError, match="the run table is empty: it has no runs"):
            t.select_runs(keep)
    assert t.select_runs([2]).run_ids == ("run-0002",)


def read_long_csv(path, table):
    return rj.RunTable.from_long_csv(
        path,
        run_column="run",
        scale_column="scale",
        step_column="step",
        mixture_columns=table.domains,
        metric_columns=table.metrics,
    )


def test_long_csv_round_trip_keeps_unobserved_runs_and_steps(tmp_path):
    values = np.random.default_rng(4).normal(size=(4, 3, 2))
    values[1] = np.nan  # a run with no observation (like an empty history in the paper's data)
    values[:, 1] = np.nan  # a step nobody observed
    values[3, 2, 0] = np.nan
    t = make_table(values=values, run_ids=["a", "b", "c", "d"])
    path = tmp_path / "runs.csv"
    t.to_long_csv(path)
    back = read_long_csv(path, t)
    assert back.run_ids == t.run_ids and back.steps.tolist() == [100, 200, 300]
    np.testing.assert_array_equal(back.mask, t.mask)
    np.testing.assert_array_equal(back.values, t.values)
    assert back.equals(t)


@settings(max_examples=20, deadline=None)
@given(R=st.integers(1, 4), S=st.integers(1, 4), M=st.integers(1, 3), data=st.data())
def test_long_csv_round_trip_property(tmp_path_factory, R, S, M, data):
    """Any table, whatever its mask, reads back equal from the CSV that to_long_csv writes."""
    values = data.draw(
        hnp.arrays(np.float64, (R, S, M), elements=st.floats(-1e6, 1e6) | st.just(np.nan))
    )
    t = make_table(R=R, S=S, M=M, values=values, run_ids=[f"r{i}" for i in range(R)])
    path = tmp_path_factory.mktemp("csv") / "runs.csv"
    t.to_long_csv(path)
    assert read_long_csv(path, t).equals(t)


def test_long_csv_refuses_names_it_cannot_give_back(tmp_path):
    with pytest.raises(ValueError, match="start or end with spaces"):
        make_table(run_ids=["a", " b", "c", "d"]).to_long_csv(tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()


def test_long_csv_round_trip_is_exact(tmp_path):
    values = np.random.default_rng(2).normal(size=(4, 3, 2))
    values[1, 2, :] = np.nan  # cut short
    values[2, 0, 1] = np.nan  # one metric missing at one step
    t = make_table(values=values, run_ids=["a", "b", "c", "d"])
    path = tmp_path / "runs.csv"
    t.to_long_csv(path)
    back = read_long_csv(path, t)
    assert back.equals(t)
    assert path.read_text().splitlines()[0] == "run,scale,step,d0,d1,d2,m0,m1"
    with pytest.raises(ValueError, match="would repeat"):
        make_table(domains=["m0", "d1", "d2"]).to_long_csv(tmp_path / "x.csv")


def test_concatenate_pools_runs_over_steps_metrics_and_domain_order():
    a = make_table(R=2, S=2, M=1, seed=0, run_ids=["1", "2"])
    b_values = np.random.default_rng(3).normal(size=(2, 2, 2))
    b = make_table(
        R=2, S=2, M=2, seed=1, run_ids=["1", "2"], steps=[200, 400], values=b_values,
        domains=["d2", "d0", "d1"], metrics=["m1", "m0"],
    )  # fmt: skip
    with pytest.raises(ValueError, match="prefixes"):
        rj.RunTable.concatenate([a, b])
    both = rj.RunTable.concatenate([a, b], prefixes=["a/", "b/"])
    assert both.run_ids == ("a/1", "a/2", "b/1", "b/2")
    assert both.metrics == ("m0", "m1") and both.domains == a.domains
    np.testing.assert_array_equal(both.steps, [100, 200, 400])
    np.testing.assert_allclose(both.mixtures[2], b.mixtures[0][[1, 2, 0]])
    np.testing.assert_allclose(both.values[:2, :2, 0], a.values[:, :, 0])
    assert not both.mask[:2, :, 1].any() and not both.mask[:2, 2].any()  # a lacks m1 and 400
    np.testing.assert_allclose(both.values[2:, 1:, 0], b_values[:, :, 1])  # b's m0 at 200, 400
    assert not both.mask[2:, 0].any()  # b lacks step 100
    with pytest.raises(ValueError, match="domains"):
        rj.RunTable.concatenate([a, make_table(R=2, K=4)])


def test_space_from_run_table_takes_its_domains_scales_and_steps():
    t = make_table(metrics=["loss", "hellaswag/acc"])
    space = rj.Space.from_run_table(t, metric="hellaswag/acc")
    assert space.domains == t.domains and space.scales == (20.0, 60.0)
    assert space.steps == (100, 200, 300) and space.target == (60.0, 300) and space.maximize
    assert rj.Space.from_run_table(t, target=(20, 200)).target == (20.0, 200)
