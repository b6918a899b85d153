"""The CNN twins are one network: batch norm on, dropout off, float64, step by step, through the CLIs,
by weight interchange with the batch-norm statistics included; and numpy_nn's two sets of kernels through train.py."""
import json
import subprocess
import sys

import numpy as np
import pytest

import numpy_nn.train
import pytorch_nn.train
from conftest import ROOT
from test_parity import assert_cli_histories_agree, assert_lockstep, losses_and_weights, make_args, with_steps

SMALL = ["--model", "cnn", "--channels", "4,8", "--kernel-size", "3", "--hidden", "16", "--batch-norm",
         "--batch-size", "32"]
CASES = {
    "momentum": ["--optimizer", "sgd", "--lr", "0.02", "--momentum", "0.9", "--weight-decay", "1e-3", "--schedule", "cosine"],
    "adamw": ["--optimizer", "adamw", "--lr", "2e-3", "--weight-decay", "0.05", "--schedule", "step", "--step-size", "2",
              "--gamma", "0.5"],
    "kernels 5,3, adam betas onecycle": ["--kernel-size", "5,3", "--optimizer", "adam", "--lr", "5e-3", "--betas",
                                         "0.7,0.9", "--schedule", "onecycle", "--warmup", "0.25"],
}


@pytest.mark.parametrize("case", CASES)
def test_cnn_step_by_step_parity(case, images64):
    args = with_steps(make_args([*SMALL, *CASES[case]]), images64)
    weights = assert_lockstep(case, losses_and_weights(numpy_nn.train.Trainer(args), images64, args),
                              losses_and_weights(pytorch_nn.train.Trainer(args), images64, args))
    assert "conv2_bn.running_var" in weights and "conv1.bias" not in weights  # statistics compared too; no bias
    assert int(weights["conv1_bn.num_batches_tracked"]) == args.epochs * 32


@pytest.mark.parametrize("batch_norm", [None, "dense", "all"])
def test_speedrun_shape_step_by_step_parity(batch_norm, images64):
    """cnn-fast's network in small: unpadded 5x5 and 3x3 convolutions with biases, batch norm in the dense layer
    as the preset has it, or none, or also after each convolution (its scale and shift left to the pooling);
    numpy_nn's fast blocks (convolution, batch norm, pooling and ReLU as one layer); Adam with betas, onecycle
    stepped per batch."""
    args = with_steps(make_args(["--model", "cnn", "--channels", "4,8", "--kernel-size", "5,3", "--padding", "valid",
                                 "--hidden", "16", "--batch-size", "32", "--init", "torch", "--optimizer", "adam",
                                 "--lr", "5e-3", "--betas", "0.7,0.9", "--schedule", "onecycle",
                                 *(["--batch-norm", batch_norm] if batch_norm else [])]), images64)
    numpy_run = losses_and_weights(numpy_nn.train.Trainer(args), images64, args)
    assert f"conv1+{'conv1_bn+' if batch_norm == 'all' else ''}pool1+conv1_relu" in numpy_run[1].model.layers
    weights = assert_lockstep("speedrun shape", numpy_run, losses_and_weights(pytorch_nn.train.Trainer(args), images64, args))
    assert weights["fc1.weight"].shape == (16, 8 * 5 * 5)  # 28 -> 24 -> 12 -> 10 -> 5
    assert ("conv1.bias" in weights) == (batch_norm != "all") == ("conv2_bn.running_var" not in weights)
    assert ("fc1_bn.running_var" in weights) == ("fc1.bias" not in weights) == bool(batch_norm)


def test_cnn_cli_histories_agree(mnist_dir, tmp_path):
    assert_cli_histories_agree([*SMALL, "--limit-train", "1000", "--epochs", "2"], mnist_dir, tmp_path)


def test_cnn_weight_interchange_with_batch_norm_statistics(images64):
    """Trained weights and running statistics from each twin, evaluated by the other: identical float64
    predictions (evaluation mode reads the running statistics, so they must have travelled)."""
    args = make_args([*SMALL, *CASES["adamw"], "--epochs", "1"])
    trained = {}
    for name, module in (("numpy", numpy_nn.train), ("pytorch", pytorch_nn.train)):
        _, trainer = losses_and_weights(module.Trainer(args), images64, args)
        trained[name] = trainer
    x = images64.x_val
    for source in trained.values():
        weights = source.weights()
        assert np.abs(weights["conv1_bn.running_mean"]).max() > 0.01  # moved away from the initial zeros
        predictions = []
        for evaluator in (numpy_nn.train.Trainer(args), pytorch_nn.train.Trainer(args)):
            evaluator.load_weights(weights)
            predictions.append(evaluator.predict(x))
        np.testing.assert_array_equal(predictions[0].argmax(1), predictions[1].argmax(1))
        np.testing.assert_allclose(predictions[0], predictions[1], rtol=0, atol=1e-12)
        np.testing.assert_allclose(predictions[0], source.predict(x), rtol=0, atol=1e-12)


def test_train_py_reference_and_fast_kernels_agree_per_epoch(mnist_dir, tmp_path):
    """The CLI: the same float64 CNN trained with --kernels reference and --kernels fast, epoch by epoch."""
    histories = []
    for kernels in ("reference", "fast"):
        argv = ["--model", "cnn", "--channels", "4,8", "--hidden", "16", "--batch-norm", "--dropout", "0.2",
                "--dtype", "float64", "--epochs", "2", "--batch-size", "64", "--limit-train", "512", "--val-size", "256",
                "--kernels", kernels, "--quiet", "--data-dir", str(mnist_dir), "--out", str(tmp_path / kernels)]
        proc = subprocess.run([sys.executable, "numpy_nn/train.py", *argv], cwd=ROOT, capture_output=True, text=True,
                              timeout=150)
        assert proc.returncode == 0, proc.stderr
        histories.append((tmp_path / kernels / "history.json").read_text())
    (ref, fast) = [json.loads(h) for h in histories]
    assert ref["config"]["kernels"] == "reference" and fast["config"]["kernels"] == "fast"
    for a, b in zip(ref["epochs"] + [ref], fast["epochs"] + [fast]):
        for key in ("train_loss", "val_loss", "test_loss"):
            if key in a:
                assert abs(a[key] - b[key]) <= 1e-10 * abs(a[key]), (key, a[key], b[key])
