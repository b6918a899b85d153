"""The one MNIST data path both twins read: IDX files -> validated, normalized arrays -> seeded batches.

Both implementations get their pixels from `load_mnist` and their batches from `batches`, so they see the
same numbers in the same order; pytorch_nn only wraps the arrays with torch.from_numpy.
Run `python data_loader.py [--data-dir D]` for a summary of what it reads, with checksums.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# MD5 of each file's uncompressed content (the .gz wrappers may be recompressed; the content may not).
MD5 = {
    "train_images": "6bbc9ace898e44ae57da46a324031adb",
    "train_labels": "a25bea736e30d166cdddb491f175f624",
    "test_images": "2646ac647ad5339dbf082846283269ea",
    "test_labels": "27ae3e4e09519cfbb04c329615203637",
}
COUNTS = {"train": 60000, "test": 10000}
MEAN, STD = 0.1307, 0.3081  # of the 60,000 training images scaled to [0, 1]; the customary MNIST constants
IMAGE_MAGIC, LABEL_MAGIC = 0x803, 0x801
SPLIT_SEED = 20260  # fixes which training images form the validation set, whatever the training seed


class DataError(Exception):
    """A data problem, said in one line that names the file; every CLI prints it as `error: ...`."""


def resolve_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """--data-dir, else $MNIST_DIR, else ./data."""
    return Path(data_dir or os.environ.get("MNIST_DIR") or "data")


def locate(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """Find each IDX file, raw or .gz, flat in `folder` or in torchvision's `folder/MNIST/raw`."""
    found, missing = {}, []
    for key, name in FILES.items():
        candidates = [d / n for d in (folder, folder / "MNIST" / "raw") for n in (name, name + ".gz")]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            missing.append(name)
        else:
            found[key] = path
    return found, missing


def download(folder: Path) -> None:
    """Fetch MNIST with torchvision into folder/MNIST/raw; any failure becomes one DataError line."""
    try:
        from torchvision.datasets import MNIST

        for train in (True, False):
            MNIST(str(folder), train=train, download=True)
    except Exception as e:  # torchvision raises RuntimeError, URLError, OSError... all mean "no data"
        reason = " ".join(str(e).split())[:160]
        raise DataError(f"download into {folder} failed ({type(e).__name__}: {reason})") from None


def read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when it is gzip (by its magic bytes, whatever its name)."""
    try:
        blob = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    if blob[:2] != b"\x1f\x8b":
        if path.suffix == ".gz":
            raise DataError(f"{path}: named .gz but is not gzip-compressed (re-download or gunzip it)")
        return blob
    try:
        return gzip.decompress(blob)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: corrupt or truncated gzip data ({e}); re-download it") from None


def parse_idx(blob: bytes, path: Path, magic: int, shape_tail: tuple[int, ...]) -> np.ndarray:
    """Check an IDX header against what MNIST must be, then view the payload as uint8 with no copy."""
    ndim = 1 + len(shape_tail)
    header_len = 4 + 4 * ndim
    if len(blob) < header_len:
        raise DataError(f"{path}: {len(blob)} bytes is too short for an IDX header ({header_len} bytes)")
    got_magic = int.from_bytes(blob[:4], "big")
    if got_magic != magic:
        raise DataError(f"{path}: magic number 0x{got_magic:08x}, expected 0x{magic:08x} "
                        f"({'images' if magic == IMAGE_MAGIC else 'labels'}, uint8, {ndim}-D); wrong or corrupt file")
    dims = tuple(int(d) for d in np.frombuffer(blob, ">u4", ndim, 4))
    if dims[1:] != shape_tail:
        raise DataError(f"{path}: image size {'x'.join(map(str, dims[1:]))}, expected 28x28")
    expected = header_len + int(np.prod(dims, dtype=np.int64))
    if len(blob) < expected:
        raise DataError(f"{path}: truncated: {len(blob)} bytes, the header promises {expected}")
    if len(blob) > expected:
        raise DataError(f"{path}: {len(blob) - expected} trailing bytes after the {dims[0]} items the header declares")
    return np.frombuffer(blob, np.uint8, offset=header_len).reshape(dims)


@dataclass
class RawMNIST:
    """The four files as uint8 arrays, plus where they came from and their content MD5s (if asked)."""
    train_images: np.ndarray  # (60000, 28, 28) uint8
    train_labels: np.ndarray  # (60000,) uint8
    test_images: np.ndarray   # (10000, 28, 28) uint8
    test_labels: np.ndarray   # (10000,) uint8
    paths: dict[str, Path]
    md5: dict[str, str]


def load_raw(data_dir=None, *, allow_download=True, counts=COUNTS, checksums=False) -> RawMNIST:
    """Read and validate the four IDX files; download them first if any is missing.

    counts: the expected number of train/test items (None skips that check, for small synthetic sets).
    checksums: also compute the MD5 of each uncompressed content (about 0.1 s).
    """
    folder = resolve_dir(data_dir)
    paths, missing = locate(folder)
    if missing and allow_download:
        download_error = None
        try:
            download(folder)
        except DataError as e:
            download_error = e
        paths, missing = locate(folder)
        if missing:
            raise DataError(
                f"MNIST files missing: {', '.join(missing)} (looked in {folder} and {folder / 'MNIST' / 'raw'}); "
                f"{download_error or 'download did not provide them'}. Put the four IDX files (.gz or not) there, "
                f"or point --data-dir or MNIST_DIR at the folder that holds them")
    elif missing:
        raise DataError(f"MNIST files missing: {', '.join(missing)} (looked in {folder} and "
                        f"{folder / 'MNIST' / 'raw'}); point --data-dir or MNIST_DIR at the folder that holds them")

    arrays, md5 = {}, {}
    for key, path in paths.items():
        blob = read_bytes(path)
        if checksums:
            md5[key] = hashlib.md5(blob).hexdigest()
        is_images = key.endswith("images")
        arrays[key] = parse_idx(blob, path, IMAGE_MAGIC if is_images else LABEL_MAGIC,
                                (28, 28) if is_images else ())
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if len(images) != len(labels):
            raise DataError(f"{paths[f'{split}_labels']}: {len(labels)} labels for the {len(images)} images "
                            f"in {paths[f'{split}_images']}")
        if counts and len(images) != counts[split]:
            raise DataError(f"{paths[f'{split}_images']}: {len(images)} images, MNIST's {split} set has "
                            f"{counts[split]}; wrong or partial file")
        if labels.size and labels.max() > 9:
            bad = int(np.argmax(labels > 9))
            raise DataError(f"{paths[f'{split}_labels']}: label {labels[bad]} at index {bad}; labels must be 0-9")
    return RawMNIST(**arrays, paths=paths, md5=md5)


@dataclass
class MNIST:
    """Normalized, flattened splits. x_*: (N, 784) float; y_*: (N,) int64 (what torch's losses take)."""
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


def split_indices(n: int, val_size: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed (train, val) split of range(n), the same for every run and both implementations."""
    if not 0 <= val_size < n:
        raise DataError(f"--val-size {val_size}: must be between 0 and {n - 1}")
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    return perm[val_size:], np.sort(perm[:val_size])


def load_mnist(data_dir=None, *, dtype=np.float32, val_size=VAL_SIZE, limit_train=None,
               allow_download=True, counts=COUNTS) -> MNIST:
    """The arrays both twins train on: validation held out of the training set, optional training subset."""
    dtype = np.dtype(dtype).type
    raw = load_raw(data_dir, allow_download=allow_download, counts=counts)
    train_idx, val_idx = split_indices(len(raw.train_labels), val_size)
    if limit_train is not None:
        if limit_train < 1:
            raise DataError(f"--limit-train {limit_train}: must be at least 1")
        train_idx = train_idx[:limit_train]
    labels = raw.train_labels.astype(np.int64)
    return MNIST(
        x_train=normalize(raw.train_images[train_idx], dtype), y_train=labels[train_idx],
        x_val=normalize(raw.train_images[val_idx], dtype), y_val=labels[val_idx],
        x_test=normalize(raw.test_images, dtype), y_test=raw.test_labels.astype(np.int64),
        raw=raw,
    )


def batch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The epoch's sample order: a permutation drawn from (seed, epoch) alone."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, epoch: int, *, drop_last: bool = False):
    """Yield (x_batch, y_batch) in the (seed, epoch) order; each sample once per epoch. x and y may be
    NumPy arrays or the same data placed by a trainer (torch tensors, CuPy arrays): the order is the same.

    The last batch holds the n % batch_size samples left over; drop_last=True skips it instead.
    """
    order = _index_like(batch_order(len(x), seed, epoch), x)
    stop = len(x) - len(x) % batch_size if drop_last else len(x)
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]
        yield x[idx], y[idx]


def _index_like(order: np.ndarray, x):
    """The order in x's own array library (torch, CuPy), so that data placed on a GPU is indexed there."""
    library = type(x).__module__.split(".")[0]
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
