"""Data parallelism over processes: with --threads N on the CPU, a CNN's batch is cut into N slices, and this
process and N - 1 forked replicas of the model each run the forward and backward of one slice, on one core
each; the replicas' gradients are summed into this process's, which alone steps the optimizer. This is how
PyTorch spreads a batch over GPUs (DistributedDataParallel), here over cores.

Why not only the pool of threads (threads.py): its workers meet too slowly. Each parallel pass wakes a
worker, and two threads take turns at Python's interpreter lock between their NumPy calls; on a 2-core VM
that cost about 6 ms a step, and a replica process, which shares no lock, meets the others once per batch
norm and once per step. cnn preset, AMD EPYC (2 cores), ms per step: 39.3 -> 31.4 at batch 64, 61.4 -> 51.6
at batch 128; cnn-fast 12.5 -> 9.5 at 64, 30.8 -> 28.3 at 256 (ANALYSIS.md, section 6).

The same math: each slice's loss is its share of the batch's mean (dlogits scaled by its size over the
batch's), so the gradients add up to the one-process gradient; batch norm takes its statistics over the
whole batch (its sums added across the processes, in the same order in each: the same numbers everywhere);
dropout draws the whole batch's mask in every process and keeps its slice's rows. Weights travel each step
from this process to the replicas through shared memory; a replica that fails or dies stops the run with
one line, and a replica whose parent dies is killed with it (Linux's parent-death signal).
"""
import ctypes
import mmap
import os
import platform
import signal
import sys
import time
import weakref

import numpy as np

from common.errors import RunError
from numpy_nn import threads
from numpy_nn.losses import softmax_cross_entropy

SPIN_S = 0.02  # a waiting replica spins this long before it sleeps between looks (a step is 5-150 ms)
MESSAGE = 512  # bytes of a failed replica's error


def available(args, xp) -> bool:
    """Replicas serve a CNN of the fast kernels (whose batch norm adds its sums across processes) on the CPU
    with more than one thread and batches of at least as many images, on x86-64 Linux: fork, a parent-death
    signal, and stores that other cores see in the order they were made (the batch before the step number
    that announces it), which NumPy cannot fence on other CPUs."""
    return (args.model == "cnn" and getattr(args, "kernels", "fast") == "fast" and xp is np and args.threads > 1
            and args.batch_size >= args.threads and sys.platform.startswith("linux")
            and platform.machine() in ("x86_64", "AMD64"))


def shared(shape, dtype):
    """A zeroed array in memory that a forked child shares with its parent (an anonymous shared mapping)."""
    n = int(np.prod(shape))
    return np.frombuffer(mmap.mmap(-1, max(n * np.dtype(dtype).itemsize, 8)), dtype, n).reshape(shape)


class Failed(RunError):
    pass


class Replicas:
    """N - 1 forked copies of trainer's model, each running one slice of every batch."""

    def __init__(self, trainer, image_shape, max_batch):
        model, n = trainer.model, trainer.args.threads
        self.model, self.n, self.rank, self.parent, self.active = model, n, 0, os.getpid(), False
        norms = [layer for layer in model.layers.values() if hasattr(layer, "running_mean")]
        width = 2 * max((len(layer.running_mean) for layer in norms), default=1) + 1
        self.x = shared((max_batch, *image_shape), model.flat_params.dtype)
        self.y = shared((max_batch,), np.int64)
        self.params = shared(model.flat_params.shape, model.flat_params.dtype)
        self.grads = shared((n - 1, *model.flat_grads.shape), model.flat_grads.dtype)  # replica r's in row r - 1
        self.slots = shared((2, n, width), np.float64)  # the norms' sums, double-buffered (see across)
        self.seq = shared((n,), np.int64)               # each process's count of sums published
        self.step_no = shared((3,), np.int64)           # [step, batch size, stop]
        self.done = shared((n - 1,), np.int64)          # the step each replica finished
        self.results = shared((n - 1, 2), np.float64)   # its loss share and its correct count
        self.error = shared((MESSAGE,), np.uint8)
        self.published, self.pids = 0, []
        for layer in norms:
            layer.across = self.across
        self.drops = [layer for layer in model.layers.values() if hasattr(layer, "rng") and hasattr(layer, "p")]
        for layer in self.drops:
            layer.rng = Rows(layer.rng)
        for rank in range(1, n):
            pid = os.fork()
            if pid == 0:
                self.serve(rank)  # (never returns)
            self.pids.append(pid)
        self.close = weakref.finalize(self, stop, self.step_no, self.pids)

    # --- in this process
    def forward_backward(self, x, y):
        """Fill the model's grads from batch (x, y), one slice in each process: (loss, correct). None for a
        batch of fewer images than processes, which this process then runs alone (the replicas only draw the
        dropout masks it draws, to stay on its stream)."""
        n = len(x)
        if n >= self.n:  # (a lone batch needs neither: the replicas only draw masks)
            self.params[...] = self.model.flat_params
            self.x[:n], self.y[:n] = x, y
        self.step_no[1] = n
        self.step_no[0] += 1                      # the replicas start
        step = self.step_no[0]
        if n < self.n:
            self.wait(lambda: all(self.done == step))
            return None
        self.active = True
        try:
            loss, correct = self.run_slice(0, x, y)
        finally:
            self.active = False
        self.wait(lambda: all(self.done == step))
        for grads in self.grads:
            self.model.flat_grads += grads
        return loss + self.results[:, 0].sum(), correct + int(self.results[:, 1].sum())

    def run_slice(self, rank, x, y):
        """The forward and backward of this process's rows of the batch: its share of the mean loss."""
        n = len(x)
        rows = threads.split(n, self.n)[rank]
        for layer in self.drops:
            layer.rng.rows, layer.rng.batch = rows, n
        workers, threads.WORKERS = threads.WORKERS, 1
        try:
            logits = self.model.forward(x[rows])
            loss, dlogits = softmax_cross_entropy(logits, y[rows])
            share = (rows.stop - rows.start) / n
            dlogits *= dlogits.dtype.type(share)
            self.model.backward(dlogits)
        finally:
            threads.WORKERS = workers
            for layer in self.drops:
                layer.rng.batch = None
        return float(loss) * share, int((logits.argmax(axis=1) == y[rows]).sum())

    def across(self, sums, m):
        """A batch norm's per-channel sums over this process's rows -> over the whole batch, added in the same
        order (process 0, 1, ...) in every process; m, its values per channel, likewise. Each process publishes
        into one of two slots and waits for all to publish: none can be two sums ahead of another."""
        if not self.active:  # (evaluation, or a batch this process runs alone)
            return sums, m
        flat = np.append(np.ravel(sums), m).astype(np.float64)
        slot, self.published = self.published % 2, self.published + 1
        self.slots[slot, self.rank, :len(flat)] = flat
        self.seq[self.rank] = self.published
        self.wait(lambda: all(self.seq >= self.published))
        parts = self.slots[slot, :, :len(flat)]
        whole = parts[0].astype(np.asarray(sums).dtype)
        for part in parts[1:]:
            whole = whole + part.astype(whole.dtype)
        return whole[:-1].reshape(np.shape(sums)), int(parts[:, -1].sum())

    def wait(self, ready, idle=False):
        """Spin until ready(), looking every few thousand turns whether a replica failed or died (in a replica:
        whether this process's parent is gone or asked it to stop). After SPIN_S, sleep between looks: 0.5 ms,
        or for a replica idle between steps (its parent evaluating, or another trainer's turn) twice as long
        each time up to 50 ms, so that it leaves the cores to others."""
        turns, start, nap, napping = 0, time.perf_counter(), 5e-4, False
        while not ready():
            turns += 1
            if napping or turns % 2048 == 0:
                self.check()
                napping = napping or time.perf_counter() - start > SPIN_S
                if napping:
                    time.sleep(nap)
                    nap = min(2 * nap, 0.05) if idle else nap

    def check(self):
        if self.rank:  # a replica
            if os.getppid() != self.parent or self.step_no[2]:
                os._exit(0)
            return
        if self.error[0]:
            text = bytes(self.error).rstrip(b"\0").decode(errors="replace")
            raise Failed(f"numpy_nn's replica process failed: {text}; run with --threads 1 to train in one process")
        for pid in self.pids:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                self.pids.remove(pid)
                why = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit {os.WEXITSTATUS(status)}"
                raise Failed(f"numpy_nn's replica process {pid} ended ({why}) during a training step; run with "
                             f"--threads 1 to train in one process")

    # --- in a replica
    def serve(self, rank):
        """A replica's life: wait for a step, run its slice, publish its gradients; until told to stop."""
        self.rank, self.active = rank, True
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C reaches the whole group: the parent decides
            with_parent()
            seen = 0
            while True:
                self.wait(lambda: self.step_no[0] != seen, idle=True)
                seen, n = int(self.step_no[0]), int(self.step_no[1])
                if n < self.n:  # the parent runs this batch alone: draw its dropout masks, as it does
                    for layer in self.drops:
                        layer.rng.skip(n)
                else:
                    self.model.flat_params[...] = self.params
                    self.results[rank - 1] = self.run_slice(rank, self.x[:n], self.y[:n])
                    self.grads[rank - 1] = self.model.flat_grads
                self.done[rank - 1] = seen
        except BaseException as e:
            text = f"{type(e).__name__}: {' '.join(str(e).split())}".encode()[:MESSAGE - 1]
            self.error[:len(text)] = np.frombuffer(text, np.uint8)
        finally:
            os._exit(0)


class Rows:
    """A dropout layer's generator in a replica or its parent: it draws the mask of the whole batch, as one
    process would, and hands back this process's rows of it, so that every process stays on the same stream."""

    def __init__(self, rng):
        self.rng, self.rows, self.batch, self.drawn = rng, None, None, None  # batch None: not sharing one

    def random(self, shape, dtype):
        whole = shape if self.batch is None else (self.batch, *shape[1:])
        self.drawn = whole[1:], dtype
        mask = self.rng.random(whole, dtype=dtype)
        return mask if self.batch is None else mask[self.rows]

    def skip(self, n):
        """Draw what the parent draws for a batch of n it runs alone (the features as last drawn)."""
        if self.drawn is not None:
            self.rng.random((n, *self.drawn[0]), dtype=self.drawn[1])


def with_parent():
    """Linux: this process gets SIGKILL when its parent dies (a kill -9 of the run leaves no replica behind)."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # (wait() also looks at the parent)


def stop(step_no, pids):
    """Tell the replicas to stop and wait for them (the trainer's end, or the interpreter's)."""
    step_no[2] = 1
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
