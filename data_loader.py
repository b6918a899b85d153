"""The one MNIST data path both twins read: IDX files (mnist_files.py) -> normalized arrays -> seeded batches.

Both implementations get their pixels from `load_mnist` and their batches from `batches`, so they see the
same numbers in the same order; pytorch_nn only wraps the arrays with torch.from_numpy.
Run `python data_loader.py [--data-dir D]` for a summary of what it reads, with checksums.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
from dataclasses import dataclass

import numpy as np

from mnist_files import COUNTS, FILES, MD5, DataError, RawMNIST, load_raw, resolve_dir

MEAN, STD = 0.1307, 0.3081  # of the 60,000 training images scaled to [0, 1]; the customary MNIST constants
PIXEL_ROWS, PIXEL_COLS = np.divmod(np.arange(784), 28)  # each pixel's row and column in a flat image
SPLIT_SEED = 20260  # fixes which training images form the validation set, whatever the training seed


@dataclass
class MNIST:
    """Normalized splits. x_*: (N, 784) float, or (N, 1, 28, 28) views of the same memory for a CNN;
    y_*: (N,) int64 (what torch's losses take)."""
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    raw: RawMNIST


def normalize(images: np.ndarray, dtype=np.float32) -> np.ndarray:
    """uint8 (N, 28, 28) -> (N, 784) in dtype, (x/255 - MEAN) / STD, computed in dtype."""
    x = images.reshape(len(images), 28 * 28).astype(dtype)
    x *= dtype(1 / (255 * STD))
    x -= dtype(MEAN / STD)
    return x


VAL_SIZE = 5000  # training images held out for validation by default
TRAIN_IMAGES = COUNTS["train"]  # MNIST's 60,000 training images, of which VAL_SIZE are held out


def split_indices(n: int, val_size: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed (train, val) split of range(n), the same for every run and both implementations."""
    if not 0 <= val_size < n:
        raise DataError(f"--val-size {val_size}: must be between 0 and {n - 1}")
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    return perm[val_size:], np.sort(perm[:val_size])


def load_mnist(data_dir=None, *, dtype=np.float32, val_size=VAL_SIZE, limit_train=None,
               allow_download=True, counts=COUNTS, images=False) -> MNIST:
    """The arrays both twins train on: validation held out of the training set, optional training subset.
    images=True hands x_* as (N, 1, 28, 28) (NCHW, as torch's convolutions take them): views, no copy."""
    dtype = np.dtype(dtype).type
    raw = load_raw(data_dir, allow_download=allow_download, counts=counts)
    train_idx, val_idx = split_indices(len(raw.train_labels), val_size)
    if limit_train is not None:
        if limit_train < 1:
            raise DataError(f"--limit-train {limit_train}: must be at least 1")
        train_idx = train_idx[:limit_train]
    labels = raw.train_labels.astype(np.int64)
    shape = (1, 28, 28) if images else (784,)
    x = {split: normalize(pixels, dtype).reshape(-1, *shape) for split, pixels in
         (("train", raw.train_images[train_idx]), ("val", raw.train_images[val_idx]), ("test", raw.test_images))}
    return MNIST(x_train=x["train"], y_train=labels[train_idx], x_val=x["val"], y_val=labels[val_idx],
                 x_test=x["test"], y_test=raw.test_labels.astype(np.int64), raw=raw)


def batch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The epoch's sample order: a permutation drawn from (seed, epoch) alone."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, epoch: int, *, drop_last: bool = False,
            skip: int = 0, min_last: int = 1, shift: int = 0):
    """Yield (x_batch, y_batch) in the (seed, epoch) order; each sample once per epoch. x and y may be
    NumPy arrays or the same data placed by a trainer (torch tensors, CuPy arrays): the order is the same.

    The last batch holds the n % batch_size samples left over; drop_last=True skips it instead, and so does
    a last batch of fewer than min_last samples (batch norm takes statistics over a batch: it needs 2).
    skip=k starts at the epoch's batch k (a resumed run picks up exactly where it stopped).
    shift=k moves each image by up to k pixels down or up and right or left (--shift: augmentation), by offsets
    drawn from (seed, epoch) too: both twins see the same pixels.
    """
    order = _index_like(batch_order(len(x), seed, epoch), x)
    offsets = np.random.default_rng([seed, epoch, 1]).integers(-shift, shift + 1, (len(x), 2)) if shift else None
    stop = len(x) - len(x) % batch_size if drop_last or len(x) % batch_size < min_last else len(x)
    for start in range(skip * batch_size, stop, batch_size):
        idx = order[start:start + batch_size]
        yield (x[idx] if offsets is None else shifted(x[idx], offsets[start:start + batch_size])), y[idx]


def shifted(images, offsets: np.ndarray):
    """Each image (N, 784 or N, 1, 28, 28) moved by its (down, right) offset in pixels, what comes in from outside the
    frame a blank pixel; a gather in the images' own array library (NumPy, CuPy, torch): copies, no arithmetic."""
    rows, cols = PIXEL_ROWS - offsets[:, :1], PIXEL_COLS - offsets[:, 1:]  # where each output pixel comes from
    inside = (rows >= 0) & (rows < 28) & (cols >= 0) & (cols < 28)
    idx = _index_like(np.where(inside, rows * 28 + cols, 784), images)  # 784: the blank column appended below
    flat = images.reshape(len(images), 784)
    blank = flat[:, :1] * 0 - MEAN / STD  # a blank pixel in the images' dtype, as normalize() makes it: 0 - MEAN / STD
    if _library(images) == "torch":
        import torch
        return torch.take_along_dim(torch.cat([flat, blank], 1), idx, 1).reshape(images.shape)
    xp = importlib.import_module(_library(images))  # NumPy or CuPy
    return xp.take_along_axis(xp.concatenate([flat, blank], 1), idx, 1).reshape(images.shape)


def _library(x) -> str:
    """The array library x belongs to: "numpy", "torch" or "cupy"."""
    return type(x).__module__.split(".")[0]


def _index_like(order: np.ndarray, x):
    """The order in x's own array library (torch, CuPy), so that data placed on a GPU is indexed there."""
    library = _library(x)
    if library == "torch":
        import torch
        return torch.from_numpy(order).to(x.device)
    if library == "cupy":
        import cupy
        return cupy.asarray(order)
    return order


def n_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    return n // batch_size if drop_last else -(-n // batch_size)


def summary(data_dir=None) -> str:
    """The report `python data_loader.py` prints."""
    t0 = time.perf_counter()
    raw = load_raw(data_dir, checksums=True)
    x_train = normalize(raw.train_images)
    x_test = normalize(raw.test_images)
    seconds = time.perf_counter() - t0
    lines = [f"MNIST from {resolve_dir(data_dir).resolve()}  (read, validated, normalized in {seconds:.2f} s)", ""]
    for key in FILES:
        ok = "ok" if raw.md5[key] == MD5[key] else f"MISMATCH (expected {MD5[key]})"
        lines.append(f"  {raw.paths[key].name:28s} md5 {raw.md5[key]}  {ok}")
    px = raw.train_images.astype(np.float64) / 255
    lines += ["",
              f"  train  x {x_train.shape} {x_train.dtype}   y {raw.train_labels.shape}",
              f"  test   x {x_test.shape} {x_test.dtype}   y {raw.test_labels.shape}",
              f"  training pixels in [0, 1]: mean {px.mean():.4f}, std {px.std():.4f} (normalized with {MEAN}, {STD})",
              f"  normalized: train mean {x_train.mean(dtype=np.float64):+.4f} std {x_train.std(dtype=np.float64):.4f},"
              f" test mean {x_test.mean(dtype=np.float64):+.4f} std {x_test.std(dtype=np.float64):.4f}",
              ""]
    for split, labels in (("train", raw.train_labels), ("test", raw.test_labels)):
        counts = np.bincount(labels, minlength=10)
        lines.append(f"  {split:5s} label counts: " + " ".join(f"{d}:{c}" for d, c in enumerate(counts)))
    if any(raw.md5[k] != MD5[k] for k in FILES):
        lines += ["", "warning: checksums differ from the canonical MNIST files"]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Read, validate and summarize the MNIST files.")
    parser.add_argument("--data-dir", help="folder with the four IDX files (default: $MNIST_DIR, else ./data)")
    args = parser.parse_args(argv)
    try:
        print(summary(args.data_dir))
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
