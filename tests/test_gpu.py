"""The twins on a GPU, at the CPU parity tolerances (float64): the MLP, the CNN, the recurrent nets and the ViT.
These need CUDA (and CuPy for numpy_nn's backend) and skip, with that reason, where there is none; run them on a
GPU machine with `pytest -m gpu`."""
import pytest
import torch

import numpy_nn.train
import pytorch_nn.train
from conftest import QUICK, run_train
from test_cnn_parity import CASES as CNN_CASES, SMALL
from test_parity import CASES, assert_lockstep, losses_and_weights, make_args, with_steps
from test_recurrent_parity import CASES as RECURRENT_CASES

pytestmark = pytest.mark.gpu
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: torch.cuda.is_available() is False")


def _has_cupy_gpu():
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


cupy_gpu = pytest.mark.skipif(not _has_cupy_gpu(), reason="no CuPy with a CUDA device (requirements-gpu.txt)")


VIT = ["--model", "vit", "--width", "16", "--depth", "2", "--heads", "2", "--hidden", "16", "--optimizer", "adamw",
       "--lr", "3e-3", "--weight-decay", "0.05"]
GPU_CASES = {**{f"mlp {k}": v for k, v in CASES.items()}, **{f"cnn {k}": [*SMALL, *v] for k, v in CNN_CASES.items()},
             **RECURRENT_CASES, "vit, adamw": VIT}


def _gpu_matches_numpy_cpu(case, request, module, **on_gpu):
    """Train numpy_nn on the CPU and `module` with the on_gpu flags, from the same weights on the same batches."""
    data = request.getfixturevalue("images64" if case.startswith("cnn") else "mnist64")
    args = with_steps(make_args(GPU_CASES[case]), data)
    cpu = losses_and_weights(numpy_nn.train.Trainer(args), data, args)
    vars(args).update(on_gpu)
    assert_lockstep(case, cpu, losses_and_weights(module.Trainer(args), data, args))


@cuda
@pytest.mark.parametrize("case", GPU_CASES)
def test_pytorch_cuda_matches_numpy_cpu(case, request):
    _gpu_matches_numpy_cpu(case, request, pytorch_nn.train, device="cuda")


@cupy_gpu
@pytest.mark.parametrize("case", GPU_CASES)
def test_numpy_nn_on_cupy_matches_numpy_cpu(case, request):
    _gpu_matches_numpy_cpu(case, request, numpy_nn.train, backend="cupy")


CNN_RUN = ["--model", "cnn", "--channels", "8,16", "--hidden", "32", "--batch-norm"]


@cuda
@pytest.mark.parametrize("model", [[], CNN_RUN], ids=["mlp", "cnn"])
def test_cuda_cli_learns(model, mnist_dir, tmp_path):
    code, h = run_train(pytorch_nn.train, [*QUICK, *model, "--device", "cuda", "--out", str(tmp_path)], mnist_dir)
    assert code == 0 and h["environment"]["device"] == "cuda" and h["test_acc"] > 0.85


@cupy_gpu
@pytest.mark.parametrize("model", [[], CNN_RUN], ids=["mlp", "cnn"])
def test_cupy_cli_learns(model, mnist_dir, tmp_path):
    """numpy_nn on CuPy learns, and its model file is scored alike by numpy_nn on the CPU."""
    code, h = run_train(numpy_nn.train, [*QUICK, *model, "--backend", "cupy", "--save-model", "--out", str(tmp_path)],
                        mnist_dir)
    assert code == 0 and h["environment"]["backend"] == "cupy" and h["test_acc"] > 0.85
    assert run_train(numpy_nn.train, ["--evaluate", str(tmp_path / "model.safetensors")], mnist_dir)[0] == 0
