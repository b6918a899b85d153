"""Weight files into numpy_nn: every format is read in common/weights.py (safetensors, numpy_nn's earlier .npz);
what is numpy_nn's own is what it refuses: a PyTorch pickle, which it cannot read without torch."""
from pathlib import Path

from common import weights
from common.errors import RunError


def refuse_pickle(path: Path):
    raise RunError(f"{path}: a PyTorch pickle, which numpy_nn does not read (it imports no torch); evaluate it "
                   f"with pytorch_nn/train.py --evaluate {path}")


def read_weights(path: Path) -> tuple[dict, dict]:
    """(arrays under torch's names, metadata) of a weights file, by its kind."""
    return weights.read_any(path, {".pt": refuse_pickle, ".pth": refuse_pickle})
