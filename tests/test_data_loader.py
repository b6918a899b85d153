"""The one data path: real MNIST, small synthetic IDX files, corrupt files, and the batch iterator."""
import gzip
from pathlib import Path

import numpy as np
import pytest

import data_loader
import mnist_files
from data_loader import DataError
from conftest import idx_bytes, write_mnist

SMALL = {"train": 12, "test": 7}


# --- the real files ---------------------------------------------------------------------------------------

def test_real_mnist_shapes_counts_checksums(mnist_dir):
    raw = mnist_files.load_raw(mnist_dir, allow_download=False, checksums=True)
    assert raw.train_images.shape == (60000, 28, 28) and raw.train_labels.shape == (60000,)
    assert raw.test_images.shape == (10000, 28, 28) and raw.test_labels.shape == (10000,)
    assert raw.md5 == mnist_files.MD5
    assert np.bincount(raw.test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_real_mnist_normalization_and_split(mnist_dir):
    d = data_loader.load_mnist(mnist_dir, allow_download=False)
    assert d.x_train.shape == (55000, 784) and d.x_val.shape == (5000, 784) and d.x_test.shape == (10000, 784)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    px = d.raw.train_images.astype(np.float64) / 255
    assert px.mean() == pytest.approx(data_loader.MEAN, abs=5e-5)
    assert px.std() == pytest.approx(data_loader.STD, abs=5e-5)
    x_all = np.concatenate([d.x_train, d.x_val]).astype(np.float64)
    assert abs(x_all.mean()) < 1e-3 and x_all.std() == pytest.approx(1, abs=1e-3)
    # the validation images are training images not in the training split
    assert len(np.intersect1d(*data_loader.split_indices(60000, 5000))) == 0


def test_float64_on_request_matches_float32(mnist_dir):
    d64 = data_loader.load_mnist(mnist_dir, dtype=np.float64, val_size=0, limit_train=500, allow_download=False)
    d32 = data_loader.load_mnist(mnist_dir, dtype=np.float32, val_size=0, limit_train=500, allow_download=False)
    assert d64.x_train.dtype == np.float64 and d64.x_val.shape == (0, 784)
    np.testing.assert_allclose(d32.x_train, d64.x_train, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(d32.y_train, d64.y_train)


def test_split_is_fixed():
    a_train, a_val = data_loader.split_indices(60000, 5000)
    b_train, b_val = data_loader.split_indices(60000, 5000)
    np.testing.assert_array_equal(a_train, b_train)
    np.testing.assert_array_equal(a_val, b_val)
    assert len(a_train) == 55000 and len(np.union1d(a_train, a_val)) == 60000
    with pytest.raises(DataError, match="--val-size"):
        data_loader.split_indices(100, 100)


def test_limit_train_takes_a_prefix_of_the_training_split(mnist_dir):
    """--limit-train N trains on the first N images of the same training split; validation is untouched."""
    whole = data_loader.load_mnist(mnist_dir, val_size=1000)
    part = data_loader.load_mnist(mnist_dir, val_size=1000, limit_train=300)
    np.testing.assert_array_equal(part.x_train, whole.x_train[:300])
    np.testing.assert_array_equal(part.y_train, whole.y_train[:300])
    np.testing.assert_array_equal(part.x_val, whole.x_val)


def test_cli_summary(mnist_dir, capsys):
    assert data_loader.main(["--data-dir", str(mnist_dir)]) == 0
    out = capsys.readouterr().out
    assert out.count(" ok") == 4 and "MISMATCH" not in out and "(60000, 784)" in out


# --- synthetic files: layouts and compression -------------------------------------------------------------

@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_synthetic_layouts(tmp_path, gz, layout):
    folder = tmp_path if layout == "flat" else tmp_path / "MNIST" / "raw"
    arrays = write_mnist(folder, gz=gz)
    raw = mnist_files.load_raw(tmp_path, allow_download=False, counts=SMALL)
    for key, a in arrays.items():
        np.testing.assert_array_equal(getattr(raw, key), a)
    assert raw.paths["train_images"].parent == folder


def test_mnist_dir_env_and_default(tmp_path, monkeypatch):
    monkeypatch.delenv("MNIST_DIR", raising=False)  # CI exports it; ./data is the fallback under test
    write_mnist(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    found = mnist_files.load_raw(allow_download=False, counts=SMALL).paths["test_labels"]
    assert found.resolve().parent == (tmp_path / "data").resolve()
    write_mnist(tmp_path / "elsewhere", seed=1)
    monkeypatch.setenv("MNIST_DIR", str(tmp_path / "elsewhere"))
    assert mnist_files.resolve_dir() == tmp_path / "elsewhere"
    assert mnist_files.resolve_dir(tmp_path / "data") == tmp_path / "data"  # --data-dir wins


def test_normalize_values():
    img = np.zeros((2, 28, 28), np.uint8)
    img[1] = 255
    x = data_loader.normalize(img, np.float64)
    assert x.shape == (2, 784)
    np.testing.assert_allclose(x[0], -data_loader.MEAN / data_loader.STD)
    np.testing.assert_allclose(x[1], (1 - data_loader.MEAN) / data_loader.STD)


# --- corrupt files: one line that names the file and the problem ------------------------------------------

def _corrupt(name, blob_fn):
    return pytest.param(name, blob_fn, id=name)


def _images(n=12, size=(28, 28)):
    return np.zeros((n, *size), np.uint8)


CORRUPT = [
    # (which file, how to make its bytes, pattern the message must contain)
    ("train-images-idx3-ubyte.gz", lambda: gzip.compress(idx_bytes(_images()))[:-12], "corrupt or truncated gzip"),
    ("train-images-idx3-ubyte.gz", lambda: b"not gzip at all", "not gzip-compressed"),
    ("train-images-idx3-ubyte", lambda: idx_bytes(_images(), magic=0x0801), "magic number"),
    ("train-images-idx3-ubyte", lambda: idx_bytes(_images(size=(28, 27))), "image size 28x27, expected 28x28"),
    ("train-images-idx3-ubyte", lambda: idx_bytes(_images())[:-100], "truncated"),
    ("train-images-idx3-ubyte", lambda: idx_bytes(_images()) + b"\0" * 5, "5 trailing bytes"),
    ("train-images-idx3-ubyte", lambda: b"\0\0\x08", "too short for an IDX header"),
    ("train-images-idx3-ubyte", lambda: idx_bytes(_images(n=11)), "11 labels for the 11 images|12 labels for the 11"),
    ("train-labels-idx1-ubyte", lambda: idx_bytes(np.array([3] * 11 + [10], np.uint8)), "label 10 at index 11"),
    ("t10k-images-idx3-ubyte", lambda: idx_bytes(_images(n=5)), "labels for the 5 images"),
    ("train-images-idx3-ubyte", lambda: b"", "too short"),
]


@pytest.mark.parametrize("name, make, problem", CORRUPT, ids=[f"{i}-{c[2][:24]}" for i, c in enumerate(CORRUPT)])
def test_corrupt_file_gives_one_line_naming_it(tmp_path, name, make, problem):
    write_mnist(tmp_path, gz=False)
    for p in tmp_path.glob(name.removesuffix(".gz") + "*"):
        p.unlink()
    (tmp_path / name).write_bytes(make())
    with pytest.raises(DataError) as e:
        mnist_files.load_raw(tmp_path, allow_download=False, counts=SMALL)
    msg = str(e.value)
    assert "\n" not in msg and name in msg
    assert any(p in msg for p in problem.split("|")), msg


def test_wrong_count_for_mnist(tmp_path):
    write_mnist(tmp_path, n_train=12, n_test=7)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: 12 images, MNIST's train set has 60000"):
        mnist_files.load_raw(tmp_path, allow_download=False)


def test_corrupt_file_through_the_cli(tmp_path, capsys):
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    assert data_loader.main(["--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "t10k-labels-idx1-ubyte.gz" in err and "\n" not in err


def test_missing_folder_with_failing_download(tmp_path, monkeypatch):
    """Offline: the download fails, and the message says what is missing, where, and how to fix it."""
    def offline(root, train=True, download=False):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: <urlopen error no network>")
    import torchvision.datasets
    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    folder = tmp_path / "nowhere"
    with pytest.raises(DataError) as e:
        mnist_files.load_raw(folder)
    msg = str(e.value)
    assert "\n" not in msg
    for part in ("t10k-labels-idx1-ubyte", str(folder), "MNIST/raw", "no network", "--data-dir", "MNIST_DIR"):
        assert part in msg


def test_download_fills_the_torchvision_layout(tmp_path, monkeypatch):
    """A successful download (faked: tests never use the network) lands in MNIST/raw and is read from there."""
    def fake(root, train=True, download=False):
        write_mnist(Path(root) / "MNIST" / "raw")
    import torchvision.datasets
    monkeypatch.setattr(torchvision.datasets, "MNIST", fake)
    raw = mnist_files.load_raw(tmp_path, counts=SMALL)
    assert raw.paths["train_images"].parent == tmp_path / "MNIST" / "raw"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["MNIST"]  # no staging folder left


def test_failed_download_leaves_nothing_behind(tmp_path, monkeypatch):
    """torchvision creates MNIST/raw and a partial file, then the network fails: none of it remains."""
    def half_then_offline(root, train=True, download=False):
        raw = Path(root) / "MNIST" / "raw"
        raw.mkdir(parents=True)
        (raw / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b partial")
        raise RuntimeError("Error downloading train-labels-idx1-ubyte.gz: <urlopen error no network>")
    import torchvision.datasets
    monkeypatch.setattr(torchvision.datasets, "MNIST", half_then_offline)
    existing, fresh = tmp_path / "mine", tmp_path / "new" / "data"
    existing.mkdir()
    (existing / "notes.txt").write_text("keep")
    for folder in (existing, fresh):
        with pytest.raises(DataError, match="no network"):
            mnist_files.load_raw(folder)
    assert [p.name for p in existing.iterdir()] == ["notes.txt"] and not (tmp_path / "new").exists()


# --- the batch iterator ------------------------------------------------------------------------------------

def _order(n, bs, seed, epoch, drop_last=False):
    x = np.arange(n)
    return [xb.copy() for xb, _ in data_loader.batches(x, x, bs, seed, epoch, drop_last=drop_last)]


def test_batches_deterministic_and_each_sample_once():
    a, b = _order(1000, 64, seed=3, epoch=2), _order(1000, 64, seed=3, epoch=2)
    assert [len(p) for p in a] == [64] * 15 + [40]  # the last partial batch, explicitly
    assert len(a) == len(b) and all(np.array_equal(p, q) for p, q in zip(a, b))
    np.testing.assert_array_equal(np.sort(np.concatenate(a)), np.arange(1000))


def test_batches_differ_across_epochs_and_seeds():
    e0, e1 = np.concatenate(_order(1000, 64, 3, 0)), np.concatenate(_order(1000, 64, 3, 1))
    s4 = np.concatenate(_order(1000, 64, 4, 0))
    assert not np.array_equal(e0, e1) and not np.array_equal(e0, s4)


def test_batches_drop_last_and_labels_follow_images():
    kept = _order(1000, 64, 0, 0, drop_last=True)
    assert len(kept) == data_loader.n_batches(1000, 64, drop_last=True) == 15
    assert data_loader.n_batches(1000, 64) == 16
    x = np.arange(10)[:, None] * np.ones((1, 3))
    for xb, yb in data_loader.batches(x, np.arange(10), 4, 0, 0):
        np.testing.assert_array_equal(xb[:, 0], yb)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shift_moves_each_image_and_fills_blank(dtype):
    """--shift: each image moved by its own offset, what enters the frame a blank pixel exactly as normalize() makes
    it; NumPy and torch gather the same bits; flat and NCHW images alike."""
    import torch
    raw = np.random.default_rng(0).integers(1, 256, (4, 28, 28)).astype(np.uint8)  # no blank pixel of its own
    offsets = np.array([[2, 0], [0, -3], [-1, 1], [0, 0]])
    out = data_loader.shifted(data_loader.normalize(raw, dtype), offsets).reshape(4, 28, 28)
    blank = data_loader.normalize(np.zeros((1, 28, 28), np.uint8), dtype)[0, 0]
    expected = np.zeros_like(raw)
    expected[0, 2:], expected[1, :, :-3] = raw[0, :-2], raw[1, :, 3:]
    expected[2, :-1, 1:], expected[3] = raw[2, 1:, :-1], raw[3]
    want = data_loader.normalize(expected, dtype).reshape(4, 28, 28)
    assert out.dtype == dtype and np.array_equal(out, want) and np.sum(out == blank) == 28 * 2 + 28 * 3 + 28 + 27
    images = data_loader.normalize(raw, dtype).reshape(4, 1, 28, 28)
    through_torch = data_loader.shifted(torch.from_numpy(images), offsets).numpy()
    assert through_torch.shape == (4, 1, 28, 28) and np.array_equal(through_torch.reshape(4, 28, 28), out)


def test_shifted_batches_follow_seed_epoch_and_resume():
    """The offsets come from (seed, epoch) alone: the same batches again, others in another epoch, and a resumed
    epoch (skip) continues with the very batches it would have had."""
    x = data_loader.normalize(np.random.default_rng(1).integers(0, 256, (50, 28, 28)).astype(np.uint8))
    y = np.arange(50)
    once = [b for b, _ in data_loader.batches(x, y, 16, 3, 0, shift=2)]
    again = [b for b, _ in data_loader.batches(x, y, 16, 3, 0, shift=2)]
    resumed = [b for b, _ in data_loader.batches(x, y, 16, 3, 0, shift=2, skip=2)]
    other = [b for b, _ in data_loader.batches(x, y, 16, 3, 1, shift=2)]
    plain = [b for b, _ in data_loader.batches(x, y, 16, 3, 0)]
    assert all(np.array_equal(a, b) for a, b in zip(once, again)) and len(once) == 4
    assert all(np.array_equal(a, b) for a, b in zip(once[2:], resumed)) and len(resumed) == 2
    assert not np.array_equal(once[0], plain[0]) and not np.array_equal(once[0], other[0])
