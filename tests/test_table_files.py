"""Files that are not what a run-table reader expects are refused with a message naming the file
(and the line), what is wrong and how to fix it: repeated CSV columns, weights off the simplex,
text that is not UTF-8, the wrong file given to ``RunTable.load`` or ``from_paper_pickle``."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest

import recipes_jax as rj

LONG = "run,size,step,w_a,w_b,loss\nr1,70M,100,0.5,0.5,3.0\nr1,70M,200,0.5,0.5,2.8\n"


def write(tmp_path, text: str, name: str = "runs.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def read_long(path, **kw):
    args = dict(run_column="run", scale_column="size", step_column="step",
                mixture_columns=["w_a", "w_b"], metric_columns=["loss"])  # fmt: skip
    return rj.RunTable.from_long_csv(path, **{**args, **kw})


def refused(error, *fragments):
    """Expect ``error`` with every fragment (plain text, not a pattern) in its message."""
    return pytest.raises(error, match=".*".join(map(re.escape, fragments)))


# ---------------------------------------------------------------------------- repeated columns
@pytest.mark.parametrize(
    ("header", "repeated"),
    [
        ("run,size,step,w_a,w_b,loss,loss", "'loss' (columns 6, 7)"),
        ("run,size,step,w_a,w_b,w_a,loss", "'w_a' (columns 4, 6)"),
        ("run,size,step,step,w_a,w_b,loss", "'step' (columns 3, 4)"),
    ],
)
def test_long_csv_refuses_a_repeated_column(tmp_path, header, repeated):
    row = ",".join(["r1", "70M", "100"] + ["0.5"] * (header.count(",") - 2))
    path = write(tmp_path, f"{header}\n{row}\n")
    with refused(ValueError, f"{path}: the header repeats {repeated}", "rename or delete"):
        read_long(path)


def test_long_csv_ignores_a_repeated_column_it_does_not_read(tmp_path):
    path = write(tmp_path, "run,note,size,step,w_a,w_b,loss,note\nr1,x,70M,100,0.5,0.5,3.0,y\n")
    assert read_long(path).values[0, 0, 0] == 3.0


def test_wide_csvs_refuse_a_repeated_column_in_either_file(tmp_path):
    mix = write(tmp_path, "index,a,b\n0,0.5,0.5\n1,0.3,0.7\n", "mix.csv")
    val = write(tmp_path, "index,loss\n0,3.0\n1,2.9\n", "val.csv")
    dup_metric = write(tmp_path, "index,loss,loss\n0,3.0,9\n1,2.9,9\n", "dup_val.csv")
    with refused(ValueError, f"{dup_metric}: the header repeats 'loss' (columns 2, 3)"):
        rj.RunTable.from_wide_csvs(mix, dup_metric, scale="1M", step=1)
    dup_weight = write(tmp_path, "index,a,b,a\n0,0.5,0.5,0.1\n1,0.3,0.7,0.2\n", "dup_mix.csv")
    with refused(ValueError, f"{dup_weight}: the header repeats 'a' (columns 2, 4)"):
        rj.RunTable.from_wide_csvs(dup_weight, val, scale="1M", step=1)


# ---------------------------------------------------------------------------- the right file
def test_wide_csvs_blame_the_file_and_lines_with_the_problem(tmp_path):
    mix = write(tmp_path, "index,a,b\n0,0.5,0.5\n1,0.3,0.7\n", "mix.csv")
    twice = write(tmp_path, "index,loss\n0,3.0\n1,2.5\n0,2.9\n", "val.csv")
    with refused(ValueError, f"{twice}: run '0' has values on lines 2 and 4", "keep one row"):
        rj.RunTable.from_wide_csvs(mix, twice, scale="1M", step=1)
    mix_twice = write(tmp_path, "index,a,b\n0,0.5,0.5\n0,0.3,0.7\n", "mix2.csv")
    with refused(ValueError, f"{mix_twice}: run '0' appears on lines 2 and 3", "one row per run"):
        rj.RunTable.from_wide_csvs(mix_twice, twice, scale="1M", step=1)


def test_wide_csvs_refuse_an_empty_run_id_like_the_long_reader(tmp_path):
    mix = write(tmp_path, "index,a,b\n0,0.5,0.5\n,0.2,0.8\n", "mix.csv")
    val = write(tmp_path, "index,loss\n0,3.0\n", "val.csv")
    with refused(ValueError, f"{mix} line 3: the run column 'index' is empty", "give the run"):
        rj.RunTable.from_wide_csvs(mix, val, scale="1M", step=1)
    good = write(tmp_path, "index,a,b\n0,0.5,0.5\n", "good.csv")
    empty_id = write(tmp_path, "index,loss\n0,3.0\n,2.0\n", "val2.csv")
    with refused(ValueError, f"{empty_id} line 3: the run column 'index' is empty"):
        rj.RunTable.from_wide_csvs(good, empty_id, scale="1M", step=1)
    long = write(tmp_path, LONG.replace("r1,70M,200", ",70M,200"))
    with refused(ValueError, f"{long} line 3: the run column 'run' is empty", "give the run"):
        read_long(long)


@pytest.mark.parametrize("step", ["1k", 0, 100.5, True])
def test_a_bad_step_argument_is_named_with_the_fix(tmp_path, step):
    mix = write(tmp_path, "index,a,b\n0,0.5,0.5\n", "mix.csv")
    val = write(tmp_path, "index,loss\n0,3.0\n", "val.csv")
    fragments = (
        f"the step= argument: {step!r} is not a positive whole number of training steps",
        "e.g. 19500",
    )
    with refused(ValueError, *fragments):
        rj.RunTable.from_wide_csvs(mix, val, scale="1M", step=step)
    path = write(tmp_path, "id,x,y,loss\n1,0.5,0.5,3.0\n")
    with refused(ValueError, *fragments):
        rj.RunTable.from_long_csv(path, run_column="id", scale=60, step=step,
                                  mixture_columns=["x", "y"], metric_columns=["loss"])  # fmt: skip


# ---------------------------------------------------------------------------- cells
@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ("30,70", "run 'r2' has weights summing to 100, not 1"),
        ("-0.2,1.2", "run 'r2' has negative weight -0.2 on domain 'w_a'"),
    ],
)
def test_weights_off_the_simplex_name_the_file_and_the_line(tmp_path, weights, message):
    path = write(tmp_path, LONG + f"r2,70M,100,{weights},3.1\nr2,70M,200,{weights},3.0\n")
    fix = "divide them by their sum" if "summing" in message else "fix the sign"
    with refused(ValueError, f"{path} line 4: {message}", fix):
        read_long(path)
    mix = write(tmp_path, f"index,w_a,w_b\n0,0.5,0.5\nr2,{weights}\n", "mix.csv")
    val = write(tmp_path, "index,loss\n0,3.0\n", "val.csv")
    with refused(ValueError, f"{mix} line 3: {message}", fix):
        rj.RunTable.from_wide_csvs(mix, val, scale="1M", step=1)


def test_csv_that_is_not_utf8_is_refused_with_the_line_and_column(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(LONG.replace("w_a", "w_\u00e9").encode("latin-1"))
    with refused(ValueError, f"CSV file {path} is not UTF-8 text: byte 0xe9 at line 1, column 17",
                 "save it as UTF-8"):  # fmt: skip
        read_long(path, mixture_columns=["w_\u00e9", "w_b"])
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + LONG.replace("\n", "\r\n").encode())
    assert read_long(bom).steps.tolist() == [100, 200]
    with refused(IsADirectoryError, f"{tmp_path} is a folder"):
        read_long(tmp_path)


def test_an_empty_step_cell_asks_for_the_step(tmp_path):
    path = write(tmp_path, LONG.replace("r1,70M,200", "r1,70M,"))
    with pytest.raises(ValueError) as info:
        read_long(path)
    message = str(info.value)
    assert f"{path} line 3: column 'step' is empty" in message
    assert "fill in the training step" in message and "weight" not in message


# ---------------------------------------------------------------------------- RunTable.load
def small_table() -> rj.RunTable:
    return rj.RunTable(mixtures=[[0.5, 0.5], [0.2, 0.8]], scales=[70, 70], steps=[100],
                       values=np.ones((2, 1, 1)), mask=None, domains=["a", "b"],
                       metrics=["loss"])  # fmt: skip


NOT_A_TABLE = "is not a run table .npz written by RunTable.save"


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (LONG.encode(), ["looks like a text file", "RunTable.from_long_csv", "from_wide_csvs"]),
        (
            pickle.dumps({"run_id": ["x"]}),
            [
                "looks like a pickle",
                "never loaded here",
                "--trusted -o runs.npz",
                "RunTable.from_paper_pickle(path, trusted=True)",
            ],
        ),
        (b"", ["it is empty", "save the table again with RunTable.save"]),
        (b"\x93NUMPY\x01\x00", ["a single numpy array (.npy)"]),
    ],
    ids=["csv", "pickle", "empty", "npy"],
)
def test_load_refuses_a_file_that_is_not_a_run_table(tmp_path, content, fragments):
    path = tmp_path / "runs.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        rj.RunTable.load(path)
    message = str(info.value)
    for fragment in [f"{path} {NOT_A_TABLE}", *fragments]:
        assert fragment in message, message
    assert "allow_pickle" not in message and "pickle.load" not in message
    if "pickle" in fragments[0]:
        assert f"recipes-jax convert {path} --trusted -o runs.npz" in message


def test_load_refuses_a_real_npy_a_damaged_npz_and_a_folder(tmp_path):
    npy = tmp_path / "arr.npy"
    np.save(npy, np.zeros(3))
    with refused(ValueError, f"{npy} {NOT_A_TABLE}", "a single numpy array (.npy)"):
        rj.RunTable.load(npy)
    good = tmp_path / "t.npz"
    small_table().save(good)
    for cut in (500, len(good.read_bytes()) - 40):
        cut_short = tmp_path / f"cut{cut}.npz"
        cut_short.write_bytes(good.read_bytes()[:cut])
        with refused(ValueError, f"{cut_short} is a damaged or cut-short .npz", "save the table"):
            rj.RunTable.load(cut_short)
    with refused(IsADirectoryError, f"{tmp_path} is a folder; give the path of a .npz file"):
        rj.RunTable.load(tmp_path)
    assert rj.RunTable.load(good).equals(small_table())


# ---------------------------------------------------------------------------- the paper pickle
PICKLE_FIX = "is not a pickle of runs (the paper's data_mixing_runs.pkl format)"


@pytest.mark.parametrize(
    "content", [LONG.encode(), b"", pickle.dumps(list(range(50)))[:20]], ids=["csv", "empty", "cut"]
)
def test_paper_pickle_refuses_a_file_that_is_not_a_pickle(tmp_path, content):
    pytest.importorskip("pandas")
    path = tmp_path / "runs.pkl"
    path.write_bytes(content)
    with refused(ValueError, f"{path} {PICKLE_FIX}", "RunTable.from_long_csv"):
        rj.RunTable.from_paper_pickle(path, trusted=True)
    with refused(IsADirectoryError, f"{tmp_path} is a folder"):
        rj.RunTable.from_paper_pickle(tmp_path, trusted=True)


def paper_frame(pd, **columns):
    history = pd.DataFrame({"_step": [100, 200], "eval/loss": [3.0, 2.8]})
    frame = dict(run_id=["x"], group=["20M"], categories=[["a", "b"]],
                 token_probabilities=[[0.5, 0.5]], history=[history])  # fmt: skip
    return pd.DataFrame({**frame, **columns})


@pytest.mark.parametrize(
    ("columns", "fragments"),
    [
        ({"history": [None]}, ["run 'x': 'history' holds a NoneType, not a DataFrame"]),
        ({"history": [[1, 2]]}, ["run 'x': 'history' holds a list, not a DataFrame"]),
        ({"group": ["big"]}, ["run 'x': 'group': cannot read model scale 'big'"]),
        ({"categories": [5]}, ["run 'x': 'categories' holds 5, not a list of domain names"]),
        ({"token_probabilities": [["p", "q"]]}, ["'token_probabilities' holds ['p', 'q']"]),
        ({"token_probabilities": [[0.2, 0.3, 0.5]]}, ["2 categories but 3 token probabilities"]),
        ("steps", ["history's '_step' holds 100.5", "positive whole numbers"]),
        ("text", ["history column 'eval/loss' holds values that are not numbers"]),
    ],
    ids=["history-none", "history-list", "group", "categories", "probs", "probs-len", "steps",
         "text"],
)  # fmt: skip
def test_paper_pickle_refuses_rows_off_the_schema(tmp_path, columns, fragments):
    pd = pytest.importorskip("pandas")
    if columns == "steps":
        columns = {"history": [pd.DataFrame({"_step": [100.5, 200], "eval/loss": [3.0, 2.8]})]}
    elif columns == "text":
        columns = {"history": [pd.DataFrame({"_step": [100, 200], "eval/loss": ["a", "b"]})]}
    path = tmp_path / "runs.pkl"
    paper_frame(pd, **columns).to_pickle(path)
    with refused(ValueError, f"{path}: ", *fragments):
        rj.RunTable.from_paper_pickle(path, trusted=True)


def test_paper_pickle_of_something_else_is_refused(tmp_path):
    pd = pytest.importorskip("pandas")
    path = tmp_path / "runs.pkl"
    pd.to_pickle({"run_id": ["x"]}, path)
    with refused(ValueError, f"{path} holds a dict, not a DataFrame of runs"):
        rj.RunTable.from_paper_pickle(path, trusted=True)
    paper_frame(pd).drop(columns=["history"]).to_pickle(path)
    with refused(ValueError, f"{path} lacks the paper's columns ['history']"):
        rj.RunTable.from_paper_pickle(path, trusted=True)
    paper_frame(pd).to_pickle(path)
    assert rj.RunTable.from_paper_pickle(path, trusted=True).steps.tolist() == [100, 200]
