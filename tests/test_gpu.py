"""The twins on a GPU, at the CPU parity tolerances (float64). These need CUDA (and CuPy for numpy_nn's
backend) and skip, with that reason, where there is none; run them on a GPU machine with `pytest -m gpu`."""
import numpy as np
import pytest
import torch

import common
import numpy_nn.train
import pytorch_nn.train
from conftest import QUICK, run_train
from test_parity import CASES, LOSS_RTOL, WEIGHT_TOL, losses_and_weights, make_args, weights_of

pytestmark = pytest.mark.gpu
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: torch.cuda.is_available() is False")


def _has_cupy_gpu():
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


cupy_gpu = pytest.mark.skipif(not _has_cupy_gpu(), reason="no CuPy with a CUDA device (requirements-gpu.txt)")


def _compare(case, a, b):
    la, ta = a
    lb, tb = b
    rel = np.abs(la - lb) / np.abs(lb)
    assert rel.max() <= LOSS_RTOL, f"{case}: max rel loss diff {rel.max():.2e}"
    wa, wb = weights_of(ta), weights_of(tb)
    for k in wa:
        diff = np.max(np.abs(np.asarray(wa[k] if not hasattr(wa[k], "get") else wa[k].get()) - wb[k]))
        assert diff <= WEIGHT_TOL, f"{case}: final {k} differs by {diff:.2e}"


@cuda
@pytest.mark.parametrize("case", CASES)
def test_pytorch_cuda_matches_numpy_cpu(case, mnist64):
    args = make_args(CASES[case])
    cpu = losses_and_weights(numpy_nn.train.Trainer(args), mnist64, args)
    args.device = "cuda"
    trainer = pytorch_nn.train.Trainer(args)
    losses, trainer = losses_and_weights(trainer, mnist64, args)
    gpu = (trainer.host(losses) if not isinstance(losses[0], float) else np.array(losses), trainer)
    _compare(case, cpu, gpu)


@cupy_gpu
@pytest.mark.parametrize("case", CASES)
def test_numpy_nn_on_cupy_matches_numpy_cpu(case, mnist64):
    args = make_args(CASES[case])
    cpu = losses_and_weights(numpy_nn.train.Trainer(args), mnist64, args)
    args.backend = "cupy"
    losses, trainer = losses_and_weights(numpy_nn.train.Trainer(args), mnist64, args)
    gpu = (trainer.host(losses) if not isinstance(losses[0], float) else np.array(losses), trainer)
    _compare(case, cpu, (gpu[0], trainer))


@cuda
def test_cuda_cli_learns(mnist_dir, tmp_path):
    code, h = run_train(pytorch_nn.train, [*QUICK, "--device", "cuda", "--out", str(tmp_path)], mnist_dir)
    assert code == 0 and h["environment"]["device"] == "cuda" and h["test_acc"] > 0.85


@cupy_gpu
def test_cupy_cli_learns(mnist_dir, tmp_path):
    code, h = run_train(numpy_nn.train, [*QUICK, "--backend", "cupy", "--save-model", "--out", str(tmp_path)], mnist_dir)
    assert code == 0 and h["environment"]["backend"] == "cupy" and h["test_acc"] > 0.85
    assert run_train(numpy_nn.train, ["--evaluate", str(tmp_path / "model.npz")], mnist_dir)[0] == 0
