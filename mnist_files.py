"""The four MNIST IDX files: where they are, how they are fetched, and every check that they are MNIST.

A bad file gives one DataError line naming it and the problem; nothing here returns a half-checked array.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.files import file_in_the_way

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
IMAGE_MAGIC, LABEL_MAGIC = 0x803, 0x801


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
    """Fetch MNIST with torchvision into folder/MNIST/raw; any failure becomes one DataError line. It
    downloads into a staging folder and moves only finished files into place, so a failed download leaves
    nothing behind: no partial file, no empty MNIST/raw, not even `folder` if it did not exist."""
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".mnist-download-", dir=folder))
    try:
        from torchvision.datasets import MNIST

        for train in (True, False):
            MNIST(str(staging), train=train, download=True)
        raw = folder / "MNIST" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        for f in (staging / "MNIST" / "raw").iterdir():
            os.replace(f, raw / f.name)
    except Exception as e:  # torchvision raises RuntimeError, URLError, OSError... all mean "no data"
        shutil.rmtree(staging, ignore_errors=True)
        for p in created:  # deepest first
            with contextlib.suppress(OSError):
                p.rmdir()
        reason = " ".join(str(e).split())[:160]
        raise DataError(f"download into {folder} failed ({type(e).__name__}: {reason})") from None
    shutil.rmtree(staging, ignore_errors=True)


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
    not_folder = file_in_the_way(folder)
    if not_folder is not None:
        where = "--data-dir" if data_dir else "MNIST_DIR" if os.environ.get("MNIST_DIR") else "the data folder"
        raise DataError(f"{where} {folder}: {'it' if not_folder == folder else not_folder} is a file, not a folder; "
                        f"name the folder that holds the four MNIST IDX files")
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
