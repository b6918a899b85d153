"""The layout's promises: the shared layer depends on neither twin, and numpy_nn never needs torch."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ["data_loader", "mnist_files", "common.cli", "common.loop", "common.flags", "common.metrics",
          "common.files", "common.machine", "common.weights", "common.presets", "common.errors"]


def imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return {m.split(".")[0] for m in out.split()}


def test_the_shared_layer_imports_neither_twin_nor_torch():
    loaded = imported_after("import " + ", ".join(SHARED))
    assert not loaded & {"numpy_nn", "pytorch_nn", "torch"}, loaded & {"numpy_nn", "pytorch_nn", "torch"}


def test_numpy_nn_trains_without_torch():
    loaded = imported_after("import numpy_nn.train")
    assert "torch" not in loaded


def test_the_twins_are_mirrored_file_for_file():
    files = {twin: sorted(p.name for p in (ROOT / twin).glob("*.py")) for twin in ("numpy_nn", "pytorch_nn")}
    assert files["numpy_nn"] == files["pytorch_nn"]
