"""Runs that survive: Ctrl-C and SIGTERM mid-epoch, exact resume, model files either twin reads, bad inputs."""
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

import numpy_nn.train
import pytorch_nn.train
from conftest import QUICK, ROOT, readline, run_train

TRAINERS = {"numpy": numpy_nn.train, "pytorch": pytorch_nn.train}
RUN = [*QUICK, "--epochs", "3", "--dropout", "0.2", "--optimizer", "adamw", "--lr", "2e-3", "--batch-size", "64"]


def signal_at_step(monkeypatch, module, step, signum=signal.SIGINT):
    """Deliver a real signal to this process during training step `step` (1-based, counted over the run)."""
    original, count = module.Trainer.train_step, [0]

    def train_step(self, x, y):
        count[0] += 1
        if count[0] == step:
            os.kill(os.getpid(), signum)  # handled at once: the loop stops after this step
        return original(self, x, y)
    monkeypatch.setattr(module.Trainer, "train_step", train_step)


def comparable(history):
    """A history without what differs between an interrupted-and-resumed run and a straight one: timings
    and the flags that say where the files went."""
    h = json.loads(json.dumps(history))
    for e in h["epochs"]:
        del e["epoch_seconds"]
    for k in ("train_seconds", "environment"):
        del h[k]
    for k in ("out", "resume"):
        h["config"].pop(k)
    return h


@pytest.mark.parametrize("impl", TRAINERS)
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_then_resumed_equals_uninterrupted(impl, signum, code, mnist_dir, tmp_path, monkeypatch, capsys):
    """Stopped in the middle of epoch 2 (step 40 of 32 per epoch), then resumed: the same history and the same
    weights, bit for bit, as the run that was never interrupted."""
    module = TRAINERS[impl]
    straight_code, straight = run_train(module, [*RUN, "--save-model", "--out", str(tmp_path / "straight")], mnist_dir)
    assert straight_code == 0
    capsys.readouterr()
    with monkeypatch.context() as m:
        signal_at_step(m, module, 40, signum)
        stopped_code, stopped = run_train(module, [*RUN, "--save-model", "--out", str(tmp_path / "cut")], mnist_dir)
    err = capsys.readouterr().err.strip().splitlines()
    assert stopped_code == code and "Traceback" not in "\n".join(err)
    assert stopped["interrupted"] is True and len(stopped["epochs"]) == 1  # epoch 1 done, epoch 2 under way
    assert err[-1].startswith("stopped at epoch 2, step 8:") and f"--resume {tmp_path / 'cut'}" in err[-1]
    assert (tmp_path / "cut" / "checkpoint.safetensors").exists() and not (tmp_path / "cut" / "model.safetensors").exists()
    resumed_code, resumed = run_train(module, ["--resume", str(tmp_path / "cut")], mnist_dir)
    assert resumed_code == 0 and resumed["interrupted"] is False
    assert comparable(resumed) == comparable(straight)
    a, b = load_file(tmp_path / "straight" / "model.safetensors"), load_file(tmp_path / "cut" / "model.safetensors")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert not (tmp_path / "cut" / "checkpoint.safetensors").exists()  # a finished run removes its checkpoint


@pytest.mark.parametrize("impl", TRAINERS)
def test_onecycle_interrupted_mid_epoch_resumes_exactly(impl, mnist_dir, tmp_path, monkeypatch):
    """A schedule stepped per batch: stopped at step 40 (epoch 2, step 8), resumed, the same history and weights."""
    module, argv = TRAINERS[impl], [*RUN, *RECIPES["adam betas, onecycle per batch"], "--save-model"]
    assert run_train(module, [*argv, "--out", str(tmp_path / "straight")], mnist_dir)[0] == 0
    with monkeypatch.context() as m:
        signal_at_step(m, module, 40)
        assert run_train(module, [*argv, "--out", str(tmp_path / "cut")], mnist_dir)[0] == 130
    code, resumed = run_train(module, ["--resume", str(tmp_path / "cut")], mnist_dir)
    straight = json.loads((tmp_path / "straight" / "history.json").read_text())
    assert code == 0 and comparable(resumed) == comparable(straight)
    assert len({e["lr"] for e in straight["epochs"]}) == 3  # the learning rate moved within the run
    a, b = load_file(tmp_path / "straight" / "model.safetensors"), load_file(tmp_path / "cut" / "model.safetensors")
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("impl", TRAINERS)
def test_cnn_interrupted_then_resumed_equals_uninterrupted(impl, mnist_dir, tmp_path, monkeypatch):
    """The CNN too: batch-norm statistics, channels_last tensors in pytorch_nn, dropout on the dense layer."""
    cnn = [*QUICK, "--epochs", "2", "--model", "cnn", "--channels", "4,8", "--hidden", "16", "--batch-norm",
           "--dropout", "0.3", "--limit-train", "640"]
    assert "conv2_bn.running_var" in assert_cut_and_resumed_equals_straight(TRAINERS[impl], cnn, mnist_dir, tmp_path,
                                                                           monkeypatch)


def assert_cut_and_resumed_equals_straight(module, argv, mnist_dir, tmp_path, monkeypatch, step=13):
    """argv run straight, and run again with Ctrl-C during training step `step` (13: epoch 2 of 10 steps, under
    way) and resumed: the same history and bit for bit the same final weights, which it returns."""
    argv = [*argv, "--save-model"]
    assert run_train(module, [*argv, "--out", str(tmp_path / "straight")], mnist_dir)[0] == 0
    with monkeypatch.context() as m:
        signal_at_step(m, module, step)
        assert run_train(module, [*argv, "--out", str(tmp_path / "cut")], mnist_dir)[0] == 130
    code, resumed = run_train(module, ["--resume", str(tmp_path / "cut")], mnist_dir)
    straight = json.loads((tmp_path / "straight" / "history.json").read_text())
    assert code == 0 and comparable(resumed) == comparable(straight)
    a, b = load_file(tmp_path / "straight" / "model.safetensors"), load_file(tmp_path / "cut" / "model.safetensors")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    return a


CRASH_AT_STEP = """
import os, signal, sys
from common import cli
import {module} as twin
original, count = twin.Trainer.train_step, [0]
def train_step(self, x, y):
    count[0] += 1
    if count[0] == {step}:
        os.kill(os.getpid(), signal.SIGKILL)  # a real crash: no handler runs, nothing more is written
    return original(self, x, y)
twin.Trainer.train_step = train_step
sys.exit(cli.main(twin.Trainer, sys.argv[1:], add_flags=twin.add_flags))
"""
RECIPES = {"adamw of the matrices, label smoothing, cosine": ["--decay", "matrices", "--label-smoothing", "0.1"],
           "momentum SGD, step schedule": ["--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.02", "--schedule", "step",
                                           "--step-size", "1", "--gamma", "0.5"],
           "adam betas, onecycle per batch": ["--optimizer", "adam", "--betas", "0.7,0.9", "--lr", "5e-3",
                                              "--schedule", "onecycle", "--warmup", "0.25"]}


@pytest.mark.parametrize("impl", TRAINERS)
@pytest.mark.parametrize("recipe", RECIPES)
def test_killed_run_resumes_from_its_periodic_checkpoint(impl, recipe, mnist_dir, tmp_path):
    """kill -9 in epoch 3 (step 70 of 32 per epoch) of a run checkpointing every 2 epochs: the checkpoint of epoch 2
    is there, and --resume from it ends with the history and weights of the run that never crashed (optimizer
    state, momentum buffers and the schedule's position restored from an epoch boundary)."""
    module, out = TRAINERS[impl], tmp_path / "run"
    argv = [*RUN, *RECIPES[recipe], "--save-model", "--checkpoint-every", "2", "--data-dir", str(mnist_dir), "--quiet"]
    assert run_train(module, [*argv, "--out", str(tmp_path / "straight")], mnist_dir)[0] == 0
    crash = subprocess.run([sys.executable, "-c", CRASH_AT_STEP.format(module=module.__name__, step=70), *argv,
                            "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=150)
    assert crash.returncode == -signal.SIGKILL, crash.stderr
    from safetensors import safe_open
    with safe_open(str(out / "checkpoint.safetensors"), framework="numpy") as f:
        progress = json.loads(f.metadata()["progress"])
    assert (progress["epoch"], progress["step"]) == (2, 0)
    code, resumed = run_train(module, ["--resume", str(out)], mnist_dir)
    straight = json.loads((tmp_path / "straight" / "history.json").read_text())
    assert code == 0 and comparable(resumed) == comparable(straight)
    a, b = load_file(tmp_path / "straight" / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("impl", TRAINERS)
def test_resume_refuses_what_does_not_fit(impl, mnist_dir, tmp_path, monkeypatch, capsys):
    module, other = TRAINERS[impl], TRAINERS["pytorch" if impl == "numpy" else "numpy"]
    with monkeypatch.context() as m:
        signal_at_step(m, module, 5)
        assert run_train(module, [*RUN, "--out", str(tmp_path)], mnist_dir)[0] == 130
    capsys.readouterr()
    cases = [(module, ["--resume", str(tmp_path), "--lr", "0.5"], "--lr 0.5 contradicts"),
             (other, ["--resume", str(tmp_path)], f"checkpoint; resume it with {impl}_nn/train.py"),
             (module, ["--resume", str(tmp_path / "nowhere")], "no checkpoint.safetensors there")]
    for trainer, argv, message in cases:
        assert run_train(trainer, argv, mnist_dir)[0] == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err, err


def _subprocess_train(impl, out, *extra):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, f"{impl}_nn/train.py", "--limit-train", "20000", "--epochs", "30", "--threads", "1",
            "--quiet", "--out", str(out), *(["--device", "cpu"] if impl == "pytorch" else []), *extra]
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


TWO_PRESSES = """
import os, signal, sys
from common import cli
import {module} as twin
original, count = twin.Trainer.train_step, [0]
def train_step(self, x, y):
    count[0] += 1
    if count[0] == 5:  # Ctrl-C twice within one step, the first handled before the second comes
        os.kill(os.getpid(), signal.SIGINT)
        sum(range(1000))
        os.kill(os.getpid(), signal.SIGINT)
        sum(range(1000))
    return original(self, x, y)
twin.Trainer.train_step = train_step
cli.run(twin.Trainer, "", twin.add_flags)
"""


@pytest.mark.parametrize("impl", TRAINERS)
def test_ctrl_c_on_the_command_line(impl, mnist_dir, tmp_path):
    """The real CLI: Ctrl-C after the first epoch, one line and exit code 130; twice in a row exits at once, 130,
    with no traceback and nothing written (the first press alone writes history.json and the checkpoint)."""
    proc = _subprocess_train(impl, tmp_path / "once", "--data-dir", str(mnist_dir))
    assert readline(proc).startswith("epoch   1")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    assert json.loads((tmp_path / "once" / "history.json").read_text())["interrupted"] is True
    assert stderr.strip().splitlines()[-1].startswith("stopped at epoch 2")
    module, out = TRAINERS[impl], tmp_path / "twice"
    argv = [*QUICK, "--quiet", "--data-dir", str(mnist_dir), "--out", str(out), *(["--device", "cpu"] * (impl == "pytorch"))]
    twice = subprocess.run([sys.executable, "-c", TWO_PRESSES.format(module=module.__name__), *argv], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert twice.returncode == 130 and "Traceback" not in twice.stderr, twice.stderr
    assert "SIGINT again: exiting at once, without writing anything" in twice.stderr, twice.stderr
    assert not (out / "history.json").exists() and not (out / "checkpoint.safetensors").exists()


# --- model files ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def models(mnist_dir, tmp_path_factory):
    """A trained model file from each twin, with a non-default architecture that only the file records."""
    folder = tmp_path_factory.mktemp("models")
    argv = [*QUICK, "--hidden", "48,24", "--activation", "tanh", "--save-model"]
    files = {}
    for impl, module in TRAINERS.items():
        code, history = run_train(module, [*argv, "--out", str(folder / impl)], mnist_dir)
        assert code == 0
        files[impl] = (folder / impl / "model.safetensors", history["test_acc"])
    return files


@pytest.mark.parametrize("source", TRAINERS)
@pytest.mark.parametrize("reader", TRAINERS)
def test_either_twin_evaluates_either_file_without_flags(source, reader, models, mnist_dir, capsys):
    path, acc = models[source]
    assert run_train(TRAINERS[reader], ["--evaluate", str(path)], mnist_dir)[0] == 0
    assert f"accuracy {acc:.2%}" in capsys.readouterr().out


def test_model_file_metadata(models):
    from safetensors import safe_open
    with safe_open(str(models["numpy"][0]), framework="numpy") as f:
        meta = {k: json.loads(v) for k, v in f.metadata().items()}
    assert meta["kind"] == "model" and meta["implementation"] == "numpy" and meta["model"] == "mlp"
    assert meta["hidden"] == [48, 24] and meta["activation"] == "tanh" and meta["dtype"] == "float32"
    assert meta["test_acc"] == models["numpy"][1]


def _bad_files(folder, good):
    """(name, file maker, what the one-line message must say) for every kind of bad weights file."""
    weights = load_file(good)
    blob = good.read_bytes()

    def write(name, data):
        path = folder / name
        path.write_bytes(data) if isinstance(data, bytes) else data(path)
        return path

    def npz_with_object(path):
        with open(path, "wb") as f:
            np.savez(f, **{"fc1.W": np.array([{"a": 1}], dtype=object)})

    def nan_weights(path):
        save_file({**weights, "fc2.weight": np.full_like(weights["fc2.weight"], np.nan)}, str(path))

    def zip_named_safetensors(path):
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("x", "y")

    return [
        ("truncated.safetensors", lambda p: write(p, blob[:len(blob) // 2]), "not a readable safetensors file"),
        ("zip.safetensors", lambda p: write(p, zip_named_safetensors), "not a readable safetensors file"),
        ("object.npz", lambda p: write(p, npz_with_object), "pickled objects"),
        ("nan.safetensors", lambda p: write(p, nan_weights), "fc2.weight holds NaN"),
        ("shape.safetensors", lambda p: write(p, lambda q: save_file({**weights, "fc3.bias": np.zeros(7, np.float32)},
                                                                      str(q))), "fc3.bias has shape (7,)"),
        ("text.npz", lambda p: write(p, b"hello"), "not a readable .npz file"),
        ("missing.safetensors", lambda p: folder / p, "no such file"),
        ("weights.bin", lambda p: write(p, b"\0" * 8), "unknown kind of weights file"),
    ]


@pytest.mark.parametrize("impl", TRAINERS)
def test_bad_model_files_are_one_line(impl, models, mnist_dir, tmp_path, capsys):
    for name, make, message in _bad_files(tmp_path, models[impl][0]):
        path = make(name)
        extra = ["--hidden", "48,24", "--activation", "tanh"]  # what a file without our metadata cannot say
        assert run_train(TRAINERS[impl], ["--evaluate", str(path), *extra], mnist_dir)[0] == 1, name
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and str(path) in err and message in err and "\n" not in err, (name, err)


def test_a_flag_that_contradicts_the_file_is_refused(models, mnist_dir, capsys):
    assert run_train(numpy_nn.train, ["--evaluate", str(models["pytorch"][0]), "--hidden", "32"], mnist_dir)[0] == 1
    err = capsys.readouterr().err.strip()
    assert "--hidden 32 contradicts" in err and "48,24" in err and "\n" not in err


def test_plain_torch_state_dict_and_its_pickles(mnist_dir, tmp_path, capsys):
    """What the usual MNIST scripts write, torch.save(model.state_dict(), "mnist_model.pth"): pytorch_nn reads
    it (weights_only); numpy_nn says where to take it; a pickled module is refused, never unpickled."""
    model = torch.nn.Sequential()
    for i, (a, b) in enumerate([(784, 128), (128, 64), (64, 10)], start=1):
        model.add_module(f"fc{i}", torch.nn.Linear(a, b))
    torch.save(model.state_dict(), tmp_path / "mnist_model.pth")
    assert run_train(pytorch_nn.train, ["--evaluate", str(tmp_path / "mnist_model.pth")], mnist_dir)[0] == 0
    assert "accuracy" in capsys.readouterr().out
    assert run_train(numpy_nn.train, ["--evaluate", str(tmp_path / "mnist_model.pth")], mnist_dir)[0] == 1
    assert "evaluate it with pytorch_nn/train.py" in capsys.readouterr().err
    torch.save(model, tmp_path / "whole_module.pt")
    assert run_train(pytorch_nn.train, ["--evaluate", str(tmp_path / "whole_module.pt")], mnist_dir)[0] == 1
    err = capsys.readouterr().err.strip()
    assert "pickled objects other than tensors" in err and "\n" not in err


def test_numpy_nn_earlier_npz_files_still_read(mnist_dir, tmp_path, capsys):
    """np.savez of numpy_nn's own parameters ("fc1.W", (in, out)): both twins score it alike."""
    from common import flags
    parser = flags.make_parser("t")
    args = flags.parse_args(parser, ["--init", "torch"])
    model = numpy_nn.model.build(args)
    with open(tmp_path / "model.npz", "wb") as f:
        np.savez(f, **model.params)
    lines = []
    for module in TRAINERS.values():
        assert run_train(module, ["--evaluate", str(tmp_path / "model.npz")], mnist_dir)[0] == 0
        lines.append(capsys.readouterr().out.split(": ", 1)[1])
    assert lines[0] == lines[1]


# --- bad inputs that once ended in a traceback or a hang --------------------------------------------------

@pytest.mark.parametrize("impl", TRAINERS)
def test_a_model_too_large_for_memory(impl, mnist_dir, tmp_path, monkeypatch, capsys):
    """Refused before anything is allocated (the trainer is never built), on any machine: the free memory is
    fixed at 16 GiB here, whatever this machine has."""
    from common import machine
    monkeypatch.setattr(machine, "available_memory", lambda: 16 * 2**30)
    monkeypatch.setattr(TRAINERS[impl].Trainer, "__init__", lambda self, args: pytest.fail("the trainer was built"))
    assert run_train(TRAINERS[impl], [*QUICK, "--hidden", "100000,100000", "--out", str(tmp_path)], mnist_dir)[0] == 1
    err = capsys.readouterr().err.strip()
    assert err == ("error: the model (10,079,600,010 parameters) needs about 337.4 GiB to train, more than the 16.0 GiB "
                   "this machine has free; use smaller layers")


def test_more_threads_than_cores(mnist_dir, capsys):
    from common.machine import default_threads
    with pytest.raises(SystemExit) as e:
        run_train(numpy_nn.train, [*QUICK, "--threads", str(default_threads() + 1)], mnist_dir)
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert e.value.code == 2 and "--threads" in err and f"this machine has {default_threads()} cores" in err


def test_train_py_from_its_own_folder(mnist_dir, tmp_path):
    """`cd numpy_nn && python train.py`, as the seed documents run it: it works (in a copy of the folder, so that the
    repository's own numpy_nn/runs is never touched), and what it writes there is git-ignored."""
    import shutil
    folder = shutil.copytree(ROOT / "numpy_nn", tmp_path / "numpy_nn", ignore=shutil.ignore_patterns("runs"))
    proc = subprocess.run([sys.executable, "train.py", *QUICK, "--epochs", "1", "--quiet", "--data-dir", str(mnist_dir)],
                          cwd=folder, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (folder / "runs" / "numpy" / "history.json").exists()
    ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", "numpy_nn/runs/numpy/history.json"], cwd=ROOT,
                             timeout=30)
    assert ignored.returncode == 0, "numpy_nn/runs/ is not git-ignored"


def test_model_flags_beside_a_file_are_checked_against_the_files_model(models, mnist_dir, tmp_path, monkeypatch,
                                                                          capsys):
    """With --evaluate or --resume and no --model, the model is the file's: a CNN's own --padding and --kernel-size
    (3 for its 3,3) are accepted, another value is a contradiction, and a CNN flag beside an MLP's file says so."""
    cnn = [*QUICK, "--model", "cnn", "--channels", "4,8", "--hidden", "16", "--padding", "valid"]
    assert run_train(numpy_nn.train, [*cnn, "--epochs", "1", "--save-model", "--out", str(tmp_path / "cnn")],
                     mnist_dir)[0] == 0
    capsys.readouterr()
    path = str(tmp_path / "cnn" / "model.safetensors")
    assert run_train(pytorch_nn.train, ["--evaluate", path, "--padding", "valid", "--kernel-size", "3"], mnist_dir)[0] == 0
    assert "accuracy" in capsys.readouterr().out
    for argv, message in [(["--evaluate", path, "--padding", "same"], "--padding same contradicts"),
                          (["--evaluate", str(models["numpy"][0]), "--padding", "valid"],
                           "--padding applies to --model cnn, not mlp (")]:
        assert run_train(numpy_nn.train, argv, mnist_dir)[0] == 1
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, err
    with monkeypatch.context() as m:
        signal_at_step(m, numpy_nn.train, 40)
        assert run_train(numpy_nn.train, [*cnn, "--out", str(tmp_path / "cut")], mnist_dir)[0] == 130
    capsys.readouterr()
    assert run_train(numpy_nn.train, ["--resume", str(tmp_path / "cut"), "--padding", "same"], mnist_dir)[0] == 1
    err = capsys.readouterr().err.strip()
    assert "--padding same contradicts the checkpoint" in err and "records valid" in err, err


def test_a_model_file_of_the_other_kind_of_network(mnist_dir, tmp_path, capsys):
    """A CNN's file given with --model mlp, and an MLP's .npz given with CNN flags: one clear line each."""
    cnn = [*QUICK, "--epochs", "1", "--model", "cnn", "--channels", "4,8", "--hidden", "16", "--batch-norm"]
    assert run_train(numpy_nn.train, [*cnn, "--save-model", "--out", str(tmp_path)], mnist_dir)[0] == 0
    capsys.readouterr()
    assert run_train(pytorch_nn.train, ["--evaluate", str(tmp_path / "model.safetensors"), "--model", "mlp"],
                     mnist_dir)[0] == 1
    err = capsys.readouterr().err.strip()
    assert "--model mlp contradicts" in err and "records cnn" in err and "\n" not in err
    model = numpy_nn.model.MLP()
    with open(tmp_path / "mlp.npz", "wb") as f:
        np.savez(f, **model.params)
    assert run_train(numpy_nn.train, ["--evaluate", str(tmp_path / "mlp.npz"), "--model", "cnn"], mnist_dir)[0] == 1
    err = capsys.readouterr().err.strip()
    assert "do not match this model's" in err and "pass the model flags it was trained with" in err and "\n" not in err


SWITCHES = {"numpy": [["--kernels", "reference", "--processes", "1"],
                      ["--threads", "1", "--processes", "1", "--quiet", "--checkpoint-every", "0"]],
            "pytorch": [["--no-fused"], ["--threads", "1", "--quiet", "--checkpoint-every", "0"]]}


@pytest.mark.parametrize("impl", TRAINERS)
def test_resume_takes_switches_that_keep_the_math(impl, mnist_dir, tmp_path, monkeypatch, capsys):
    """A run moved to another machine, or resumed with the reference kernels to look inside, may change what computes
    the math but not the math: it resumes, says in one line when its sums now run in another order (no longer bit
    for bit), and ends where the uninterrupted run ends to float64 rounding. A flag that changes the math is still
    refused (test_resume_refuses_what_does_not_fit)."""
    module = TRAINERS[impl]
    argv = ["--model", "cnn", "--channels", "4,8", "--hidden", "16", "--batch-norm", "--dtype", "float64",
            "--limit-train", "512", "--val-size", "0", "--epochs", "2", "--batch-size", "64", "--threads", "2",
            "--dropout", "0", *(["--processes", "2"] if impl == "numpy" else [])]
    assert run_train(module, [*argv, "--out", str(tmp_path / "straight")], mnist_dir)[0] == 0
    straight = json.loads((tmp_path / "straight" / "history.json").read_text())
    for n, switches in enumerate(SWITCHES[impl]):
        out = tmp_path / f"cut{n}"
        with monkeypatch.context() as m:
            signal_at_step(m, module, 5)
            assert run_train(module, [*argv, "--out", str(out)], mnist_dir)[0] == 130
        capsys.readouterr()
        code, resumed = run_train(module, ["--resume", str(out), *switches], mnist_dir)
        err = capsys.readouterr().err
        assert code == 0, err
        assert "note: resuming with" in err and "not bit for bit" in err, err  # (each set reorders sums)
        for a, b in zip(resumed["epochs"], straight["epochs"]):
            assert abs(a["train_loss"] - b["train_loss"]) <= 1e-9 * b["train_loss"], (switches, a, b)
        assert resumed["test_acc"] == pytest.approx(straight["test_acc"], abs=2e-4)
