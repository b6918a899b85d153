"""Weight files into pytorch_nn: the shared formats (common/weights.py: safetensors, numpy_nn's earlier .npz),
and pytorch_nn's own, a plain state_dict saved with torch.save (read with torch.load(weights_only=True):
tensors only, no other pickled object)."""
import pickle
from pathlib import Path

import torch

from common import weights
from common.errors import RunError


def read_pth(path: Path) -> dict:
    """A state_dict written by torch.save(model.state_dict(), path), as NumPy arrays."""
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = " ".join(str(e).split("Check the documentation")[0].split())[:140]
        raise RunError(f"{path}: holds pickled objects other than tensors, which are never unpickled here "
                       f"(torch.load weights_only: {reason})") from None
    except Exception as e:  # truncated, not a torch file at all
        raise RunError(f"{path}: not a readable PyTorch file ({type(e).__name__}: {' '.join(str(e).split())[:100]})") from None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise RunError(f"{path}: holds a {type(sd).__name__}, not a state_dict of tensors; save model.state_dict()")
    arrays = {k: v.detach().cpu().numpy() for k, v in sd.items()}
    weights.check_finite(arrays, path)
    return arrays


def read_weights(path: Path) -> tuple[dict, dict]:
    """(arrays under torch's names, metadata) of a weights file, by its kind."""
    return weights.read_any(path, {".pt": read_pth, ".pth": read_pth})
