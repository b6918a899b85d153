import gzip
import os
from pathlib import Path

import numpy as np
import pytest

import data_loader
import mnist_files

ROOT = Path(__file__).resolve().parents[1]


def find_mnist() -> Path:
    """$MNIST_DIR, else ./data, else ../shared/mnist beside the repo; found nowhere, downloaded once into
    ./data through the data loader (torchvision), as the train scripts do. The tests need the real files."""
    for candidate in (os.environ.get("MNIST_DIR"), ROOT / "data", ROOT.parent / "shared" / "mnist"):
        if candidate and mnist_files.locate(Path(candidate))[1] == []:
            return Path(candidate)
    try:
        mnist_files.load_raw(ROOT / "data")
    except mnist_files.DataError as e:
        pytest.fail(f"MNIST not found and not downloadable: {e}", pytrace=False)
    return ROOT / "data"


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    return find_mnist()


@pytest.fixture(scope="session")
def mnist64(mnist_dir):
    """float64 arrays with a 2,000-image training subset: what the parity tests train on."""
    return data_loader.load_mnist(mnist_dir, dtype=np.float64, val_size=1000, limit_train=2000)


@pytest.fixture(scope="session")
def images64(mnist_dir):
    """float64 (N, 1, 28, 28) views; 1,000 training images: 32 steps of 32 per epoch (the CNN parity tests)."""
    return data_loader.load_mnist(mnist_dir, dtype=np.float64, val_size=1000, limit_train=1000, images=True)


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """An IDX file for a uint8 array (magic 0x801 for 1-D labels, 0x803 for 3-D images)."""
    magic = magic if magic is not None else 0x800 + array.ndim
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(folder: Path, n_train=12, n_test=7, gz=True, seed=0) -> dict:
    """Four small, valid IDX files in folder; returns their arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for key, a in arrays.items():
        blob = idx_bytes(a)
        name = mnist_files.FILES[key]
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(blob))
        else:
            (folder / name).write_bytes(blob)
    return arrays


def readline(proc, timeout=120, stream=None) -> str:
    """The next line of a child's stdout (or stream), waiting at most timeout seconds (a stuck child fails its test,
    never stalls the suite)."""
    import select
    stream = stream or proc.stdout
    ready, _, _ = select.select([stream], [], [], timeout)
    if not ready:
        proc.kill()
        pytest.fail(f"no output from the child within {timeout} s", pytrace=False)
    return stream.readline()


def on_cpu(trainer_module, argv) -> list:
    """pytorch_nn's runs pinned to the CPU (its --device auto would move them to a GPU where there is one)."""
    return [*argv, "--device", "cpu"] if trainer_module.Trainer.name == "pytorch" and "--device" not in argv else argv


def run_train(trainer_module, argv, mnist_dir):
    """A train.py's main in-process (the CLI, minus Python start-up), pytorch_nn on the CPU unless told otherwise:
    (exit code, history or None)."""
    import json
    from common import cli
    argv = on_cpu(trainer_module, argv)
    out = None
    for flag in ("--out", "--resume"):  # a resumed run writes where its checkpoint is, unless told otherwise
        if flag in argv:
            out = Path(argv[argv.index(flag) + 1])
    code = cli.main(trainer_module.Trainer, ["--data-dir", str(mnist_dir), "--quiet", *argv],
                       add_flags=getattr(trainer_module, "add_flags", None))
    history = json.loads((out / "history.json").read_text()) if out and os.path.exists(out / "history.json") else None
    return code, history


QUICK = ["--limit-train", "2000", "--val-size", "500", "--epochs", "2", "--threads", "1"]
