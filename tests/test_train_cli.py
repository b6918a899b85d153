"""Both train.py CLIs: they learn, write history.json, fail in one line, and repeat themselves exactly."""

import numpy as np
import pytest
from safetensors.numpy import load_file

import numpy_nn.train
import pytorch_nn.train
from conftest import QUICK, run_train

TRAINERS = {"numpy": numpy_nn.train, "pytorch": pytorch_nn.train}
EPOCH_KEYS = {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "epoch_seconds", "lr"}


@pytest.mark.parametrize("impl", TRAINERS)
def test_short_run_learns_and_writes_history(impl, mnist_dir, tmp_path, capsys):
    code, h = run_train(TRAINERS[impl], [*QUICK, "--out", str(tmp_path)], mnist_dir)
    assert code == 0
    out = capsys.readouterr().out
    assert out.count("epoch ") == 2 and "test loss" in out
    assert h["implementation"] == impl and len(h["epochs"]) == 2
    assert set(h["epochs"][0]) == EPOCH_KEYS
    assert {"python", "numpy", "torch", "cpu", "threads"} <= set(h["environment"])
    assert h["config"]["hidden"] == [128, 64] and h["config"]["limit_train"] == 2000
    assert 0.85 < h["test_acc"] <= 1 and h["epochs"][1]["train_loss"] < h["epochs"][0]["train_loss"]
    assert h["train_seconds"] == pytest.approx(sum(e["epoch_seconds"] for e in h["epochs"]))
    assert [e["lr"] for e in h["epochs"]] == [1e-3, 5e-4]  # cosine over 2 epochs
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))


@pytest.mark.parametrize("impl", TRAINERS)
def test_same_seed_same_run(impl, mnist_dir, tmp_path):
    """Bit-identical history (timings aside) and weights; another seed gives another run."""
    runs = []
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        argv = [*QUICK, "--dropout", "0.1", "--seed", seed, "--save-model", "--out", str(tmp_path / name)]
        code, h = run_train(TRAINERS[impl], argv, mnist_dir)
        assert code == 0
        for e in h["epochs"]:
            del e["epoch_seconds"]
        del h["train_seconds"], h["config"]["out"], h["config"]["seed"]
        runs.append(h)
    assert runs[0] == runs[1] and runs[0] != runs[2]
    a, b = (load_file(tmp_path / n / "model.safetensors") for n in "ab")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("impl", TRAINERS)
def test_save_then_evaluate(impl, mnist_dir, tmp_path, capsys):
    code, h = run_train(TRAINERS[impl], [*QUICK, "--save-model", "--out", str(tmp_path)], mnist_dir)
    model = tmp_path / "model.safetensors"
    assert code == 0 and model.exists() and not (tmp_path / "checkpoint.safetensors").exists()
    capsys.readouterr()
    assert run_train(TRAINERS[impl], ["--evaluate", str(model)], mnist_dir)[0] == 0
    assert f"accuracy {h['test_acc']:.2%}" in capsys.readouterr().out


@pytest.mark.parametrize("impl", TRAINERS)
def test_huge_learning_rate_ends_with_the_divergence_error(impl, mnist_dir, tmp_path, capsys):
    code, h = run_train(TRAINERS[impl], [*QUICK, "--optimizer", "sgd", "--lr", "1e6", "--out", str(tmp_path)],
                        mnist_dir)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and h is None and len(err) == 1
    assert err[0].startswith("error: training loss is") and "epoch 1, step" in err[0] and "--lr" in err[0]


@pytest.mark.parametrize("impl", TRAINERS)
@pytest.mark.parametrize("argv, flag", [
    (["--lr", "0"], "--lr"), (["--lr", "-1"], "--lr"), (["--batch-size", "0"], "--batch-size"),
    (["--hidden", "12,x"], "--hidden"), (["--dropout", "1"], "--dropout"), (["--optimizer", "rmsprop"], "--optimizer"),
    (["--epochs", "two"], "--epochs"), (["--nesterov"], "--nesterov"), (["--momentum", "0.9"], "--momentum"),
    (["--lr", "nan"], "--lr"),
])
def test_bad_flags_get_one_argparse_line(impl, argv, flag, mnist_dir, capsys):
    with pytest.raises(SystemExit) as e:
        run_train(TRAINERS[impl], argv, mnist_dir)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and "error:" in err[-1] and flag in err[-1]


def test_cuda_requested_without_cuda(mnist_dir, capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert run_train(pytorch_nn.train, [*QUICK, "--device", "cuda"], mnist_dir)[0] == 1
    assert "--device cuda" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["default", "fast", "best", "lenet", "cnn", "cnn-fast", "mnist-rnn", "lstm"])
def test_preset_supplies_every_value_that_flags_do_not_override(name):
    """Every value a preset names reaches the flags, except one given on the command line; the default preset is
    the parser's own defaults, so that no preset and --preset default train the same network."""
    from common import flags
    from common.presets import DEFAULT, PRESETS
    parser = flags.make_parser("x")
    args = flags.parse_args(parser, ["--preset", name, "--epochs", "3"])
    for key, value in PRESETS[name].items():
        if key != "epochs":
            assert getattr(args, key) == (value if key != "kernel_size" or not isinstance(value, int)
                                          else (value,) * len(args.channels)), (name, key)
    assert args.epochs == 3 != PRESETS[name]["epochs"]
    plain = flags.parse_args(parser, [])
    assert all(getattr(plain, k) == v for k, v in DEFAULT.items()), "the default preset is not the parser's defaults"


@pytest.mark.parametrize("argv, message", [
    (["--channels", "8,16"], "--channels applies to --model cnn, not mlp"),
    (["--kernel-size", "5"], "--kernel-size applies to --model cnn, not mlp"),
    (["--model", "cnn", "--input-dropout", "0.2"], "--input-dropout applies to --model mlp, rnn, lstm or gru, not cnn"),
    (["--model", "cnn", "--channels", "4,4,4,4,4"], "5 poolings leave no pixel"),
    (["--model", "cnn", "--channels", "8,16", "--kernel-size", "5,3,3"], "3 sizes for 2 blocks"),
    (["--model", "cnn", "--kernel-size", "29"], "a kernel larger than the 28x28 image"),
    (["--padding", "valid"], "--padding applies to --model cnn, not mlp"),
    (["--model", "cnn", "--channels", "8,8,8", "--kernel-size", "7", "--padding", "valid"],
     "3 poolings leave no pixel of a 28x28 image; use fewer blocks or --padding same"),
    (["--optimizer", "sgd", "--betas", "0.7,0.9"], "--betas applies to --optimizer adam or adamw, not sgd"),
    (["--optimizer", "adam", "--betas", "0.7"], "expected two numbers in [0, 1)"),
    (["--warmup", "0.2"], "--warmup applies to --schedule onecycle, not cosine"),
    (["--width", "64"], "--width applies to --model rnn, lstm, gru or vit, not mlp"),
    (["--model", "cnn", "--depth", "2"], "--depth applies to --model rnn, lstm, gru or vit, not cnn"),
    (["--model", "lstm", "--channels", "8"], "--channels applies to --model cnn, not lstm"),
    (["--model", "rnn", "--width", "0"], "--width: 0 is out of range; must be >= 1"),
    (["--model", "lstm", "--steps", "diagonals"], "invalid choice: 'diagonals'"),
    (["--batch-norm", "features"], "--batch-norm features applies to a model with layers of its own"),
    (["--optimizer", "adadelta", "--betas", "0.7,0.9"], "--betas applies to --optimizer adam or adamw, not adadelta"),
    (["--clip-norm", "0"], "--clip-norm: 0 is out of range"),
    (["--model", "vit", "--width", "30", "--heads", "4"], "--width 30 does not split into --heads 4"),
    (["--model", "vit", "--patch", "5"], "argument --patch: invalid choice: 5"),
    (["--heads", "2"], "--heads applies to --model vit, not mlp"),
    (["--model", "vit", "--batch-norm"], "--batch-norm all: a ViT's tokens have layer norm"),
    (["--model", "lstm", "--patch", "7"], "--patch applies to --model vit, not lstm"),
    (["--model", "vit", "--dropout", "0.1"], "--dropout 0.1 acts after hidden dense layers and this vit has none"),
    (["--preset", "lstm", "--dropout", "0.2"], "--dropout 0.2 acts after hidden dense layers and this lstm has none"),
    (["--hidden", "", "--dropout", "0.3"], "--dropout 0.3 acts after hidden dense layers and this mlp has none"),
])
def test_flags_that_do_not_fit_the_model(argv, message, mnist_dir, capsys):
    with pytest.raises(SystemExit) as e:
        run_train(numpy_nn.train, argv, mnist_dir)
    assert e.value.code == 2 and message in capsys.readouterr().err.strip().splitlines()[-1]


def test_presets_for_the_cnn():
    from common import flags
    parser = flags.make_parser("x")
    lenet = flags.parse_args(parser, ["--preset", "lenet"])
    assert (lenet.model, lenet.channels, lenet.kernel_size, lenet.hidden) == ("cnn", (6, 16), (5, 5), (120, 84))
    per_block = flags.parse_args(parser, ["--model", "cnn", "--channels", "24,32", "--kernel-size", "5,3"])
    assert per_block.kernel_size == (5, 3)
    cnn = flags.parse_args(parser, ["--preset", "cnn", "--epochs", "2"])
    assert cnn.model == "cnn" and cnn.batch_norm and cnn.epochs == 2 and cnn.channels == (32, 64, 128)
    plain = flags.parse_args(parser, [])  # the same parser: no preset's values linger
    assert plain.model == "mlp" and plain.channels is None and plain.val_size == 5000 and not plain.batch_norm
