"""numpy_nn/replicas.py: a CNN's batch shared over forked processes computes what one process computes (batch
norm over the whole batch, the same dropout masks, the same gradients), and a replica that fails, dies or is
orphaned ends in one line or with its parent, never in a hang."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import data_loader
from common import cli, flags
from conftest import ROOT
import numpy_nn.train
from numpy_nn import replicas

pytestmark = pytest.mark.skipif(not replicas.available(flags.parse_args(flags.make_parser("t"), [
    "--model", "cnn", "--threads", "2", "--quiet"]), np), reason="replicas need fork on x86-64 Linux")

NET = ["--model", "cnn", "--channels", "4,8", "--kernel-size", "3", "--hidden", "16", "--optimizer", "adam",
       "--dtype", "float64", "--val-size", "0", "--quiet", "--batch-size", "32"]


def train(mnist_dir, threads, extra, epochs=2):
    """(trainer, losses) after `epochs` epochs of batches of 32 on --threads threads."""
    args = flags.parse_args(flags.make_parser("t"), [*NET, *extra, "--data-dir", str(mnist_dir), "--threads",
                                                     str(threads), "--epochs", str(epochs)])
    data = cli.load_data(args)
    trainer = numpy_nn.train.Trainer(args)
    x, y = trainer.place(data.x_train, data.y_train)
    losses = [trainer.train_step(xb, yb)[0] for e in range(epochs)
              for xb, yb in data_loader.batches(x, y, 32, 1, e, min_last=2 if args.batch_norm else 1)]
    return trainer, losses


def children(pid=None):
    """The pids of a process's children (Linux)."""
    pid = pid or os.getpid()
    found = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            found |= {int(p) for p in f.read().split()}
    return found


@pytest.mark.parametrize("extra", [["--batch-norm", "--dropout", "0.5", "--limit-train", "330"],
                                   ["--dropout", "0.5", "--limit-train", "321"],
                                   ["--batch-norm", "dense", "--kernel-size", "5,3", "--padding", "valid",
                                    "--limit-train", "330"]],
                         ids=["batch-norm-dropout", "a-last-batch-of-one", "the-speedrun-shape"])
def test_replicas_compute_what_one_process_computes(mnist_dir, extra):
    """float64, two epochs of Adam: batch norm's statistics over the whole batch (in both passes), dropout's masks
    the rows of the one-process mask, and (321 images) a last batch of one image, which the parent runs alone while
    the replica draws its masks: losses and every tensor (running statistics too) equal to rounding."""
    one, one_losses = train(mnist_dir, 1, extra)
    two, two_losses = train(mnist_dir, 2, extra)
    assert one.replicas is None and two.replicas is not None and len(two.replicas.pids) == 1
    assert np.allclose(one_losses, two_losses, rtol=1e-10, atol=0), np.abs(np.subtract(one_losses, two_losses)).max()
    theirs = two.model.state_dict()
    for name, mine in one.model.state_dict().items():
        scale = max(float(np.abs(mine).max()), 1e-12)
        assert np.abs(mine - theirs[name]).max() <= 1e-9 * scale, (name, np.abs(mine - theirs[name]).max())
    # the masks really are dropout's: with the replicas' rows drawn from another stream the losses part at once
    assert abs(one_losses[0] - two_losses[0]) < 1e-12


def test_replicas_end_with_their_trainer(mnist_dir):
    two, _ = train(mnist_dir, 2, ["--limit-train", "64"], epochs=1)
    pid = two.replicas.pids[0]
    assert pid in children()
    del two
    import gc
    gc.collect()
    assert pid not in children()


def test_a_dead_replica_ends_the_step_in_one_line(mnist_dir):
    two, _ = train(mnist_dir, 2, ["--limit-train", "64"], epochs=1)
    pid = two.replicas.pids[0]
    os.kill(pid, signal.SIGKILL)
    data = cli.load_data(two.args)
    x, y = two.place(data.x_train, data.y_train)
    with pytest.raises(replicas.Failed, match=rf"replica process {pid} ended \(signal 9\).*--threads 1"):
        two.train_step(x[:32], y[:32])


def test_a_failing_replica_ends_the_step_with_its_error(mnist_dir, monkeypatch):
    parent = os.getpid()
    forward = numpy_nn.model.Sequential.forward

    def failing(self, x):
        if os.getpid() != parent:
            raise ValueError("broken in the replica")
        return forward(self, x)
    monkeypatch.setattr(numpy_nn.model.Sequential, "forward", failing)
    with pytest.raises(replicas.Failed, match="replica process failed: ValueError: broken in the replica; run with"):
        train(mnist_dir, 2, ["--limit-train", "64"], epochs=1)


def test_a_replica_dies_with_its_killed_parent(mnist_dir):
    """kill -9 of the training process leaves no replica behind (the parent-death signal)."""
    script = (f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r}); import time, test_replicas as t; "
              f"from pathlib import Path; tr, _ = t.train(Path({str(mnist_dir)!r}), 2, ['--limit-train', '64'], 1); "
              "print(tr.replicas.pids[0], flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        child = int(proc.stdout.readline())
        assert child in children(proc.pid)
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{child}") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.path.exists(f"/proc/{child}"), "the replica outlived its parent"
    finally:
        proc.kill()
