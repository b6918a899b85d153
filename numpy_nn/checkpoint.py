"""Weight files into numpy_nn: the shared safetensors format, numpy_nn's earlier .npz, and what it refuses.
(Writing is shared: every file either twin writes is common/weights.py's safetensors.)"""
import zipfile
from pathlib import Path

import numpy as np

from common import weights
from common.errors import RunError
from numpy_nn.model import build


def read_npz(path: Path, model) -> dict:
    """numpy_nn's earlier format, np.savez of model.params under numpy_nn's own names and layouts
    ("fc1.W", (in, out)), read without unpickling and returned under torch's names, through the model."""
    if not zipfile.is_zipfile(path):  # np.load would take anything else for a pickle (and refuse it)
        raise RunError(f"{path}: not a readable .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except ValueError as e:  # object arrays: unpickling refused
        raise RunError(f"{path}: holds pickled objects, which are never unpickled here "
                       f"({' '.join(str(e).split())[:60]})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise RunError(f"{path}: not a readable .npz file ({' '.join(str(e).split())[:100]})") from None
    weights.check_finite(arrays, path)
    try:
        weights.check_match(arrays, model.params)
    except ValueError as e:
        raise RunError(f"{path}: {e}; an .npz holds no architecture: pass the model flags it was trained with") from None
    for name, p in model.params.items():
        p[...] = arrays[name]
    return {k: np.array(v) for k, v in model.state_dict().items()}


def refuse_pickle(path: Path):
    raise RunError(f"{path}: a PyTorch pickle, which numpy_nn does not read (it imports no torch); evaluate it "
                   f"with pytorch_nn/train.py --evaluate {path}")


def read_weights(path: Path, args) -> tuple[dict, dict]:
    """(arrays under torch's names, metadata) of a weights file, by its kind."""
    return weights.read_any(path, {".npz": lambda p: read_npz(p, build(args)), ".pt": refuse_pickle,
                                   ".pth": refuse_pickle})
