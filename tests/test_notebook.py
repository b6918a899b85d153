"""notebooks/walkthrough.ipynb runs top to bottom, from a fresh kernel, on a copy: it cannot rot."""
import shutil

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from conftest import ROOT


def test_walkthrough_runs_top_to_bottom(mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_DIR", str(mnist_dir))  # the kernel inherits it: the same data as every test
    copy = tmp_path / "walkthrough.ipynb"
    shutil.copy(ROOT / "notebooks" / "walkthrough.ipynb", copy)
    notebook = nbformat.read(copy, as_version=4)
    client = NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT / "notebooks")}})
    try:
        client.execute()
    except CellExecutionError as e:
        pytest.fail(f"a cell of the walkthrough failed:\n{e}", pytrace=False)
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 5  # batch, curves, mistakes, weights, conv maps
    text = "".join(o.get("text", "") for o in outputs)
    assert "finite difference" in text and "largest parameter difference after one step" in text
