"""The notebooks run top to bottom (in their quick mode, RECIPES_JAX_NOTEBOOK_QUICK=1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import DATA

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "quickstart.ipynb",
        "paper_reproduction.ipynb",
        "bring_your_own_runs.ipynb",
        "train_real_mixture.ipynb",
    ],
)
def test_notebook_runs_without_errors(name, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="notebook tests need the dev extra")
    nbclient = pytest.importorskip("nbclient", reason="notebook tests need the dev extra")
    monkeypatch.setenv("RECIPES_JAX_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("RECIPES_JAX_DATA", str(DATA))  # absent: the notebooks fall back
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": NOTEBOOKS}}
    )
    client.execute()  # raises CellExecutionError with the cell and traceback on any error
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "expected plots"
