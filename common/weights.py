"""The one weight format both twins share: torch's state_dict names and layouts, as NumPy arrays, written as
safetensors (a JSON header, then raw bytes: no pickle, nothing in it can run code) with what the weights
are in the header's metadata. Model files (model.safetensors) and checkpoints (checkpoint.safetensors)
are both this format; only their metadata differ.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from common.errors import RunError
from common.files import atomic_path, jsonable

FORMAT = "mnist-twins"
# The flags that decide which tensors a model has and what they hold: a model file records them, and
# --evaluate takes them from it (a flag that says otherwise is refused).
ARCHITECTURE = ("model", "hidden", "channels", "kernel_size", "padding", "width", "depth", "steps", "patch", "heads",
                "mlp_ratio", "batch_norm", "activation", "dtype")


def dtype_name(a) -> str:
    """A NumPy array's or a torch tensor's element type, as NumPy names it ("float32")."""
    return str(a.dtype).removeprefix("torch.")


def check_match(arrays: dict, own: dict) -> None:
    """Raise ValueError, in one line, unless arrays has exactly own's names, shapes and element types."""
    if set(arrays) != set(own):
        missing, extra = sorted(set(own) - set(arrays)), sorted(set(arrays) - set(own))
        raise ValueError("tensors do not match this model's: " + "; ".join(filter(None, [
            f"missing {', '.join(missing)}" if missing else "", f"unexpected {', '.join(extra)}" if extra else ""])))
    for name, v in own.items():
        if tuple(np.shape(arrays[name])) != tuple(v.shape):
            raise ValueError(f"{name} has shape {tuple(np.shape(arrays[name]))}, this model's is {tuple(v.shape)}")
        if dtype_name(np.asarray(arrays[name])) != dtype_name(v):
            raise ValueError(f"{name} holds {dtype_name(np.asarray(arrays[name]))}, this model's {dtype_name(v)} "
                             f"(--dtype)")


def check_finite(arrays: dict, path) -> None:
    for name, a in arrays.items():
        if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
            raise RunError(f"{path}: {name} holds NaN or infinite values (the run that wrote it diverged?); "
                           f"these weights cannot be used")


def describe(args, implementation: str, **facts) -> dict:
    """A model file's metadata: what the network is (its architecture flags), who trained it, and facts
    such as its test accuracy."""
    config = jsonable(vars(args))
    return {"kind": "model", "implementation": implementation, **{k: config[k] for k in ARCHITECTURE},
            **facts, "config": config}


def write_file(path: Path, arrays: dict, metadata: dict) -> None:
    """arrays (name -> NumPy array) as safetensors, each metadata value as JSON; atomically."""
    from safetensors.numpy import save_file
    header = {"format": FORMAT, **metadata}
    with atomic_path(path) as tmp:
        save_file({k: np.asarray(v, order="C") for k, v in arrays.items()}, str(tmp),  # (0-d stays 0-d)
                  metadata={k: json.dumps(jsonable(v)) for k, v in header.items()})


def read_metadata(path: Path) -> dict:
    """The header's metadata, parsed; {} for a safetensors file that another tool wrote without ours."""
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="numpy") as f:
            raw = f.metadata() or {}
    except FileNotFoundError:
        raise RunError(f"{path}: no such file") from None
    except Exception as e:  # SafetensorError: truncated, not safetensors at all
        raise RunError(f"{path}: not a readable safetensors file ({' '.join(str(e).split())[:120]})") from None
    try:
        meta = {k: json.loads(v) for k, v in raw.items()}
    except json.JSONDecodeError:
        return {}  # another tool's metadata: free text, not ours
    return meta if meta.get("format") == FORMAT else {}


def read_file(path: Path) -> tuple[dict, dict]:
    """(arrays, metadata) of a safetensors file; every problem is a RunError naming the file."""
    from safetensors.numpy import load_file
    meta = read_metadata(path)
    try:
        arrays = load_file(str(path))
    except Exception as e:
        raise RunError(f"{path}: not a readable safetensors file ({' '.join(str(e).split())[:120]})") from None
    check_finite(arrays, path)
    return arrays, meta


# numpy_nn's earlier names for what torch calls weight and bias (Linear and Conv2d: W, b; batch norm: gamma, beta)
NPZ_NAMES = {"W": "weight", "b": "bias", "gamma": "weight", "beta": "bias"}


def read_npz(path: Path) -> dict:
    """numpy_nn's earlier format, np.savez of its parameters under its own names and layouts ("fc1.W", (in, out)),
    read without unpickling and returned under torch's ("fc1.weight", (out, in))."""
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
    check_finite(arrays, path)
    torch_named = {}
    for name, a in arrays.items():
        layer, _, kind = name.rpartition(".")
        torch_named[f"{layer}.{NPZ_NAMES.get(kind, kind)}"] = a.T if kind == "W" and a.ndim == 2 else a  # x @ W
    return torch_named


def read_any(path: Path, readers: dict) -> tuple[dict, dict]:
    """(arrays under torch's names, metadata) of a weights file, by its kind: safetensors and numpy_nn's .npz
    here, the others by the twin's own readers (suffix -> function of the path)."""
    kind = path.suffix.lower()
    if not path.is_file():
        raise RunError(f"{path}: no such file")
    if kind == ".safetensors":
        return read_file(path)
    if kind == ".npz":
        return read_npz(path), {}
    if kind in readers:
        return readers[kind](path), {}
    kinds = [".safetensors", ".npz", *readers]
    raise RunError(f"{path}: unknown kind of weights file {path.suffix!r}; expected {', '.join(kinds[:-1])} or "
                   f"{kinds[-1]}")
