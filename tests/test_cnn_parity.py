"""The CNN twins are one network: batch norm on, dropout off, float64, step by step, through the CLIs,
and by weight interchange with the batch-norm statistics included."""
import numpy as np
import pytest

import data_loader
import numpy_nn.train
import pytorch_nn.train
from test_parity import LOSS_RTOL, WEIGHT_TOL, assert_cli_histories_agree, losses_and_weights, make_args

SMALL = ["--model", "cnn", "--channels", "4,8", "--kernel-size", "3", "--hidden", "16", "--batch-norm",
         "--batch-size", "32"]
CASES = {
    "momentum": ["--optimizer", "sgd", "--lr", "0.02", "--momentum", "0.9", "--weight-decay", "1e-3", "--schedule", "cosine"],
    "adamw": ["--optimizer", "adamw", "--lr", "2e-3", "--weight-decay", "0.05", "--schedule", "step", "--step-size", "2",
              "--gamma", "0.5"],
}


@pytest.fixture(scope="module")
def images64(mnist_dir):
    """float64 (N, 1, 28, 28) views; 1,000 training images: 32 steps of 32 per epoch."""
    return data_loader.load_mnist(mnist_dir, dtype=np.float64, val_size=1000, limit_train=1000, images=True)


@pytest.mark.parametrize("case", CASES)
def test_cnn_step_by_step_parity(case, images64):
    args = make_args([*SMALL, *CASES[case]])
    np_losses, np_trainer = losses_and_weights(numpy_nn.train.Trainer(args), images64, args)
    pt_losses, pt_trainer = losses_and_weights(pytorch_nn.train.Trainer(args), images64, args)
    assert len(np_losses) == len(pt_losses) >= 100
    rel = np.abs(np_losses - pt_losses) / np.abs(pt_losses)
    assert rel.max() <= LOSS_RTOL, f"{case}: step {rel.argmax() + 1} differs by {rel.max():.2e} (relative)"
    assert np_losses[-1] < np_losses[0] * 0.5
    wa, wb = np_trainer.weights(), pt_trainer.weights()
    assert wa.keys() == wb.keys() and "conv2_bn.running_var" in wa and "conv1.bias" not in wa
    for k in wa:  # weights, running statistics, and num_batches_tracked
        diff = np.max(np.abs(wa[k] - wb[k]))
        assert diff <= WEIGHT_TOL, f"{case}: final {k} differs by {diff:.2e}"
    assert int(wa["conv1_bn.num_batches_tracked"]) == len(np_losses)


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
