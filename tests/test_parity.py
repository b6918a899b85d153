"""The twins are one network: same initial weights, same batches, same losses step by step (float64).

Like llm.c's test_gpt2: train both side by side and compare every step's loss and the final weights,
printing the first values and the largest difference when they part.
"""
import numpy as np
import pytest

from common import flags
import data_loader
import numpy_nn.train
import pytorch_nn.train
from conftest import run_train

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
    "sgd, matrices decayed, label smoothing": ["--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9",
                                               "--weight-decay", "0.01", "--decay", "matrices",
                                               "--label-smoothing", "0.1"],
    "adam betas onecycle": ["--optimizer", "adam", "--lr", "5e-3", "--betas", "0.7,0.9", "--schedule", "onecycle",
                            "--warmup", "0.25"],
}


def make_args(argv, parser_from=pytorch_nn.train):
    parser = flags.make_parser("parity")
    parser_from.add_flags(parser)
    return flags.parse_args(parser, ["--dtype", "float64", "--dropout", "0", "--epochs", str(EPOCHS),
                                      "--seed", "5", "--threads", "1", "--device", "cpu", *argv])


def with_steps(args, data):
    """args with the steps an epoch of data has, as cli.load_data sets them (onecycle counts them)."""
    from common import loop
    args.steps_per_epoch = loop.batches_per_epoch(len(data.x_train), args)
    return args


def losses_and_weights(trainer, data, args):
    losses = []
    x, y = trainer.place(data.x_train, data.y_train)
    for epoch in range(args.epochs):
        for xb, yb in data_loader.batches(x, y, args.batch_size, args.seed, epoch):
            losses.append(trainer.train_step(xb, yb)[0])
        trainer.end_epoch()
    return (np.array(losses) if isinstance(losses[0], float) else losses), trainer


def test_same_initial_weights():
    args = make_args([])
    a, b = numpy_nn.train.Trainer(args), pytorch_nn.train.Trainer(args)
    wa, wb = a.weights(), b.weights()
    assert list(wa) == list(wb) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"]
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)


def assert_lockstep(name, a, b, min_steps=100):
    """a, b: (losses, trainer) of two runs from the same weights on the same batches (losses_and_weights). Every
    step's loss within LOSS_RTOL and every final tensor (weights, batch-norm statistics) within WEIGHT_TOL; on
    failure, the first step where they part with both values, as llm.c's test prints them. The one check behind
    the MLP, CNN and GPU parity tests."""
    (la, ta), (lb, tb) = [(t.host(list(l)) if not isinstance(l[0], float) else np.asarray(l), t) for l, t in (a, b)]
    assert len(la) == len(lb) >= min_steps, (len(la), len(lb))
    rel = np.abs(la - lb) / np.abs(lb)
    first = int(np.argmax(rel > LOSS_RTOL)) if np.any(rel > LOSS_RTOL) else None
    assert first is None, (f"{name}: step {first + 1} loss {la[first]!r} vs {lb[first]!r}; max rel diff {rel.max():.2e}; "
                           f"first losses {la[:3]} vs {lb[:3]}")
    assert la[-1] < la[0] * 0.5, f"{name}: not training ({la[0]:.3f} -> {la[-1]:.3f})"
    wa, wb = ta.weights(), tb.weights()
    assert wa.keys() == wb.keys()
    for k in wa:
        diff = np.max(np.abs(wa[k] - wb[k]))
        assert diff <= WEIGHT_TOL, f"{name}: final {k} differs by {diff:.2e}"
    return wa


@pytest.mark.parametrize("case", CASES)
def test_step_by_step_parity(case, mnist64):
    args = with_steps(make_args(CASES[case]), mnist64)
    assert_lockstep(case, losses_and_weights(numpy_nn.train.Trainer(args), mnist64, args),
                    losses_and_weights(pytorch_nn.train.Trainer(args), mnist64, args))


def test_cli_histories_agree(mnist_dir, tmp_path):
    assert_cli_histories_agree(["--limit-train", "2000", "--epochs", "3"], mnist_dir, tmp_path)


def assert_cli_histories_agree(extra, mnist_dir, tmp_path):
    """Both train.py CLIs with the same flags in float64: the same history.json figures, epoch by epoch."""
    argv = ["--dtype", "float64", "--dropout", "0", "--val-size", "500", "--optimizer", "sgd", "--momentum", "0.9",
            "--lr", "0.02", "--threads", "1", *extra]
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
    """Weights through either twin come back bit for bit; both twins predict the test set alike from them."""
    data = data_loader.load_mnist(mnist_dir, dtype=np.dtype(dtype), val_size=0, limit_train=10)
    args = make_args(["--dtype", dtype, "--init", "torch"])
    np_trainer, pt_trainer = numpy_nn.train.Trainer(args), pytorch_nn.train.Trainer(args)
    rng = np.random.default_rng(1)
    weights = {k: v + (rng.standard_normal(v.shape) * 0.05).astype(dtype)  # not just the initial point
               for k, v in np_trainer.weights().items()}
    for trainer in (np_trainer, pt_trainer):
        trainer.load_weights(weights)
        back = trainer.weights()
        assert back.keys() == weights.keys()
        assert all(np.array_equal(back[k], weights[k]) and back[k].dtype == weights[k].dtype for k in weights)
    a, b = np_trainer.predict(data.x_test), pt_trainer.predict(data.x_test)
    assert np.array_equal(a.argmax(1), b.argmax(1))
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 if dtype == "float64" else 1e-4)


@pytest.mark.parametrize("impl", ["numpy", "pytorch"])
def test_weights_of_another_shape_are_refused_in_one_line(impl):
    args = make_args([])
    trainer = {"numpy": numpy_nn.train.Trainer, "pytorch": pytorch_nn.train.Trainer}[impl](args)
    weights = trainer.weights()
    with pytest.raises(ValueError, match=r"^fc2.weight has shape \(64, 129\), this model's is \(64, 128\)$"):
        trainer.load_weights({**weights, "fc2.weight": np.zeros((64, 129), weights["fc2.weight"].dtype)})
    with pytest.raises(ValueError, match="missing fc3.bias; unexpected fc3.b"):
        trainer.load_weights({**{k: v for k, v in weights.items() if k != "fc3.bias"}, "fc3.b": weights["fc3.bias"]})
