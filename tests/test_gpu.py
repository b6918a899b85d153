"""The twins on a GPU, at the CPU parity tolerances (float64). These need CUDA (and CuPy for numpy_nn's
backend) and skip, with that reason, where there is none; run them on a GPU machine with `pytest -m gpu`."""
import numpy as np
import pytest
import torch

import numpy_nn.train
import pytorch_nn.train
from conftest import QUICK, run_train
from test_parity import CASES, LOSS_RTOL, WEIGHT_TOL, losses_and_weights, make_args

pytestmark = pytest.mark.gpu
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: torch.cuda.is_available() is False")


def _has_cupy_gpu():
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


cupy_gpu = pytest.mark.skipif(not _has_cupy_gpu(), reason="no CuPy with a CUDA device (requirements-gpu.txt)")


def _gpu_matches_numpy_cpu(case, data, module, **on_gpu):
    """Train numpy_nn on the CPU and `module` with the on_gpu flags; compare losses and final weights."""
    args = make_args(CASES[case])
    cpu_losses, cpu = losses_and_weights(numpy_nn.train.Trainer(args), data, args)
    vars(args).update(on_gpu)
    gpu_losses, gpu = losses_and_weights(module.Trainer(args), data, args)
    gpu_losses = gpu.host(list(gpu_losses)) if not isinstance(gpu_losses[0], float) else gpu_losses
    rel = np.abs(cpu_losses - gpu_losses) / np.abs(cpu_losses)
    assert rel.max() <= LOSS_RTOL, f"{case}: max rel loss diff {rel.max():.2e}"
    wa, wb = cpu.weights(), gpu.weights()  # host arrays, whatever the device
    for k in wa:
        diff = np.max(np.abs(wa[k] - wb[k]))
        assert diff <= WEIGHT_TOL, f"{case}: final {k} differs by {diff:.2e}"


@cuda
@pytest.mark.parametrize("case", CASES)
def test_pytorch_cuda_matches_numpy_cpu(case, mnist64):
    _gpu_matches_numpy_cpu(case, mnist64, pytorch_nn.train, device="cuda")


@cupy_gpu
@pytest.mark.parametrize("case", CASES)
def test_numpy_nn_on_cupy_matches_numpy_cpu(case, mnist64):
    _gpu_matches_numpy_cpu(case, mnist64, numpy_nn.train, backend="cupy")


@cuda
def test_cuda_cli_learns(mnist_dir, tmp_path):
    code, h = run_train(pytorch_nn.train, [*QUICK, "--device", "cuda", "--out", str(tmp_path)], mnist_dir)
    assert code == 0 and h["environment"]["device"] == "cuda" and h["test_acc"] > 0.85


@cupy_gpu
def test_cupy_cli_learns(mnist_dir, tmp_path):
    code, h = run_train(numpy_nn.train, [*QUICK, "--backend", "cupy", "--save-model", "--out", str(tmp_path)], mnist_dir)
    assert code == 0 and h["environment"]["backend"] == "cupy" and h["test_acc"] > 0.85
    assert run_train(numpy_nn.train, ["--evaluate", str(tmp_path / "model.npz")], mnist_dir)[0] == 0
