"""The twins are one network: same initial weights, same batches, same losses step by step (float64).

Like llm.c's test_gpt2: train both side by side and compare every step's loss and the final weights,
printing the first values and the largest difference when they part.
"""
import numpy as np
import pytest
import torch

import common
import data_loader
import numpy_nn.train
import pytorch_nn.train
from conftest import run_train
from pytorch_nn.model import numpy_from_state_dict, state_dict_from_numpy

LOSS_RTOL, WEIGHT_TOL, CLI_TOL = 1e-9, 1e-8, 1e-7
EPOCHS = 4  # x 32 batches of 64 from 2,000 images = 128 steps
CASES = {
    "sgd": ["--optimizer", "sgd", "--lr", "0.05", "--weight-decay", "1e-3", "--schedule", "step", "--gamma", "0.7"],
    "momentum": ["--optimizer", "sgd", "--lr", "0.02", "--momentum", "0.9", "--weight-decay", "1e-3", "--schedule", "cosine"],
    "nesterov": ["--optimizer", "sgd", "--lr", "0.02", "--momentum", "0.9", "--nesterov", "--weight-decay", "1e-3",
                 "--schedule", "cosine"],
    "adam": ["--optimizer", "adam", "--lr", "2e-3", "--weight-decay", "1e-4", "--schedule", "cosine"],
    "adamw": ["--optimizer", "adamw", "--lr", "2e-3", "--weight-decay", "0.05", "--schedule", "step",
              "--step-size", "2", "--gamma", "0.5"],
}


def make_args(argv, parser_from=pytorch_nn.train):
    parser = common.make_parser("parity")
    parser_from.add_flags(parser)
    return common.parse_args(parser, ["--dtype", "float64", "--dropout", "0", "--epochs", str(EPOCHS),
                                      "--seed", "5", "--threads", "1", "--device", "cpu", *argv])


def losses_and_weights(trainer, data, args):
    losses = []
    x, y = trainer.place(data.x_train, data.y_train)
    for epoch in range(args.epochs):
        for xb, yb in data_loader.batches(x, y, args.batch_size, args.seed, epoch):
            losses.append(trainer.train_step(xb, yb)[0])
        trainer.end_epoch()
    return (np.array(losses) if isinstance(losses[0], float) else losses), trainer


def weights_of(trainer):
    return trainer.model.params if trainer.name == "numpy" else numpy_from_state_dict(trainer.model.state_dict())


def test_same_initial_weights():
    args = make_args([])
    a, b = numpy_nn.train.Trainer(args), pytorch_nn.train.Trainer(args)
    wa, wb = weights_of(a), weights_of(b)
    assert wa.keys() == wb.keys() == {"fc1.W", "fc1.b", "fc2.W", "fc2.b", "fc3.W", "fc3.b"}
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)


@pytest.mark.parametrize("case", CASES)
def test_step_by_step_parity(case, mnist64):
    args = make_args(CASES[case])
    np_losses, np_trainer = losses_and_weights(numpy_nn.train.Trainer(args), mnist64, args)
    pt_losses, pt_trainer = losses_and_weights(pytorch_nn.train.Trainer(args), mnist64, args)
    assert len(np_losses) == len(pt_losses) >= 100
    rel = np.abs(np_losses - pt_losses) / np.abs(pt_losses)
    first = np.argmax(rel > LOSS_RTOL) if np.any(rel > LOSS_RTOL) else None
    assert first is None, (f"{case}: step {first + 1} loss numpy {np_losses[first]!r} vs torch {pt_losses[first]!r}; "
                           f"max rel diff {rel.max():.2e}; first losses {np_losses[:3]} vs {pt_losses[:3]}")
    assert np_losses[-1] < np_losses[0] * 0.5  # and it is training, not standing still
    wa, wb = weights_of(np_trainer), weights_of(pt_trainer)
    for k in wa:
        diff = np.max(np.abs(wa[k] - wb[k]))
        assert diff <= WEIGHT_TOL, f"{case}: final {k} differs by {diff:.2e}"


def test_cli_histories_agree(mnist_dir, tmp_path):
    argv = ["--dtype", "float64", "--dropout", "0", "--limit-train", "2000", "--val-size", "500",
            "--epochs", "3", "--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.02", "--threads", "1"]
    runs = {}
    for name, module in (("numpy", numpy_nn.train), ("pytorch", pytorch_nn.train)):
        code, runs[name] = run_train(module, [*argv, "--out", str(tmp_path / name)], mnist_dir)
        assert code == 0
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
        a = np.array([e[key] for e in runs["numpy"]["epochs"]])
        b = np.array([e[key] for e in runs["pytorch"]["epochs"]])
        np.testing.assert_allclose(a, b, rtol=CLI_TOL, atol=0, err_msg=key)
    assert runs["numpy"]["test_loss"] == pytest.approx(runs["pytorch"]["test_loss"], rel=CLI_TOL)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_weight_interchange(dtype, mnist_dir):
    """numpy_nn weights -> state_dict -> numpy_nn weights is exact; both twins predict the test set alike."""
    data = data_loader.load_mnist(mnist_dir, dtype=np.dtype(dtype), val_size=0, limit_train=10)
    args = make_args(["--dtype", dtype, "--init", "torch"])
    np_trainer = numpy_nn.train.Trainer(args)
    params = {k: v + np.random.default_rng(1).standard_normal(v.shape).astype(dtype) * 0.05
              for k, v in np_trainer.model.params.items()}  # not just the initial point
    np_trainer.model.load(params)
    back = numpy_from_state_dict(state_dict_from_numpy(params))
    assert all(np.array_equal(back[k], params[k]) and back[k].dtype == params[k].dtype for k in params)

    pt_trainer = pytorch_nn.train.Trainer(args)
    pt_trainer.model.load_state_dict(state_dict_from_numpy(params))
    a, b = np_trainer.predict(data.x_test), pt_trainer.predict(data.x_test)
    assert np.array_equal(a.argmax(1), b.argmax(1))
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 if dtype == "float64" else 1e-4)
