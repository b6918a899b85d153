"""The GPU code paths, exercised on the CPU: deferred loss reading and numpy_nn's array-module backend.
What needs a real GPU (CUDA, CuPy) is in test_gpu.py and skips, with its reason, where there is none."""
import numpy as np
import pytest

from common import cli, flags, loop
from common.errors import Diverged
import data_loader
import numpy_nn.train
import pytorch_nn.train
from conftest import QUICK

TRAINERS = {"numpy": numpy_nn.train, "pytorch": pytorch_nn.train}


def _args(module, argv):
    parser = flags.make_parser("t")
    module.add_flags(parser)
    return flags.parse_args(parser, ["--quiet", *QUICK, *argv])


def _fit(module, args, data, deferred):
    trainer = module.Trainer(args)
    trainer.sync_every_step = not deferred
    history = loop.fit(trainer, data, args, log=lambda line: None)
    for e in history["epochs"]:
        del e["epoch_seconds"]
    return history["epochs"], history["test_loss"]


@pytest.mark.parametrize("impl", TRAINERS)
def test_deferred_losses_give_the_same_history(impl, mnist_dir):
    """Reading losses once per epoch (the GPU path) changes nothing but when they are read."""
    args = _args(TRAINERS[impl], [])
    data = data_loader.load_mnist(mnist_dir, val_size=500, limit_train=2000)
    assert _fit(TRAINERS[impl], args, data, deferred=True) == _fit(TRAINERS[impl], args, data, deferred=False)


@pytest.mark.parametrize("impl", TRAINERS)
def test_deferred_divergence_names_the_same_step(impl, mnist_dir):
    args = _args(TRAINERS[impl], ["--optimizer", "sgd", "--lr", "1e6"])
    data = data_loader.load_mnist(mnist_dir, val_size=500, limit_train=2000)
    messages = []
    for deferred in (False, True):
        with pytest.raises(Diverged) as e:
            _fit(TRAINERS[impl], args, data, deferred)
        messages.append(str(e.value))
    assert messages[0] == messages[1] and "step" in messages[0]


def test_placed_tensors_are_indexed_like_arrays():
    import torch
    x = np.arange(20, dtype=np.float32)[:, None]
    y = np.arange(20)
    plain = [yb for _, yb in data_loader.batches(x, y, 6, 1, 2)]
    placed = [yb.numpy() for _, yb in data_loader.batches(torch.from_numpy(x), torch.from_numpy(y), 6, 1, 2)]
    assert all(np.array_equal(a, b) for a, b in zip(plain, placed))


def test_cupy_backend_without_cupy_is_one_line(mnist_dir, capsys):
    pytest.importorskip("numpy")
    try:
        import cupy  # noqa: F401
        cupy.cuda.runtime.getDeviceCount()
        pytest.skip("CuPy and a GPU are here: test_gpu.py covers the backend")
    except Exception:
        pass
    code = cli.main(numpy_nn.train.Trainer, ["--data-dir", str(mnist_dir), *QUICK, "--backend", "cupy"],
                       add_flags=numpy_nn.train.add_flags)
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith("error: --backend cupy:") and "\n" not in err
