"""numpy_nn/replicas.py: a batch shared over processes computes what one process computes (batch norm over the whole
batch, the same dropout masks, the same gradients) under any start method, and a replica that fails, dies, stops or
is orphaned ends in one line, or with its trainer, never in a hang."""
import contextlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import data_loader
from common import cli, flags
from common.errors import RunError
from conftest import ROOT, readline
import numpy_nn.train
from numpy_nn import replicas

pytestmark = pytest.mark.skipif(os.cpu_count() < 2, reason="two processes need two cores")

NET = ["--model", "cnn", "--channels", "4,8", "--kernel-size", "3", "--hidden", "16", "--optimizer", "adam",
       "--dtype", "float64", "--val-size", "0", "--quiet", "--batch-size", "32", "--threads", "2"]


def parser():
    p = flags.make_parser("t")
    flags.numpy_flags(p)  # (--processes, --kernels)
    return p


def trainer(mnist_dir, processes, extra, epochs=2, net=NET):
    args = flags.parse_args(parser(), [*net, *extra, "--data-dir", str(mnist_dir), "--processes",
                                                     str(processes), "--epochs", str(epochs)])
    return numpy_nn.train.Trainer(args), cli.load_data(args)


def train(mnist_dir, processes, extra, epochs=2, net=NET):
    """(trainer, losses) after `epochs` epochs of batches of 32 over `processes` processes."""
    t, data = trainer(mnist_dir, processes, extra, epochs, net)
    x, y = t.place(data.x_train, data.y_train)
    losses = [t.train_step(xb, yb)[0] for e in range(epochs)
              for xb, yb in data_loader.batches(x, y, 32, 1, e, min_last=2 if t.args.batch_norm else 1)]
    return t, losses


def assert_same_run(one, one_losses, two, two_losses):
    assert np.allclose(one_losses, two_losses, rtol=1e-10, atol=0), np.abs(np.subtract(one_losses, two_losses)).max()
    theirs = two.model.state_dict()
    for name, mine in one.model.state_dict().items():
        scale = max(float(np.abs(mine).max()), 1e-12)
        assert np.abs(mine - theirs[name]).max() <= 1e-9 * scale, (name, np.abs(mine - theirs[name]).max())


@pytest.mark.parametrize("extra", [["--batch-norm", "--dropout", "0.5", "--limit-train", "330"],
                                   ["--dropout", "0.5", "--limit-train", "321"],
                                   ["--batch-norm", "dense", "--kernel-size", "5,3", "--padding", "valid",
                                    "--limit-train", "330"]],
                         ids=["batch-norm-dropout", "a-last-batch-of-one", "the-speedrun-shape"])
def test_replicas_compute_what_one_process_computes(mnist_dir, extra):
    """float64, two epochs of Adam: batch norm's statistics over the whole batch (in both passes), dropout's masks
    the rows of the one-process mask, and (321 images) a last batch of one image, which the trainer runs alone:
    losses and every tensor (running statistics too) equal to rounding."""
    one, one_losses = train(mnist_dir, 1, extra)
    two, two_losses = train(mnist_dir, 2, extra)
    assert one.replicas is None and len(two.replicas.processes) == 1
    assert_same_run(one, one_losses, two, two_losses)
    two.close()


def test_replicas_share_a_recurrent_network(mnist_dir):
    """A two-layer LSTM (numpy_nn's fast recurrent layers) with batch norm and dropout on its last state, shared over two
    processes: the same losses and tensors as one process, to rounding."""
    net = [*NET[NET.index("--optimizer"):], "--model", "lstm", "--width", "12", "--depth", "2", "--batch-norm",
           "features", "--input-dropout", "0.3", "--limit-train", "320"]
    one, one_losses = train(mnist_dir, 1, [], net=net)
    two, two_losses = train(mnist_dir, 2, [], net=net)
    assert len(two.replicas.processes) == 1 and "lstm.weight_hh_l1" in two.model.state_dict()
    assert_same_run(one, one_losses, two, two_losses)
    two.close()


def test_the_replicas_draw_the_masks_one_process_draws(mnist_dir, monkeypatch):
    """The check above can fail on dropout: a replica that keeps other rows of the whole batch's mask (here, the
    rows one further down) parts from one process at the first step."""
    extra = ["--dropout", "0.5", "--limit-train", "64"]
    one, one_losses = train(mnist_dir, 1, extra, epochs=1)
    random = replicas.Group.random

    def shifted(self, shape, dtype):
        if not self.sharing or self.rank == 0:
            return random(self, shape, dtype)
        mask = self.rng.random((self.batch + 1, *shape[1:]), dtype=dtype)
        return mask[self.mine.start + 1:self.mine.stop + 1]
    monkeypatch.setattr(replicas.Group, "random", shifted)  # (the replicas are forked: they take it too)
    two, two_losses = train(mnist_dir, 2, extra, epochs=1)
    assert abs(one_losses[0] - two_losses[0]) > 1e-6
    two.close()


def test_any_start_method(mnist_dir, monkeypatch):
    """The replicas build their model from the flags and receive everything else as arguments: spawned, as on macOS
    and Windows, they compute what forked ones do."""
    extra = ["--batch-norm", "--dropout", "0.5", "--limit-train", "128"]
    forked, forked_losses = train(mnist_dir, 2, extra, epochs=1)
    monkeypatch.setattr(replicas, "START", "spawn")
    spawned, spawned_losses = train(mnist_dir, 2, extra, epochs=1)
    assert spawned.replicas.processes[0]._start_method == "spawn"
    assert_same_run(forked, forked_losses, spawned, spawned_losses)
    forked.close(), spawned.close()


def test_replicas_end_with_their_trainer(mnist_dir):
    """close() stops them; a trainer dropped without it stops them when it is collected."""
    for closed in (True, False):
        two, _ = train(mnist_dir, 2, ["--limit-train", "64"], epochs=1)
        process = two.replicas.processes[0]
        assert process.is_alive()
        if closed:
            two.close()
        else:
            del two
        process.join(timeout=10)
        assert not process.is_alive()


def test_a_dead_replica_ends_the_step_in_one_line(mnist_dir):
    two, data = trainer(mnist_dir, 2, ["--batch-norm", "--limit-train", "64"], epochs=1)
    x, y = two.place(data.x_train, data.y_train)
    two.train_step(x[:32], y[:32])
    pid = two.replicas.processes[0].pid
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(replicas.Failed, match=rf"replica process {pid} ended \(signal 9\) in a step.*--processes 1"):
        two.train_step(x[:32], y[:32])
    with pytest.raises(replicas.Failed, match="have stopped"):
        two.replicas.forward_backward(x[:32], y[:32])


@pytest.mark.parametrize("batch_norm", [[], ["--batch-norm"]], ids=["at-the-answer", "at-a-batch-norm-meeting"])
def test_a_stopped_replica_ends_the_step_after_the_wait(mnist_dir, monkeypatch, batch_norm):
    """A replica that stops answering (SIGSTOP) ends the step in one line after WAIT_S, whether the trainer waits for
    its answer or for its batch norm's sums."""
    monkeypatch.setattr(replicas, "WAIT_S", 1.0)
    two, data = trainer(mnist_dir, 2, [*batch_norm, "--limit-train", "64"], epochs=1)
    x, y = two.place(data.x_train, data.y_train)
    two.train_step(x[:32], y[:32])
    process = two.replicas.processes[0]
    os.kill(process.pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        with pytest.raises(replicas.Failed, match=r"(within 1 s|waited 1 s).*stopped or stuck.*--processes 1"):
            two.train_step(x[:32], y[:32])
        assert time.monotonic() - start < 15
    finally:
        with contextlib.suppress(ProcessLookupError):  # (stopping the replicas kills one that does not stop)
            os.kill(process.pid, signal.SIGCONT)
    process.join(timeout=10)
    assert not process.is_alive()


def test_a_failing_replica_ends_the_step_with_its_error(mnist_dir, monkeypatch):
    parent = os.getpid()
    forward = numpy_nn.model.Sequential.forward

    def failing(self, x):
        if os.getpid() != parent:
            raise ValueError("broken in the replica")
        return forward(self, x)
    monkeypatch.setattr(numpy_nn.model.Sequential, "forward", failing)
    for batch_norm in ([], ["--batch-norm"]):  # the trainer waiting for the answer, or at a meeting the replica broke
        with pytest.raises(replicas.Failed, match="replica process failed: ValueError: broken in the replica; run "):
            train(mnist_dir, 2, [*batch_norm, "--limit-train", "64"], epochs=1)


def test_a_replica_dies_with_its_killed_trainer(mnist_dir):
    """kill -9 of the training process leaves no replica behind."""
    script = (f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r}); import time, test_replicas as t; "
              f"from pathlib import Path; tr, _ = t.train(Path({str(mnist_dir)!r}), 2, ['--limit-train', '64'], 1); "
              "print(tr.replicas.processes[0].pid, flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        child = int(readline(proc))
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{child}") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.path.exists(f"/proc/{child}"), "the replica outlived its trainer"
    finally:
        proc.kill()


@pytest.mark.parametrize("argv, why", [
    (["--processes", "3", "--threads", "2"], "--processes 3: with --threads 2, some process has no core of its own; "
                                             "use --processes 2"),
    (["--processes", "2", "--kernels", "reference"], "--processes 2: batches are shared over processes with --kernels "
                                                     "fast on the CPU only; use --processes 1"),
])
def test_processes_that_cannot_run_are_refused_in_one_line(argv, why):
    args = flags.parse_args(parser(), [*NET, *argv])
    with pytest.raises(RunError, match=why):
        replicas.count(args)


def test_the_default_shares_a_cnn_or_a_recurrent_network_of_the_fast_kernels_only():
    def count(*argv):
        return replicas.count(flags.parse_args(parser(), [*argv, "--threads", "2"]))
    assert count("--model", "cnn") == count("--model", "lstm") == count("--model", "gru") == 2
    assert count("--model", "cnn", "--kernels", "reference") == count("--model", "mlp") == 1
