"""Branches a user can reach that other tests do not enter: running out of memory, Ctrl-C before training, SIGTERM on
the real command line, a kill while the checkpoint is being written, a CNN's batch shared over processes through the
real command line (Ctrl-C, kill -9, resume, float32 and float64), and compare.py on a CNN end to end with more than one
seed, --target, --only and a disk that fails under the report."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file

import compare
import numpy_nn.train
import pytorch_nn.train
from common import cli
from conftest import QUICK, ROOT, readline, run_train

TRAINERS = {"numpy": numpy_nn.train, "pytorch": pytorch_nn.train}
TWO_CORES = pytest.mark.skipif(os.cpu_count() < 2, reason="two processes need two cores")


@pytest.mark.parametrize("impl", TRAINERS)
def test_out_of_memory_is_one_line(impl, mnist_dir, tmp_path, monkeypatch, capsys):
    def no_memory(self, x, y):
        raise MemoryError
    monkeypatch.setattr(TRAINERS[impl].Trainer, "train_step", no_memory)
    assert run_train(TRAINERS[impl], [*QUICK, "--out", str(tmp_path)], mnist_dir)[0] == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: out of memory (the model needs about ") and "--batch-size" in err[0]


@pytest.mark.parametrize("impl", TRAINERS)
def test_ctrl_c_before_training_writes_nothing(impl, mnist_dir, tmp_path, monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "load_data", interrupted)
    assert run_train(TRAINERS[impl], [*QUICK, "--out", str(tmp_path / "run")], mnist_dir)[0] == 130
    assert capsys.readouterr().err.strip() == "interrupted before training started; nothing written"
    assert not (tmp_path / "run").exists()


def child(impl, *argv, **kwargs):
    """A train.py on the real command line, in a process group of its own with its replicas (a terminal's Ctrl-C
    reaches the whole group)."""
    return subprocess.Popen([sys.executable, f"{impl}_nn/train.py", *argv, *(["--device", "cpu"] * (impl == "pytorch"))],
                            cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **kwargs)


@pytest.mark.parametrize("impl", TRAINERS)
def test_sigterm_on_the_command_line(impl, mnist_dir, tmp_path):
    proc = child(impl, "--limit-train", "20000", "--epochs", "30", "--threads", "1", "--quiet", "--out", str(tmp_path),
                 "--data-dir", str(mnist_dir))
    assert readline(proc).startswith("epoch   1")
    proc.terminate()
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1].startswith("stopped at epoch 2") and "--resume" in stderr
    assert json.loads((tmp_path / "history.json").read_text())["interrupted"] is True


KILL_IN_CHECKPOINT = """
import os, signal, sys
from common import cli, weights
import {module} as twin
original, count = weights.write_file, [0]
def write_file(path, arrays, meta):
    if meta.get("kind") == "checkpoint":
        count[0] += 1
        if count[0] == 2:  # the second checkpoint: kill -9 half way, its temporary file written, not yet renamed
            original(path.with_name(f".{{path.name}}.{{os.getpid()}}.tmp"), arrays, meta)
            os.kill(os.getpid(), signal.SIGKILL)
    return original(path, arrays, meta)
weights.write_file = write_file
sys.exit(cli.main(twin.Trainer, sys.argv[1:], add_flags=twin.add_flags))
"""


@pytest.mark.parametrize("impl", TRAINERS)
def test_a_kill_while_the_checkpoint_is_written_leaves_the_previous_one(impl, mnist_dir, tmp_path):
    """kill -9 in the middle of writing the checkpoint of epoch 2: the checkpoint of epoch 1 is still whole, and the
    run resumed from it ends as the run that was never killed."""
    module, out = TRAINERS[impl], tmp_path / "run"
    argv = [*QUICK, "--epochs", "3", "--checkpoint-every", "1", "--save-model", "--data-dir", str(mnist_dir), "--quiet",
            *(["--device", "cpu"] * (impl == "pytorch"))]
    assert run_train(module, [*argv, "--out", str(tmp_path / "straight")], mnist_dir)[0] == 0
    killed = subprocess.run([sys.executable, "-c", KILL_IN_CHECKPOINT.format(module=module.__name__), *argv, "--out",
                             str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    from safetensors import safe_open
    with safe_open(str(out / "checkpoint.safetensors"), framework="numpy") as f:
        assert json.loads(f.metadata()["progress"])["epoch"] == 1
    assert run_train(module, ["--resume", str(out)], mnist_dir)[0] == 0
    a, b = load_file(tmp_path / "straight" / "model.safetensors"), load_file(out / "model.safetensors")
    assert all(np.array_equal(a[k], b[k]) for k in a)


@TWO_CORES
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_cnn_over_two_processes_survives_the_command_line(dtype, mnist_dir, tmp_path):
    """numpy_nn sharing each batch over 2 processes, on the real command line: Ctrl-C to the whole process group (as a
    terminal sends it) stops at a step boundary, and the resumed run ends with the history and weights of the run
    never interrupted, bit for bit (the same processes: the same sums); then kill -9 mid-epoch, resumed from the
    periodic checkpoint, the same. No replica outlives either."""
    argv = ["--model", "cnn", "--channels", "4,8", "--hidden", "16", "--batch-norm", "--dropout", "0.3", "--dtype",
            dtype, "--limit-train", "6000", "--val-size", "0", "--epochs", "3", "--batch-size", "32", "--threads", "2",
            "--processes", "2", "--save-model", "--quiet", "--data-dir", str(mnist_dir)]
    straight = child("numpy", *argv, "--out", str(tmp_path / "straight"))
    assert straight.wait(timeout=150) == 0, straight.stderr.read()
    for how, out in (("ctrl-c", tmp_path / "cut"), ("kill -9", tmp_path / "killed")):
        proc = child("numpy", *argv, "--out", str(out))
        assert readline(proc).startswith("epoch   1")
        deadline = time.monotonic() + 30  # epoch 1's checkpoint is written just after its line
        while how == "kill -9" and not (out / "checkpoint.safetensors").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGINT if how == "ctrl-c" else signal.SIGKILL)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == (130 if how == "ctrl-c" else -signal.SIGKILL), stderr
        assert "Traceback" not in stderr, stderr
        resumed = child("numpy", "--resume", str(out), "--data-dir", str(mnist_dir))
        _, stderr = resumed.communicate(timeout=150)
        assert resumed.returncode == 0 and "note:" not in stderr, stderr
        a, b = load_file(tmp_path / "straight" / "model.safetensors"), load_file(out / "model.safetensors")
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), how
        losses = [[e["train_loss"] for e in json.loads((f / "history.json").read_text())["epochs"]]
                  for f in (tmp_path / "straight", out)]
        assert losses[0] == losses[1], how
        deadline = time.monotonic() + 15  # (multiprocessing's resource tracker leaves a moment after its trainer)
        while subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, timeout=30).stdout:
            assert time.monotonic() < deadline, "a process of the run outlived it"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def cnn_report(mnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("cnn-report")
    argv = ["--model", "cnn", "--channels", "4", "--hidden", "8", "--batch-norm", "--limit-train", "1024", "--val-size",
            "0", "--epochs", "2", "--seeds", "2", "--target", "30", "--optimizers", "", "--batch-sizes", "",
            "--data-dir", str(mnist_dir), "--out", str(out), *(["--threads", "2"] if os.cpu_count() >= 2 else [])]
    assert compare.main(argv) == 0
    return out


def test_compare_on_a_cnn_with_seeds_and_a_target(cnn_report):
    """Every section of a CNN's report: two seeds per twin, the time to the target given (50 %), the proof with its
    control row, the layers of numpy_nn's fused blocks against torch's, precision."""
    table = pd.read_csv(cnn_report / "comparison.csv").set_index("implementation")
    assert list(table["runs"]) == [2, 2] and list(table["runs_reaching_target"]) == [2, 2]
    assert (table["target_acc"] == 0.3).all() and "| time to 30 % (s) |" in (cnn_report / "comparison.md").read_text()
    assert sorted(pd.read_csv(cnn_report / "epochs.csv")["seed"].unique()) == [1, 2]
    steps = pd.read_csv(cnn_report / "parity.csv")
    assert "rel_diff_kernels" in steps and steps["rel_diff_kernels"].max() < 1e-9
    layers = pd.read_csv(cnn_report / "layers.csv")
    assert "conv1+conv1_bn+pool1+conv1_relu" in set(layers["layer"])
    assert set(pd.read_csv(cnn_report / "precision.csv")["dtype"]) == {"float32", "float64"}
    assert (pd.read_csv(cnn_report / "gradients.csv")["relative"] < 1e-10).all()


def test_compare_only_one_twin(mnist_dir, tmp_path):
    argv = ["--quick", "--only", "pytorch", "--optimizers", "", "--batch-sizes", "", "--out", str(tmp_path),
            "--data-dir", str(mnist_dir), "--threads", "1"]
    assert compare.main(argv) == 0
    assert list(pd.read_csv(tmp_path / "comparison.csv")["implementation"]) == ["pytorch"]
    assert not (tmp_path / "parity.csv").exists() and "## The twins are one network" not in \
        (tmp_path / "comparison.md").read_text()


def test_a_disk_that_fails_under_compare_is_one_line(mnist_dir, tmp_path, monkeypatch, capsys):
    """A figure that cannot be written (the disk full, say): one line naming the folder and what to do, the runs kept
    for the next try, and no report half-written in --out."""
    from comparison import plots

    def full(fig, path, tight=True):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(plots, "save", full)
    argv = ["--quick", "--only", "numpy", "--optimizers", "", "--batch-sizes", "", "--out", str(tmp_path),
            "--data-dir", str(mnist_dir), "--threads", "1"]
    assert compare.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: could not write the report into {tmp_path} (No space left on device)"), err
    assert "the finished runs are stored in" in err[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


def test_the_layer_profile_of_a_network_with_input_dropout(mnist_dir):
    """The best preset's shape: input dropout before the first layer with parameters, which has no backward in torch's
    graph (its input needs no gradient): the profile times its forward and leaves its backward out."""
    from comparison.layers import layers_job
    df = layers_job(["--hidden", "16", "--input-dropout", "0.2", "--limit-train", "512", "--val-size", "0", "--threads",
                     "1", "--data-dir", str(mnist_dir)], steps=3)
    rows = df[df["implementation"] == "pytorch"].set_index("layer")
    assert rows.loc["input_drop", "forward_ms"] > 0 and rows.loc["input_drop", "backward_ms"] == 0
    assert rows.loc["fc1", "backward_ms"] > 0
