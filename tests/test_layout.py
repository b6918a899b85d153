"""The layout's promises: the shared layer depends on neither twin, and numpy_nn never needs torch."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ["data_loader", "mnist_files", "common.cli", "common.loop", "common.flags", "common.metrics",
          "common.files", "common.machine", "common.weights", "common.presets", "common.errors", "common.init",
          "common.architecture", "common.resume", "common.records"]


def imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         timeout=60).stdout
    return {m.split(".")[0] for m in out.split()}


def test_the_shared_layer_imports_neither_twin_nor_torch():
    loaded = imported_after("import " + ", ".join(SHARED))
    assert not loaded & {"numpy_nn", "pytorch_nn", "torch"}, loaded & {"numpy_nn", "pytorch_nn", "torch"}


def test_numpy_nn_trains_without_torch():
    loaded = imported_after("import numpy_nn.train")
    assert "torch" not in loaded


def test_the_twins_are_mirrored_file_for_file():
    """The same files in both twins; each pytorch_nn file either holds torch code, or, where torch needs none, is its
    twin's page for the learner: a docstring that names the numpy_nn file and says what torch does instead."""
    import ast
    files = {twin: sorted(p.name for p in (ROOT / twin).glob("*.py")) for twin in ("numpy_nn", "pytorch_nn")}
    assert files["numpy_nn"] == files["pytorch_nn"]
    for name in files["pytorch_nn"]:
        tree = ast.parse((ROOT / "pytorch_nn" / name).read_text())
        code = [node for node in tree.body if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
        doc = ast.get_docstring(tree) or ""
        assert code or name == "__init__.py" or (f"numpy_nn/{name}" in doc and len(doc.split()) >= 30), (name, doc[:80])
        numpy_tree = ast.parse((ROOT / "numpy_nn" / name).read_text())
        assert ast.get_docstring(numpy_tree) and (name == "__init__.py" or len(numpy_tree.body) > 1), name


def test_pytorch_nn_imports_nothing_from_numpy_nn():
    """Each twin stands alone: what both need (initial weights, file formats) lives in common/."""
    loaded = imported_after("import pytorch_nn.train, pytorch_nn.model, pytorch_nn.weight_files")
    assert "numpy_nn" not in loaded


def test_no_source_file_over_250_lines():
    files = [p for p in ROOT.rglob("*.py") if "tests" not in p.parts and ".git" not in p.parts]
    long = {str(p.relative_to(ROOT)): n for p in files if (n := len(p.read_text().splitlines())) > 250}
    assert not long, long


def test_reference_layers_fit_on_a_screen():
    """numpy_nn's reference CNN layers read like the math: each class about 80 lines or fewer, docstrings included."""
    import ast
    for name in ("conv.py", "norm.py"):
        tree = ast.parse((ROOT / "numpy_nn" / name).read_text())
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                assert node.end_lineno - node.lineno + 1 <= 80, (name, node.name)
