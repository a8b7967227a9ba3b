"""Bad input is refused with the exact error type and a message that names the problem and says
how to fix it, through the API and through the ``recipes-jax`` command where one reads that input.

Each case lists fragments of the message: the first name the problem, the last give the fix.
RELIABILITY.md ("Bad input") maps every case to its test here (or to an older test elsewhere
that already covers it fully).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import replace
from unittest import mock

import numpy as np
import pytest

import recipes_jax as rj
from recipes_jax import ledger, space_file
from recipes_jax.cli import main
from recipes_jax.ledger import LedgerRun
from recipes_jax.simulator import simulator as simulator_module
from recipes_jax.simulator.interpolant import fit_interpolant

nan, inf = math.nan, math.inf


@contextlib.contextmanager
def refused(error: type[Exception], *fragments: str):
    """Expect exactly ``error`` (not a subclass) with every fragment in its message."""
    with pytest.raises(error) as info:
        yield
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    message = info.value.args[0] if isinstance(info.value, KeyError) else str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def cli_refuses(capsys, argv: list[str], *fragments: str) -> str:
    """``recipes-jax argv`` exits with 2 and prints ``recipes-jax <cmd>: error: ...`` holding
    every fragment to stderr (and nothing to stdout)."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    prefix = f"recipes-jax {argv[0]}: error: "
    lines = [line for line in err.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1 and not out, (out, err)
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


# ============================================================================ mixtures
ABC = ["a", "b", "c"]
SPACE_ABC = rj.Space(domains=ABC, scales=[20, 60], steps=[100, 200], target=(60, 200))

# (id, weights of one mixture over domains a, b, c, message fragments); {who} is how the
# message names the row, {what} what a row is called
MIXTURE_CASES = [
    (
        "negative",
        [-0.1, 0.6, 0.5],
        ["{who} has negative weight -0.1 on domain 'a'", "mixture weights must be >= 0",
         "fix the sign, or write 0 for a domain it does not use"],
    ),
    (
        "nan",
        [nan, 0.5, 0.5],
        ["{who} has non-finite weights [nan, 0.5, 0.5]",
         "every weight must be a finite number >= 0 (write 0 for a domain it does not use)"],
    ),
    (
        "inf",
        [inf, 0.0, 0.0],
        ["{who} has non-finite weights [inf, 0.0, 0.0]", "must be a finite number >= 0"],
    ),
    (
        "wrong-length",
        [0.5, 0.5],
        ["{what}s must have shape [B, 3] (one weight per domain); got shape",
         "give 3 weights per {what}, in the order ['a', 'b', 'c']"],
    ),
    (
        "sum-off-by-more-than-tolerance",
        [0.3, 0.3, 0.3],
        ["{who} has weights summing to 0.9, not 1 (tolerance 0.01)",
         "fix the weights or divide them by their sum"],
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("weights", "fragments"), [c[1:] for c in MIXTURE_CASES], ids=[c[0] for c in MIXTURE_CASES]
)
def test_space_check_mixtures_refuses(weights, fragments):
    with refused(ValueError, *(f.format(who="the mixture", what="mixture") for f in fragments)):
        SPACE_ABC.check_mixtures([weights])


def test_space_check_mixtures_accepts_and_renormalizes_within_the_tolerance():
    w = SPACE_ABC.check_mixtures([[0.3, 0.3, 0.395]])  # sums to 0.995, within 0.01
    np.testing.assert_allclose(w.sum(), 1.0, atol=1e-15)


def run_table(K=3, R=2, S=2, M=1, **overrides) -> rj.RunTable:
    """A small valid run table (scales 20M and 60M), with ``overrides`` applied."""
    rng = np.random.default_rng(0)
    kwargs = dict(
        mixtures=rng.dirichlet(np.ones(K), R),
        scales=np.where(np.arange(R) % 2 == 0, 20.0, 60.0),
        steps=np.arange(1, S + 1) * 100,
        values=rng.normal(size=(R, S, M)),
        mask=None,
        domains=[f"d{k}" for k in range(K)],
        metrics=["eval/loss", "eval/acc"][:M],
    )
    kwargs.update(overrides)
    return rj.RunTable(**kwargs)


@pytest.mark.parametrize(
    ("weights", "fragments"), [c[1:] for c in MIXTURE_CASES], ids=[c[0] for c in MIXTURE_CASES]
)
def test_run_table_construction_refuses_bad_mixtures(weights, fragments):
    fragments = [
        f.format(who="run 'x'", what="run").replace("'a'", "'d0'").replace("'b'", "'d1'")
        .replace("'c'", "'d2'")
        for f in fragments
    ]  # fmt: skip
    with refused(ValueError, *fragments):
        run_table(mixtures=np.array([weights, weights]), run_ids=["x", "y"])


# ledger rows: K = 5 domains of the example space file
SPACE = space_file.parse_space(space_file.EXAMPLE)
HEADER = ",".join(ledger.columns(SPACE))
ROW = "r0,done,20,500,0.2,0.2,0.2,0.2,0.2,2.9,,,,"
WEIGHTS = "0.2,0.2,0.2,0.2,0.2"

# (id, ledger text, message fragments) for a ledger that read_ledger, record and suggest refuse
LEDGER_CASES = [
    (
        "mixture-negative",
        f"{HEADER}\n{ROW.replace(WEIGHTS, '-0.2,0.4,0.2,0.3,0.3')}\n",
        ["line 2: the mixture has negative weight -0.2 on domain 'RedPajamaWikipedia'",
         "fix the sign, or write 0 for a domain it does not use"],
    ),
    (
        "mixture-nan",
        f"{HEADER}\n{ROW.replace(WEIGHTS, 'nan,0.25,0.25,0.25,0.25')}\n",
        ["line 2: the mixture has non-finite weights [nan, 0.25",
         "every weight must be a finite number >= 0"],
    ),
    (
        "mixture-sum-off",
        f"{HEADER}\n{ROW.replace(WEIGHTS, '0.5,0.5,0.5,0.2,0.2')}\n",
        ["line 2: the mixture has weights summing to 1.9, not 1 (tolerance 0.01)",
         "fix the weights or divide them by their sum"],
    ),
    (
        "scale-outside-the-space",
        f"{HEADER}\n{ROW.replace(',20,', ',25,')}\n",
        ["line 2: scale 25M is not one of the space's scales",
         "use one of them, or add it to the space's scales"],
    ),
    (
        "steps-outside-the-space",
        f"{HEADER}\n{ROW.replace(',500,', ',550,')}\n",
        ["line 2: 550 steps is not on the space's step grid (500..19500, 39 values)",
         "use a step count on the grid (nearest: 500 or 1000), or add it to the space's steps"],
    ),
    (
        "missing-column",
        HEADER.replace(",w:RedPajamaBook", "") + "\n"
        + ROW.replace(WEIGHTS, "0.25,0.25,0.25,0.25") + "\n",
        ["missing columns ['w:RedPajamaBook']",
         f"the header must include {HEADER} (domains as in the space file, each as w:<domain>)"],
    ),
    (
        "duplicate-id",
        f"{HEADER}\n{ROW}\n{ROW}\n",
        ["line 3: duplicate id 'r0' (also on line 2)", "make ids unique"],
    ),
    (
        "text-in-value",
        f"{HEADER}\n{ROW.replace(',2.9,', ',abc,')}\n",
        ["line 2, column 'value': value 'abc' is not a number",
         "write it as a plain number", "or leave the cell empty"],
    ),
    (
        "text-in-weight",
        f"{HEADER}\n{ROW.replace('0.2,', 'x,', 1)}\n",
        ["line 2, column 'w:RedPajamaWikipedia': weight 'x' is not a number",
         "write it as a plain number (e.g. 0.25"],
    ),
    (
        "text-in-steps",
        f"{HEADER}\n{ROW.replace(',500,', ',ten,')}\n",
        ["line 2, column 'steps': steps 'ten' is not a number", "write it as a plain number"],
    ),
    (
        "text-in-scale",
        f"{HEADER}\n{ROW.replace(',20,', ',big,')}\n",
        ["line 2, column 'scale': cannot read model scale 'big'",
         "give millions of parameters as a number (e.g. 70) or a label such as '70M' or '1B'"],
    ),
    (
        "text-in-score",
        f"{HEADER}\n{ROW.replace(',2.9,,,,', ',2.9,,,high,')}\n",
        ["line 2, column 'score': score 'high' is not a number",
         "write it as a plain number", "or leave the cell empty"],
    ),
]  # fmt: skip
LEDGER_IDS = [c[0] for c in LEDGER_CASES]
LEDGER_PARAMS = [c[1:] for c in LEDGER_CASES]


def write_ledger_text(tmp_path, text: str):
    """A space file (the example) and a ledger with ``text``; returns their paths."""
    space_path, path = tmp_path / "space.toml", tmp_path / "runs.csv"
    space_path.write_text(space_file.EXAMPLE)
    path.write_text(text)
    return space_path, path


@pytest.mark.parametrize(("text", "fragments"), LEDGER_PARAMS, ids=LEDGER_IDS)
def test_read_ledger_refuses(tmp_path, text, fragments):
    _, path = write_ledger_text(tmp_path, text)
    with refused(ValueError, str(path), *fragments):
        ledger.read_ledger(path, SPACE)
    assert path.read_text() == text  # never touched


@pytest.mark.parametrize(("text", "fragments"), LEDGER_PARAMS, ids=LEDGER_IDS)
def test_record_command_refuses_a_bad_ledger(tmp_path, capsys, text, fragments):
    space_path, path = write_ledger_text(tmp_path, text)
    argv = ["record", "--ledger", str(path), "--space", str(space_path), "--id", "r0"]
    cli_refuses(capsys, [*argv, "--value", "2.5"], *fragments)
    assert path.read_text() == text


@pytest.mark.parametrize(("text", "fragments"), LEDGER_PARAMS, ids=LEDGER_IDS)
def test_suggest_command_refuses_a_bad_ledger(tmp_path, capsys, text, fragments):
    space_path, path = write_ledger_text(tmp_path, text)
    argv = ["suggest", "--ledger", str(path), "--space", str(space_path), "--preset", "quick"]
    cli_refuses(capsys, argv, *fragments)
    assert path.read_text() == text


def ledger_run(i: int, **kw) -> LedgerRun:
    return LedgerRun(id=f"r{i}", status="pending", mixture=(0.2,) * 5, scale=20.0, steps=500, **kw)


def test_write_ledger_refuses_a_mixture_of_the_wrong_length(tmp_path):
    bad = replace(ledger_run(0), mixture=(0.25,) * 4)
    with refused(
        ValueError,
        "run 'r0': mixtures must have shape [B, 5] (one weight per domain); got shape (1, 4)",
        "give 5 weights per mixture, in the order ['RedPajamaWikipedia', ",
    ):
        ledger.write_ledger(tmp_path / "runs.csv", SPACE, [bad])
    assert not (tmp_path / "runs.csv").exists()


def test_write_ledger_refuses_duplicate_ids(tmp_path):
    with refused(
        ValueError, "duplicate run ids ['r1']", "ids must be unique: give each run its own id"
    ):
        ledger.write_ledger(tmp_path / "runs.csv", SPACE, [ledger_run(1), ledger_run(1)])


def test_record_command_refuses_an_unknown_id(tmp_path, capsys):
    space_path, path = write_ledger_text(tmp_path, "")
    ledger.write_ledger(path, SPACE, [ledger_run(0), ledger_run(1)])
    before = path.read_text()
    argv = ["record", "--ledger", str(path), "--space", str(space_path), "--value", "2.5"]
    cli_refuses(capsys, [*argv, "--id", "r9"], f"no run 'r9' in {path}", "did you mean 'r1', 'r0'?")
    assert path.read_text() == before


def test_record_refuses_any_id_on_a_ledger_without_runs(tmp_path, capsys):
    space_path, path = write_ledger_text(tmp_path, HEADER + "\n")
    with refused(ValueError, f"{path} has no runs", "`recipes-jax suggest` adds them"):
        ledger.record(path, SPACE, "r1", value=2.5)
    argv = ["record", "--ledger", str(path), "--space", str(space_path), "--value", "2.5"]
    cli_refuses(capsys, [*argv, "--id", "r1"], "has no runs", "`recipes-jax suggest` adds them")


# ============================================================================ fidelities
@pytest.mark.parametrize(
    ("scale", "steps", "fragments"),
    [
        (25, 100, ["scale 25M is not one of the space's scales [20.0, 60.0]",
                   "use one of them, or add it to the space's scales"]),
        (20, 150, ["150 steps is not on the space's step grid (100..200, 2 values)",
                   "use a step count on the grid (nearest: 100 or 200), or add it to the "
                   "space's steps"]),
        (20, 900, ["900 steps is not on the space's step grid", "(nearest: 200)"]),
    ],
    ids=["scale", "steps-between", "steps-beyond"],
)  # fmt: skip
def test_space_check_fidelities_refuses(scale, steps, fragments):
    with refused(ValueError, *fragments):
        SPACE_ABC.check_fidelities([scale], [steps])


# ------------------------------------------------------- a simulator built from a small table
def sim_table() -> rj.RunTable:
    """Six runs at 20M and 60M parameters, one step count (200): the cheapest table to fit."""
    rng = np.random.default_rng(0)
    mixtures = rng.dirichlet(np.ones(3), 6)
    scales = np.array([20.0] * 3 + [60.0] * 3)
    values = (3.0 + mixtures[:, :1] - 0.1 * np.log(scales)[:, None])[..., None]
    return rj.RunTable(mixtures=mixtures, scales=scales, steps=[200], values=values, mask=None,
                       domains=ABC, metrics=["eval/loss"])  # fmt: skip


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """The table saved as .npz, and its interpolant, fitted once for the whole module."""
    table = sim_table()
    path = tmp_path_factory.mktemp("sim") / "table.npz"
    table.save(path)
    return path, table, fit_interpolant(table, "eval/loss")


@pytest.fixture
def simulate(fitted, monkeypatch, capsys):
    """``simulate(*args, fragments=...)``: ``recipes-jax simulate`` on the saved table refuses
    with every fragment. The Simulator is built for real except that the (slow) interpolant fit
    is the module's."""
    path, _, params_info = fitted
    monkeypatch.setattr(simulator_module, "fit_interpolant", lambda *a, **k: params_info)

    def run(*args: str, fragments=()):
        argv = ["simulate", "--table", str(path), "--metric", "eval/loss", *args]
        return cli_refuses(capsys, argv, *fragments)

    return run


@pytest.fixture(scope="module")
def sim(fitted):
    _, table, params_info = fitted
    with mock.patch.object(simulator_module, "fit_interpolant", lambda *a, **k: params_info):
        return rj.Simulator(table, "eval/loss")


# (id, --mixture, message fragments)
SIMULATE_MIXTURE_CASES = [
    ("negative", "-0.2,0.7,0.5",
     ["the query mixture has negative weight -0.2 on domain 'a'",
      "fix the sign, or write 0 for a domain it does not use"]),
    ("nan", "nan,0.5,0.5",
     ["the query mixture has non-finite weights [nan, 0.5, 0.5]",
      "every weight must be a finite number >= 0"]),
    ("wrong-length", "0.5,0.5",
     ["mixtures must have 3 weights (domains ['a', 'b', 'c']); got shape (1, 2)",
      "give one weight per domain, in that order"]),
    ("sum-off", "0.5,0.5,0.5",
     ["the query mixture has weights summing to 1.5, not 1 (tolerance 0.01)",
      "divide them by their sum"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mixture", "fragments"),
    [c[1:] for c in SIMULATE_MIXTURE_CASES],
    ids=[c[0] for c in SIMULATE_MIXTURE_CASES],
)
@pytest.mark.parametrize("clamp", [False, True], ids=["no-clamp", "clamp"])
def test_simulate_command_refuses_bad_mixtures(simulate, mixture, fragments, clamp):
    # --clamp clamps scales and steps, never mixtures (it used to skip the mixture check)
    args = [f"--mixture={mixture}", "--scale", "20", "--steps", "200"]
    simulate(*args, *(["--clamp"] if clamp else []), fragments=fragments)


def test_simulator_with_clamp_still_refuses_bad_mixtures(sim):
    clamped = sim.with_options(clamp=True)
    with refused(ValueError, "the query mixture has negative weight -0.2 on domain 'a'",
                 "fix the sign"):  # fmt: skip
        clamped(np.array([[-0.2, 0.7, 0.5]]), 20.0, 200)
    with refused(ValueError, "query mixture 1 has weights summing to 2", "divide them by"):
        clamped(np.array([[0.2, 0.3, 0.5], [1.0, 0.5, 0.5]]), 20.0, 200)
    assert np.isfinite(clamped(np.array([0.2, 0.3, 0.5]), 5000.0, 900)).all()  # clamped


@pytest.mark.parametrize(
    ("scale", "steps", "fragments"),
    [
        (500.0, 200, ["query 0: scale 500M is outside the table's scales [20M, 60M]",
                      "query inside them or build the Simulator with clamp=True "
                      "(recipes-jax simulate --clamp)"]),
        (20.0, 100, ["query 0: 100 steps is outside the steps the table supports at 20M "
                     "(200..200)", "query inside them or build the Simulator with clamp=True"]),
    ],
    ids=["scale", "steps"],
)  # fmt: skip
def test_simulator_refuses_queries_outside_the_table(sim, simulate, scale, steps, fragments):
    with refused(ValueError, *fragments):
        sim(np.array([0.2, 0.3, 0.5]), scale, steps)
    args = ["--mixture", "0.2,0.3,0.5", "--scale", f"{scale:g}", "--steps", str(steps)]
    simulate(*args, fragments=fragments)


# ============================================================================ spaces
SPACE_TOML = """\
domains = ["web", "code"]
scales = [70, 1000]
steps = [100, 200]
target = { scale = 1000, steps = 200 }
metric = "loss"
direction = "minimize"
"""
SPACE_BASE = {"domains": ["web", "code"], "scales": [70, 1000], "steps": [100, 200],
              "target": (1000, 200)}  # fmt: skip

# (id, Space(...) overrides, (old, new) edit of SPACE_TOML, message fragments)
SPACE_CASES = [
    ("one-domain", {"domains": ["web"]}, ('["web", "code"]', '["web"]'),
     ["a space needs at least 2 domains to mix; got ['web']",
      "Add the other data sources you want to weigh against each other"]),
    ("duplicate-domains", {"domains": ["web", "web"]}, ('["web", "code"]', '["web", "web"]'),
     ["duplicate domain names ['web']", "give each domain a unique name"]),
    ("empty-step-grid", {"steps": []}, ("steps = [100, 200]", "steps = []"),
     ["the step grid is empty", "give at least one number of training steps"]),
    ("target-steps-not-on-the-grid", {"target": (1000, 300)}, ("steps = 200 }", "steps = 300 }"),
     ["target steps 300 is not on the step grid (100..200, 2 values)", "add it to `steps`"]),
    ("target-scale-not-on-the-grid", {"target": (500, 200)}, ("scale = 1000,", "scale = 500,"),
     ["target scale 500M is not one of the space's scales [70.0, 1000.0]",
      "add it to `scales` or pick one of them"]),
]  # fmt: skip
SPACE_IDS = [c[0] for c in SPACE_CASES]


@pytest.mark.parametrize(
    ("overrides", "fragments"), [(c[1], c[3]) for c in SPACE_CASES], ids=SPACE_IDS
)
def test_space_refuses(overrides, fragments):
    with refused(ValueError, *fragments):
        rj.Space(**{**SPACE_BASE, **overrides})


@pytest.mark.parametrize(("edit", "fragments"), [c[2:] for c in SPACE_CASES], ids=SPACE_IDS)
def test_space_file_refuses(edit, fragments):
    text = SPACE_TOML.replace(*edit)
    assert text != SPACE_TOML
    with refused(ValueError, "space.toml: ", *fragments):
        space_file.parse_space(text, source="space.toml")


@pytest.mark.parametrize(("edit", "fragments"), [c[2:] for c in SPACE_CASES], ids=SPACE_IDS)
def test_init_check_command_refuses(tmp_path, capsys, edit, fragments):
    path = tmp_path / "space.toml"
    path.write_text(SPACE_TOML.replace(*edit))
    cli_refuses(capsys, ["init", "--check", str(path)], f"{path}: ", *fragments)


def test_the_base_space_of_these_cases_is_valid(tmp_path, capsys):
    assert rj.Space(**SPACE_BASE).domains == ("web", "code")
    path = tmp_path / "space.toml"
    path.write_text(SPACE_TOML)
    assert main(["init", "--check", str(path)]) == 0
    assert "2 domains ['web', 'code']" in capsys.readouterr().out


# ============================================================================ run tables
def test_concatenate_refuses_tables_with_different_domains():
    a = run_table(K=3)
    b = run_table(K=3, domains=["d0", "d1", "d3"], run_ids=["p", "q"])
    with refused(
        ValueError,
        "table 1's domains differ from table 0's: it has ['d3'] that table 0 lacks and lacks "
        "['d2']",
        "rename the domains to match, or pool only tables that share them",
    ):
        rj.RunTable.concatenate([a, b])
    with refused(ValueError, "table 1's domains differ from table 0's: it has ['d3'] that"):
        rj.RunTable.concatenate([a, run_table(K=4, run_ids=["p", "q"])])


def test_paper_pickle_refuses_runs_over_different_domains(tmp_path):
    pd = pytest.importorskip("pandas")
    history = pd.DataFrame({"_step": [100, 200], "eval/loss": [3.0, 2.8]})
    frame = pd.DataFrame(
        {
            "run_id": ["x", "y"],
            "group": ["20M", "20M"],
            "categories": [["a", "b"], ["a", "c"]],
            "token_probabilities": [[0.5, 0.5], [0.5, 0.5]],
            "history": [history, history],
        }
    )
    path = tmp_path / "runs.pkl"
    frame.to_pickle(path)
    with refused(
        ValueError,
        "run 'y' mixes domains ['a', 'c'], but earlier runs mix ['a', 'b']",
        "all runs of one table must share one domain list: fix the run's categories or drop it",
    ):
        rj.RunTable.from_paper_pickle(path, trusted=True)


LONG_CSV = """run,size,step,w_a,w_b,w_c,loss
r1,70M,100,0.2,0.3,0.5,4.0
r2,70M,100,0.6,0.2,0.2,4.2
"""


def read_long(path, **kw):
    args = dict(run_column="run", scale_column="size", step_column="step",
                mixture_columns=["w_a", "w_b", "w_c"], metric_columns=["loss"])  # fmt: skip
    return rj.RunTable.from_long_csv(path, **{**args, **kw})


def test_long_csv_refuses_a_mixture_column_it_lacks(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text(LONG_CSV)
    with refused(
        ValueError, f"{path}: no mixture column 'w_d'", "did you mean 'w_c', 'w_b', 'w_a'?"
    ):
        read_long(path, mixture_columns=["w_a", "w_b", "w_d"])


def test_long_csv_refuses_a_run_without_a_weight_for_a_domain(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text(LONG_CSV.replace("0.6,0.2,0.2", "0.6,0.4,"))
    with refused(
        ValueError,
        f"{path} line 3: column 'w_c' is empty; it needs a number",
        "fill it in (a weight of 0 for a domain the run does not use) or drop the row",
    ):
        read_long(path)


# ---------------------------------------------------------------------------- empty tables
EMPTY_TABLE = ["the run table is empty: it has no runs", "build it from at least one run"]


def test_run_table_refuses_zero_runs():
    with refused(ValueError, *EMPTY_TABLE):
        run_table(R=0, mixtures=np.zeros((0, 3)), scales=np.zeros(0))
    with refused(ValueError, *EMPTY_TABLE):
        run_table().select_runs(np.zeros(2, bool))


def test_csv_with_a_header_and_no_rows_is_refused(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text(LONG_CSV.split("\n")[0] + "\n")
    fix = "add the runs' rows below the header (or check that this is the right file)"
    with refused(ValueError, f"{path} has a header but no data rows", fix):
        read_long(path)
    values = tmp_path / "values.csv"
    values.write_text("index,loss\n1,3.0\n")
    mixtures = tmp_path / "mixtures.csv"
    mixtures.write_text("index,w_a,w_b\n")
    with refused(ValueError, f"{mixtures} has a header but no data rows", fix):
        rj.RunTable.from_wide_csvs(mixtures, values, scale=60, step=1000)


def test_empty_csv_file_is_refused(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("")
    with refused(ValueError, f"{path} is empty", "expected a header row naming the columns"):
        read_long(path)


def test_summary_command_refuses_an_empty_table(tmp_path, capsys):
    path = tmp_path / "empty.npz"
    np.savez(
        path,
        mixtures=np.zeros((0, 3)),
        scales=np.zeros(0),
        steps=np.array([100]),
        values=np.zeros((0, 1, 1)),
        mask=np.zeros((0, 1, 1), bool),
        domains=np.array(ABC),
        metrics=np.array(["eval/loss"]),
        run_ids=np.array([], dtype=np.str_),
        format=np.asarray("recipes_jax.RunTable/1"),
    )
    cli_refuses(capsys, ["summary", str(path)], *EMPTY_TABLE)


# ============================================================================ metric names
DID_YOU_MEAN = ["no metric 'eval/los' in this run table", "did you mean 'eval/loss'"]


def test_metric_index_suggests_close_names():
    table = run_table(M=2)
    with refused(KeyError, *DID_YOU_MEAN, "(2 metrics available)"):
        table.metric_index("eval/los")


def test_simulator_refuses_an_unknown_metric_with_close_names():
    with refused(KeyError, *DID_YOU_MEAN):
        rj.Simulator(sim_table(), metric="eval/los")  # refused before any fitting


def test_runs_from_table_refuses_an_unknown_metric_with_close_names():
    table = run_table(M=2)
    space = rj.Space.from_run_table(table)
    with refused(KeyError, *DID_YOU_MEAN):
        ledger.runs_from_table(table, space, "eval/los")


def test_simulate_command_refuses_an_unknown_metric_with_close_names(fitted, capsys):
    path = fitted[0]
    argv = ["simulate", "--table", str(path), "--metric", "eval/los", "--mixture", "0.2,0.3,0.5",
            "--scale", "20", "--steps", "200"]  # fmt: skip
    cli_refuses(capsys, argv, *DID_YOU_MEAN)


def test_simulate_command_names_a_mixture_that_is_not_numbers(tmp_path, capsys):
    from recipes_jax.cli import main

    code = main(
        ["simulate", "--table", str(tmp_path / "t.npz"), "--mixture", "a,b", "--scale", "20",
         "--steps", "100"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "is not a comma-separated list of numbers" in err and "e.g." in err
