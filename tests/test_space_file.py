"""Space files (TOML): the example round-trips, every mistake names the key and the fix."""

import pytest

import recipes_jax as rj
from recipes_jax import space_file
from recipes_jax.cli import main


def test_the_example_is_the_papers_setting_on_a_coarser_step_grid():
    space = space_file.parse_space(space_file.EXAMPLE)
    paper = rj.Space.paper()
    assert space.domains == paper.domains and space.scales == paper.scales
    assert space.target == paper.target and not space.maximize
    assert space.steps == tuple(range(500, 19_501, 500))
    assert space.metric == "eval/RedPajamaStackExchange/CrossEntropyLoss"
    assert float(space.cost(1000, 19_500)) == pytest.approx(1.0, rel=1e-6)
    assert float(space.cost(20, 500)) == pytest.approx(float(paper.cost(20, 500)), rel=1e-6)


def _edited(old: str, new: str) -> str:
    assert old in space_file.EXAMPLE, old
    return space_file.EXAMPLE.replace(old, new, 1)


MINIMAL = """
domains = ["web", "code"]
scales = ["70M", "2B"]
steps = [1000, 2000]
target = { scale = "2B", steps = 2000 }
metric = "acc"
direction = "maximize"
"""


def test_a_minimal_file_with_labels_lists_and_the_6nd_cost():
    space = space_file.parse_space(MINIMAL)
    assert space.scales == (70.0, 2000.0) and space.steps == (1000, 2000) and space.maximize
    # neither scale is in the paper's table: 6 N D, cost proportional to parameters x steps
    assert float(space.cost(70, 1000)) == pytest.approx(70 / 2000 * 0.5, rel=1e-6)


@pytest.mark.parametrize(
    "text, match",
    [
        ("domains = [", "not valid TOML"),
        (_edited('direction = "minimize"', 'direction = "down"'), "'minimize' or 'maximize'"),
        (_edited("domains =", "domain ="), r"unknown keys 'domain' \(did you mean 'domains'"),
        (_edited('metric = "eval', 'metrc = "eval'), "unknown keys 'metrc'"),
        (MINIMAL.replace('metric = "acc"\n', ""), r"missing keys \['metric'\]"),
        (_edited("step = 500 }", "stride = 500 }"), "start, stop and step"),
        (_edited("start = 500,", "start = 0,"), "0 < start <= stop"),
        (_edited("steps = 19500 }", "steps = 19600 }"), "target steps 19600 is not on the step"),
        (_edited("scale = 1000,", "scale = 2000,"), "target scale 2000M is not one of"),
        (_edited("target = { scale = 1000, steps = 19500 }", "target = [1000, 19500]"), "target"),
        (MINIMAL.replace('["web", "code"]', '["web"]'), "at least 2 domains"),
        (MINIMAL.replace('["web", "code"]', '["web", "web"]'), "duplicate domain names"),
        (MINIMAL.replace('["70M", "2B"]', '["70M", "big"]'), "cannot read model scale 'big'"),
        (MINIMAL.replace("[1000, 2000]", "[]"), "step grid is empty"),
        (_edited("tokens_per_step = 524288", "tokens_per_step = -1"), "positive integer"),
        (_edited("tokens_per_step = 524288", "tokens = 1"), r"unknown keys \['tokens'\]"),
        (_edited("[cost]", '[cost]\ngflops_per_step = { "20" = 1.0 }'), "no entry for scales"),
        (
            _edited("steps = 19500 }", 'steps = "19.5k" }'),
            "target steps: '19.5k' is not a positive whole number of training steps",
        ),
        (_edited("steps = 19500 }", "steps = 19500.5 }"), "19500.5 is not a positive whole number"),
        (
            _edited("[cost]", '[cost]\ngflops_per_step = { "20" = "107k" }'),
            "gflops_per_step for scale '20': '107k' is not a number",
        ),
    ],
)
def test_mistakes_name_the_key_and_the_fix(text, match):
    with pytest.raises(ValueError, match=match):
        space_file.parse_space(text, source="space.toml")


def test_init_writes_checks_and_refuses_to_overwrite(tmp_path, capsys):
    path = tmp_path / "space.toml"
    assert main(["init", "--space", str(path)]) == 0
    assert space_file.load_space(path).domains == rj.Space.paper().domains
    edited = path.read_text().replace('direction = "minimize"', 'direction = "maximize"')
    path.write_text(edited)
    assert main(["init", "--space", str(path)]) == 2  # exists: kept as edited
    assert "pass --force" in capsys.readouterr().err
    assert path.read_text() == edited
    assert main(["init", "--check", str(path)]) == 0
    assert "maximize 'eval/RedPajamaStackExchange/CrossEntropyLoss'" in capsys.readouterr().out
    assert main(["init", "--space", str(path), "--force"]) == 0
    assert path.read_text() == space_file.EXAMPLE
    assert main(["init", "--check", str(tmp_path / "absent.toml")]) == 2
    assert "recipes-jax init --space" in capsys.readouterr().err


def test_files_as_editors_save_them_and_paths_that_do_not_work(tmp_path, capsys):
    path = tmp_path / "space.toml"
    path.write_bytes(b"\xef\xbb\xbf" + space_file.EXAMPLE.replace("\n", "\r\n").encode())
    assert space_file.load_space(path).domains == rj.Space.paper().domains  # BOM, CRLF
    # a folder that does not exist is named, not a temporary file inside it
    assert main(["init", "--space", str(tmp_path / "campaign" / "space.toml")]) == 2
    err = capsys.readouterr().err
    assert f"folder {tmp_path / 'campaign'} does not exist" in err and ".tmp" not in err
    # a mistyped ledger path is "not found", not "has no runs" (which invites a fresh ledger)
    argv = ["record", "--space", str(path), "--id", "r1", "--value", "2.5", "--ledger"]
    assert main([*argv, str(tmp_path / "run.csv")]) == 2
    assert "no ledger at" in capsys.readouterr().err
    assert main([*argv, str(tmp_path)]) == 2  # a folder: one line, exit 2, no traceback
    assert "is a folder" in capsys.readouterr().err
