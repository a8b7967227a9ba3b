import numpy as np
import pytest

import recipes_jax as rj
from recipes_jax.simulator.loaders import UntrustedFileError

from .conftest import data_file

WIDE = """run,size,step,w_a,w_b,w_c,loss,acc
r1,70M,100,0.2,0.3,0.5,4.0,0.3
r1,70M,200,0.2,0.3,0.5,3.5,0.35
r2,70M,100,0.6,0.2,0.2,4.2,
r1,1B,100,0.2,0.3,0.5,3.9,0.31
r1,1B,300,0.2,0.3,0.5,3.0,0.4
"""


def write(tmp_path, text, name="runs.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def read_wide(path, **kw):
    args = dict(
        run_column="run",
        scale_column="size",
        step_column="step",
        mixture_columns=["w_a", "w_b", "w_c"],
        metric_columns=["loss", "acc"],
    )
    args.update(kw)
    return rj.RunTable.from_long_csv(path, **args)


def test_wide_long_csv(tmp_path):
    t = read_wide(write(tmp_path, WIDE))
    assert t.run_ids == ("r1@70M", "r2", "r1@1000M")  # r1 is reused across scales
    assert t.scales.tolist() == [70.0, 70.0, 1000.0]
    assert t.steps.tolist() == [100, 200, 300]
    assert t.domains == ("w_a", "w_b", "w_c")
    loss, mask = t.curve("loss")
    assert loss[0].tolist()[:2] == [4.0, 3.5] and not mask[0, 2]
    assert not t.mask[1, 0, 1]  # the empty acc cell is "not observed", silently
    assert t.mask[1, 0, 0]


def test_tidy_long_csv_with_domain_names(tmp_path):
    text = "model,run,step,wa,wb,domain,loss\n" + "\n".join(
        f"{size},{run},{step},{wa},{1 - wa},{dom},{loss}"
        for size, run, wa in [("70M", 0, 0.25), ("160M", 0, 0.25), ("70M", 1, 0.5)]
        for step in (1000, 2000)
        for dom, loss in [("ArXiv", 3.0 + step / 1e4), ("Github", 2.0)]
    )
    t = rj.RunTable.from_long_csv(
        write(tmp_path, text),
        run_column="run",
        scale_column="model",
        step_column="step",
        mixture_columns=["wa", "wb"],
        domains=["academic", "code"],
        metric_name_column="domain",
        value_column="loss",
    )
    assert t.metrics == ("ArXiv", "Github")
    assert t.domains == ("academic", "code")
    assert t.num_runs == 3 and t.mask.all()
    assert t.curve("ArXiv")[0][0].tolist() == [3.1, 3.2]


def test_fixed_scale_and_step(tmp_path):
    text = "id,x,y,loss\n1,0.5,0.5,3.0\n2,0.1,0.9,2.5\n"
    t = rj.RunTable.from_long_csv(
        write(tmp_path, text),
        run_column="id",
        scale=60,
        step=1000,
        mixture_columns=["x", "y"],
        metric_columns=["loss"],
    )
    assert t.scales.tolist() == [60.0, 60.0] and t.steps.tolist() == [1000]


@pytest.mark.parametrize(
    ("edit", "kwargs", "message"),
    [
        (lambda s: s, {"metric_columns": ["los"]}, r"no metric column 'los'; did you mean 'loss'"),
        (lambda s: s, {"mixture_columns": ["w_a", "w_x"]}, "no mixture column 'w_x'"),
        (
            lambda s: s.replace("r1,70M,200", "r1,70M,last"),
            {},
            "line 3: column 'step' holds 'last'",
        ),
        (lambda s: s.replace(",3.5,", ",abc,"), {}, "line 3: column 'loss' holds 'abc'"),
        (
            lambda s: s.replace("r1,70M,200", "r1,70M,100"),
            {},
            "duplicate rows for run 'r1'.*lines 2 and 3",
        ),
        (
            lambda s: s.replace("r1,70M,200,0.2,0.3,0.5", "r1,70M,200,0.3,0.2,0.5"),
            {},
            "one run must keep one mixture",
        ),
        (lambda s: s.replace("r2,70M", "r2,big"), {}, "line 4: cannot read model scale 'big'"),
        (
            lambda s: s.replace("0.6,0.2,0.2", "0.6,0.6,0.2"),
            {},
            "run 'r2' has weights summing to 1.4",
        ),
        (lambda s: s.replace("0.6,0.2,0.2", "0.6,0.6,-0.2"), {}, "negative weight"),
        (lambda s: s.replace("r2,70M,100,", "r2,70M,100.5,"), {}, "whole number"),
        (lambda s: s.replace(",4.2,", ",4.2,1,"), {}, "line 4: 9 fields but the header has 8"),
        (lambda s: s.split("\n")[0] + "\n", {}, "no data rows"),
    ],
)
def test_csv_errors_name_the_line_and_fix(tmp_path, edit, kwargs, message):
    with pytest.raises(ValueError, match=message):
        read_wide(write(tmp_path, edit(WIDE)), **kwargs)


def test_nonfinite_metric_cells_are_dropped_with_a_warning(tmp_path):
    text = WIDE.replace(",3.5,", ",nan,").replace(",3.0,", ",inf,")
    with pytest.warns(RuntimeWarning, match="dropped 2 non-finite values"):
        t = read_wide(write(tmp_path, text))
    assert t.mask.sum() == 7  # 10 cells, one empty, two non-finite


def test_layout_arguments_are_checked(tmp_path):
    path = write(tmp_path, WIDE)
    with pytest.raises(ValueError, match="exactly one of scale_column"):
        read_wide(path, scale=70)
    with pytest.raises(ValueError, match="either metric_columns"):
        read_wide(path, metric_name_column="x", value_column="loss")


def test_wide_csvs_join(tmp_path):
    mix = write(tmp_path, "index,a,b\n1,0.5,0.5\n2,0.2,0.8\n3,0.9,0.1\n", "mix.csv")
    val = write(tmp_path, "index,loss_a,loss_b\n2,3.0,2.0\n1,2.5,2.6\n", "val.csv")
    with pytest.warns(UserWarning, match="1 runs in .* have no values"):
        t = rj.RunTable.from_wide_csvs(mix, val, scale="1M", step=1000)
    assert t.run_ids == ("1", "2", "3")
    assert t.values[:, 0, 0].tolist()[:2] == [2.5, 3.0] and not t.mask[2].any()
    named = write(tmp_path, "index,name,a,b\n1,x,0.5,0.5\n2,y,0.2,0.8\n", "named.csv")
    t = rj.RunTable.from_wide_csvs(named, val, scale="1M", step=1, ignore_columns=["name"])
    assert t.domains == ("a", "b") and t.metrics == ("loss_a", "loss_b")
    bad = write(tmp_path, "index,loss_a,loss_b\n7,3.0,2.0\n", "bad.csv")
    with pytest.raises(ValueError, match="run '7' has values but no mixture"):
        rj.RunTable.from_wide_csvs(mix, bad, scale=1, step=1)


def test_pickle_needs_trust(tmp_path):
    path = tmp_path / "runs.pkl"
    path.write_bytes(b"not even a pickle")
    with pytest.raises(UntrustedFileError, match="pickle files can run arbitrary code"):
        rj.RunTable.from_paper_pickle(path)
    assert isinstance(UntrustedFileError("x"), PermissionError)


# ---------------------------------------------------------------- the shared data sets
def test_paper_pickle_stand_in():
    t = rj.RunTable.from_paper_pickle(data_file("surrogate_runs.pkl"), trusted=True)
    assert t.num_runs == 472 and t.num_metrics == 11 and t.num_steps == 195
    has_data = t.mask.any(axis=(1, 2))
    assert has_data.sum() == 454
    usable = {s: int((has_data & (t.scales == s)).sum()) for s in t.unique_scales}
    assert usable == {20.0: 112, 60.0: 71, 150.0: 51, 300.0: 64, 500.0: 39, 700.0: 52, 1000.0: 65}
    cut_short = has_data & ~t.mask[:, -1, 0]
    assert 0.25 < cut_short.sum() / has_data.sum() < 0.35
    assert t.domains[1] == "RedPajamaStackExchange"
    assert "eval/RedPajamaStackExchange/CrossEntropyLoss" in t.metrics


def test_regmix_real_runs():
    d = data_file("regmix", "data")
    t = rj.RunTable.from_wide_csvs(
        d / "train_mixture_1m.csv", d / "train_pile_loss_1m.csv", scale="1M", step=1
    )
    assert t.num_runs == 512 and t.num_domains == 17 and t.mask.all()
    assert "metric/the_pile_pile_cc_val_loss" in t.metrics


def test_mixinglaws_real_runs_tidy():
    path = data_file("mixinglaws", "dml_5Mix_tidy.csv")
    t = rj.RunTable.from_long_csv(
        path,
        run_column="run_id",
        scale_column="model_size",
        step_column="step",
        mixture_columns=["w_academic", "w_prose", "w_dialogue", "w_symbolic", "w_internet"],
        metric_name_column="valid_domain",
        value_column="loss",
    )
    assert t.num_metrics == 22
    assert set(t.unique_scales.tolist()) == {70.0, 160.0, 305.0, 410.0, 1000.0}
    assert any("@" in r for r in t.run_ids)  # run ids are reused across model sizes


def test_mixinglaws_text_in_step_column_is_reported():
    path = data_file("mixinglaws", "dml_3Mix_tidy.csv")
    with pytest.raises(ValueError, match="column 'step' holds 'last'"):
        rj.RunTable.from_long_csv(
            path,
            run_column="run_id",
            scale_column="model_size",
            step_column="step",
            mixture_columns=["w_Github", "w_Books3", "w_Pile-CC"],
            metric_name_column="valid_domain",
            value_column="loss",
        )


# ---------------------------------------------------------------- properties
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=30, deadline=None)
@given(
    R=st.integers(1, 5),
    S=st.integers(1, 4),
    M=st.integers(1, 3),
    K=st.integers(2, 5),
    seed=st.integers(0, 2**31 - 1),
    tidy=st.booleans(),
)
def test_long_csv_round_trip_property(tmp_path_factory, R, S, M, K, seed, tidy):
    """Any table written as a long CSV (either layout) reads back identical."""
    rng = np.random.default_rng(seed)
    mixtures = rng.dirichlet(np.ones(K), R)
    scales = rng.choice([20.0, 70.0, 1000.0], R)
    steps = np.sort(rng.choice(np.arange(1, 100) * 10, S, replace=False))
    values = rng.normal(size=(R, S, M)) * 10.0 ** rng.integers(-3, 3)
    observed = rng.random((R, S)) < 0.8
    observed[:, 0] = True
    values[~observed] = np.nan
    table = rj.RunTable(
        mixtures=mixtures,
        scales=scales,
        steps=steps,
        values=values,
        mask=None,
        domains=[f"dom{k}" for k in range(K)],
        metrics=[f"met{j}" for j in range(M)],
        run_ids=[f"r{i}" for i in range(R)],
    )
    lines = []
    for i in range(R):
        for s in range(S):
            if not observed[i, s]:
                continue
            head = [f"r{i}", repr(float(scales[i])), str(steps[s])] + [
                repr(float(x)) for x in mixtures[i]
            ]
            if tidy:
                lines += [
                    ",".join([*head, f"met{j}", repr(float(values[i, s, j]))]) for j in range(M)
                ]
            else:
                lines.append(",".join(head + [repr(float(values[i, s, j])) for j in range(M)]))
    doms = [f"dom{k}" for k in range(K)]
    mets = [f"met{j}" for j in range(M)]
    header = ["run", "scale", "step", *doms] + (["metric", "value"] if tidy else mets)
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    path.write_text("\n".join([",".join(header), *lines]) + "\n")
    layout = (
        {"metric_name_column": "metric", "value_column": "value"}
        if tidy
        else {"metric_columns": mets}
    )
    loaded = rj.RunTable.from_long_csv(
        path,
        run_column="run",
        scale_column="scale",
        step_column="step",
        mixture_columns=doms,
        **layout,
    )
    expected = table.select_runs(np.argsort([f"r{i}" for i in range(R)], kind="stable"))
    assert loaded.run_ids == expected.run_ids
    np.testing.assert_array_equal(loaded.mixtures, expected.mixtures)
    np.testing.assert_array_equal(loaded.values, expected.values[:, np.isin(steps, loaded.steps)])
