"""The notebooks run top to bottom, from a fresh kernel, on a copy: they cannot rot."""
import re
import shutil

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from conftest import ROOT


def execute(name, mnist_dir, tmp_path, monkeypatch) -> list:
    """Run notebooks/<name> in a fresh kernel; fail if any cell fails; return every cell output."""
    monkeypatch.setenv("MNIST_DIR", str(mnist_dir))  # the kernel inherits it: the same data as every test
    monkeypatch.setenv("MPLBACKEND", "Agg")  # as on headless machines and many CI setups: figures must show anyway
    copy = tmp_path / name
    shutil.copy(ROOT / "notebooks" / name, copy)
    notebook = nbformat.read(copy, as_version=4)
    client = NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT / "notebooks")}})
    try:
        client.execute()
    except CellExecutionError as e:
        pytest.fail(f"a cell of {name} failed:\n{e}", pytrace=False)
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    return outputs


def figures(outputs) -> int:
    return sum("image/png" in o.get("data", {}) for o in outputs)


def test_walkthrough_runs_top_to_bottom(mnist_dir, tmp_path, monkeypatch):
    """The walkthrough runs, and what it prints as evidence holds: the twins' losses on one batch, finite differences
    against backprop, one step of two optimizers, the convolution against torch and the fast one against it, and
    the accuracies of what it trains."""
    outputs = execute("walkthrough.ipynb", mnist_dir, tmp_path, monkeypatch)
    assert figures(outputs) == 5  # batch, curves, mistakes, weights, conv maps
    text = "".join(o.get("text", "") for o in outputs)
    numbers = lambda pattern: [tuple(map(float, m)) if isinstance(m, tuple) else float(m)  # noqa: E731
                               for m in re.findall(pattern, text)]
    (ours, theirs), = numbers(r"numpy_nn (\S+)\ntorch +(\S+)")
    assert abs(ours - theirs) <= 1e-12 * abs(theirs)
    checks = numbers(r"finite difference ([-+][\d.]+), backprop ([-+][\d.]+)")
    assert len(checks) == 3 and all(abs(fd - bp) <= 1e-7 for fd, bp in checks), checks
    steps = numbers(r"largest parameter difference after one step: (\S+)")
    assert len(steps) == 2 and max(steps) <= 1e-12, steps
    convs = numbers(r"max \|numpy_nn (?:reference - torch conv2d|fast - reference)\|: +(\S+)")
    assert len(convs) == 2 and max(convs) <= 1e-12, convs
    accuracies = numbers(r"test accuracy (\d+\.\d+)%")
    assert len(accuracies) >= 3 and min(accuracies) >= 90, accuracies


def test_autograd_engine_equals_hand_backprop_and_torch(mnist_dir, tmp_path, monkeypatch):
    """notebooks/autograd.ipynb: its closing 'parity:' line gives the engine's worst float64 differences from
    numpy_nn's hand-written backprop and from pytorch_nn over 150 training steps; both within 1e-12."""
    outputs = execute("autograd.ipynb", mnist_dir, tmp_path, monkeypatch)
    assert figures(outputs) == 2  # the three loss curves and their differences; the graph
    text = "".join(o.get("text", "") for o in outputs)
    found = re.search(r"^parity: engine vs numpy_nn (\S+), engine vs torch (\S+) ", text, re.MULTILINE)
    assert found, text[-500:]
    assert float(found[1]) <= 1e-12 and float(found[2]) <= 1e-12, found[0]
    checks = re.search(r"gradient checks worst: (\S+) vs finite differences, (\S+) vs torch autograd", text)
    assert float(checks[1]) <= 1e-7 and float(checks[2]) <= 1e-13, checks[0]
