"""The recurrent twins are one network: numpy_nn's RNN, LSTM and GRU layers (backpropagation through time written
out) against nn.RNN, nn.LSTM and nn.GRU, step by step from the same weights on the same batches (float64), with the
gradients clipped on some steps; through both train.py CLIs; by weight interchange on the test set."""
import numpy as np
import pytest

import data_loader
import numpy_nn.train
import pytorch_nn.train
from conftest import run_train
from numpy_nn import optim
from test_parity import assert_cli_histories_agree, assert_lockstep, losses_and_weights, make_args, with_steps

CASES = {
    "lstm, adadelta, clipped": ["--model", "lstm", "--width", "32", "--optimizer", "adadelta", "--lr", "2.0",
                                "--clip-norm", "0.5", "--schedule", "step", "--gamma", "0.9"],
    "rnn, batch norm after it, momentum, clipped": ["--model", "rnn", "--width", "32", "--batch-norm", "features",
                                                    "--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9",
                                                    "--clip-norm", "2.0", "--init", "torch"],
    "gru, two layers, columns, batch norm, adamw": ["--model", "gru", "--width", "16", "--depth", "2", "--steps",
                                                   "columns", "--batch-norm", "--hidden", "16", "--optimizer", "adamw",
                                                   "--lr", "5e-3", "--weight-decay", "0.05", "--schedule", "cosine"],
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kernels", ["fast", "reference"])
def test_recurrent_step_by_step_parity(case, kernels, mnist64, monkeypatch):
    args = with_steps(make_args(CASES[case]), mnist64)
    args.kernels = kernels  # (numpy_nn's flag: batch norm's fast_norm.py or norm.py around recurrent.py's loop)
    norms = []
    monkeypatch.setattr(numpy_nn.train, "clip_grad_norm", lambda g, m: norms.append(optim.clip_grad_norm(g, m)))
    numpy_run = losses_and_weights(numpy_nn.train.Trainer(args), mnist64, args)
    weights = assert_lockstep(f"{case}, {kernels}", numpy_run,
                              losses_and_weights(pytorch_nn.train.Trainer(args), mnist64, args))
    assert f"{args.model}.weight_hh_l{args.depth - 1}" in weights
    if args.clip_norm:  # clipping acted on some steps and not on others
        assert min(norms) < args.clip_norm < max(norms), (min(norms), max(norms))


def test_recurrent_cli_histories_agree(mnist_dir, tmp_path):
    assert_cli_histories_agree(["--model", "lstm", "--width", "16", "--clip-norm", "1", "--limit-train", "1000",
                                "--epochs", "2"], mnist_dir, tmp_path)


@pytest.mark.parametrize("model", ["rnn", "lstm", "gru"])
def test_recurrent_weight_interchange(model, mnist_dir):
    """Trained-looking weights through either twin come back bit for bit; the twins' predictions of all 10,000 test
    images from them agree, not one differing (float64)."""
    data = data_loader.load_mnist(mnist_dir, dtype=np.float64, val_size=0, limit_train=10)
    args = make_args(["--model", model, "--width", "32", "--hidden", "16", "--batch-norm", "dense"])
    np_trainer, pt_trainer = numpy_nn.train.Trainer(args), pytorch_nn.train.Trainer(args)
    rng = np.random.default_rng(2)
    weights = {k: v + rng.standard_normal(v.shape) * 0.1 if v.dtype == np.float64 else v
               for k, v in np_trainer.weights().items()}
    for trainer in (np_trainer, pt_trainer):
        trainer.load_weights(weights)
        assert all(np.array_equal(trainer.weights()[k], weights[k]) for k in weights)
    a, b = np_trainer.predict(data.x_test), pt_trainer.predict(data.x_test)
    assert len(a) == 10_000 and np.count_nonzero(a.argmax(1) != b.argmax(1)) == 0
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("impl", ["numpy", "pytorch"])
def test_recurrent_run_interrupted_then_resumed_equals_uninterrupted(impl, mnist_dir, tmp_path, monkeypatch):
    """A stacked GRU with Adadelta and clipping, Ctrl-C in its second epoch, resumed from its checkpoint: the same
    history and the same final weights as a run never interrupted (Adadelta's two averages travelled)."""
    from test_survival import TRAINERS, assert_cut_and_resumed_equals_straight
    argv = ["--limit-train", "640", "--val-size", "500", "--epochs", "2", "--threads", "1", "--model", "gru",
            "--width", "16", "--depth", "2", "--steps", "columns", "--optimizer", "adadelta", "--lr", "1",
            "--clip-norm", "1"]
    assert "gru.weight_hh_l1" in assert_cut_and_resumed_equals_straight(TRAINERS[impl], argv, mnist_dir, tmp_path,
                                                                       monkeypatch)


@pytest.mark.parametrize("source, reader", [("numpy", "pytorch"), ("pytorch", "numpy")])
def test_a_recurrent_model_file_brings_its_kind_width_depth_and_steps(source, reader, mnist_dir, tmp_path, capsys):
    """Either twin scores the other's LSTM file with no model flag: its kind, width, depth and reading come from the
    file's record; a flag that contradicts it, or that no LSTM takes, is refused in one line."""
    from test_survival import TRAINERS
    argv = ["--limit-train", "500", "--val-size", "100", "--epochs", "1", "--threads", "1", "--model", "lstm",
            "--width", "12", "--depth", "2", "--steps", "columns", "--save-model", "--out", str(tmp_path)]
    code, history = run_train(TRAINERS[source], argv, mnist_dir)
    capsys.readouterr()
    path = str(tmp_path / "model.safetensors")
    assert code == 0 and run_train(TRAINERS[reader], ["--evaluate", path], mnist_dir)[0] == 0
    assert f"accuracy {history['test_acc']:.2%}" in capsys.readouterr().out
    for flags, message in ((["--width", "13"], "--width 13 contradicts"),
                           (["--channels", "4"], "--channels applies to --model cnn, not lstm")):
        assert run_train(TRAINERS[reader], ["--evaluate", path, *flags], mnist_dir)[0] == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
