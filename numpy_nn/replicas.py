"""Data parallelism over processes (--processes N), torch's DistributedDataParallel over a CPU's cores: each batch
is cut into N slices of rows; this process and N - 1 replicas of the model, each in a process of its own on
threads // N BLAS threads, run one slice each; the replicas' gradients are added into this process's, which alone
steps the optimizer. NumPy runs all but its matrix products on one core, and processes share no interpreter lock.

The same math as one process: each slice's loss is its share of the batch's mean, so the gradients add up to the
batch's; batch norm (fast_norm.py) adds its sums over the processes in the same order in each (torch's
SyncBatchNorm); dropout draws the whole batch's mask in every process, from the same state, and keeps its rows.

multiprocessing alone, so any start method works (a replica builds its model from the flags): shared arrays, a pipe
to each replica, semaphores for batch norm's meetings. Every wait is bounded: a replica that dies, fails or stops
answering ends the run in one line; one whose trainer is gone exits."""
import contextlib
import multiprocessing as mp
import os
import signal
import threading
import time
import weakref
from multiprocessing import connection

import numpy as np

from common.errors import RunError
from numpy_nn.losses import softmax_cross_entropy

WAIT_S = 300.0  # the longest a process waits for another within a step
START = None  # multiprocessing's start method for the replicas: None, the platform's default
ALONE = "; run with --processes 1 to train in one process"


class Failed(RunError):  # a replica failed, ended or stopped answering
    pass


def count(args, xp=np) -> int:
    """--processes, else --threads for a CNN or recurrent net of the fast kernels on the CPU, else 1; or RunError."""
    chosen, fast = getattr(args, "processes", None), getattr(args, "kernels", "fast") == "fast" and xp is np
    daemonic = mp.current_process().daemon  # (a multiprocessing.Pool's worker: it may not start processes)
    if chosen is None:
        return args.threads if args.model != "mlp" and fast and not daemonic else 1
    why = ("this process is a daemonic worker (multiprocessing.Pool's), which may not start processes" if daemonic
           else "batches are shared over processes with --kernels fast on the CPU only" if not fast
           else f"with --threads {args.threads}, some process has no core of its own" if chosen > args.threads else None)
    if chosen > 1 and why:
        raise RunError(f"--processes {chosen}: {why}; use --processes {args.threads if fast and not daemonic else 1}")
    return chosen


def shared(context, shape, dtype):
    """A zeroed array in shared memory (multiprocessing's RawArray), as (raw, shape, dtype): what a replica is given."""
    return context.RawArray("b", max(int(np.prod(shape)) * np.dtype(dtype).itemsize, 1)), tuple(shape), dtype


def array(spec):  # the NumPy view of a shared array
    return np.frombuffer(spec[0], spec[2], int(np.prod(spec[1]))).reshape(spec[1])


class Group:
    """The processes that share a batch, as its layers see them: batch norm's sharing and sum(), dropout's random().
    A meeting is a barrier of semaphores, one per process: each releases the others' and takes its own size - 1
    times. Sums go through two slots in turn: no process can be two meetings ahead and overwrite what another reads."""

    def __init__(self, size, rank, semaphores, slots, broken, smoothing=0.0):  # (smoothing: --label-smoothing)
        self.size, self.rank, self.semaphores, self.slots, self.broken = size, rank, semaphores, slots, broken
        self.meetings, self.batch, self.mine, self.rng, self.smoothing = 0, None, None, None, smoothing

    sharing = property(lambda self: self.batch is not None)

    def step(self, model, x, y):
        """Forward and backward of this process's rows of (x, y) into model.grads: (share of the mean loss, correct)."""
        n = self.batch = len(x)
        self.mine = mine = slice(n * self.rank // self.size, n * (self.rank + 1) // self.size)
        try:
            logits = model.forward(x[mine])
            loss, dlogits = softmax_cross_entropy(logits, y[mine], self.smoothing)
            share = (mine.stop - mine.start) / n
            dlogits *= dlogits.dtype.type(share)
            model.backward(dlogits)
            return float(loss) * share, int((logits.argmax(axis=1) == y[mine]).sum())
        finally:
            self.batch = None

    def meet(self):
        """Wait until every process has come here, at most WAIT_S; Failed if the group was broken meanwhile."""
        for r, semaphore in enumerate(self.semaphores):
            if r != self.rank:
                semaphore.release()
        deadline = time.monotonic() + WAIT_S
        for _ in range(self.size - 1):
            if not self.semaphores[self.rank].acquire(timeout=max(0.0, deadline - time.monotonic())):
                self.abort()
                raise Failed(f"numpy_nn's processes waited {WAIT_S:.0f} s for each other within a step: one is "
                             f"stopped or stuck{ALONE}")
            if self.broken[0]:
                raise Failed(f"numpy_nn's processes stopped during a training step{ALONE}")  # (answers() says why)

    def abort(self):
        """Break the group: every process waiting in meet() wakes and fails."""
        self.broken[0] = 1
        for semaphore in self.semaphores:
            for _ in range(self.size):
                semaphore.release()

    def sum(self, sums, m):
        """Per-channel sums and count of values over this process's rows -> over the batch, in rank order in each."""
        flat = np.append(np.asarray(sums, np.float64), m)
        slot, self.meetings = self.meetings % 2, self.meetings + 1
        self.slots[slot, self.rank, :len(flat)] = flat
        self.meet()
        parts = self.slots[slot, :, :len(flat)]
        whole = parts[0, :-1].astype(sums.dtype)
        for part in parts[1:, :-1]:
            whole = whole + part.astype(sums.dtype)
        return whole, int(parts[:, -1].sum())

    def masks(self, rng):  # the group as a dropout layer's generator, drawing from rng: random()
        self.rng = rng
        return self

    def random(self, shape, dtype):
        """The whole batch's mask, as one process draws it: this process's rows of it."""
        if not self.sharing:
            return self.rng.random(shape, dtype=dtype)
        return self.rng.random((self.batch, *shape[1:]), dtype=dtype)[self.mine]


class Replicas:
    """N - 1 replica processes of a trainer's model; forward_backward runs a batch over them and this process."""

    def __init__(self, args, model, image_shape, size):
        context, dtype = mp.get_context(START), model.flat_params.dtype
        width = 2 * max([len(v) for k, v in model.params.items() if k.endswith(".gamma")], default=1) + 1
        shapes = {"x": ((args.batch_size, *image_shape), dtype), "y": ((args.batch_size,), np.int64),
                  "params": (model.flat_params.shape, dtype), "grads": ((size - 1, *model.flat_grads.shape), dtype),
                  "slots": ((2, size, width), np.float64), "broken": ((1,), np.int64)}
        specs = {k: shared(context, *v) for k, v in shapes.items()}
        self.model, self.size, self.memory = model, size, {k: array(spec) for k, spec in specs.items()}
        semaphores = [context.Semaphore(0) for _ in range(size)]
        self.group = Group(size, 0, semaphores, self.memory["slots"], self.memory["broken"], args.label_smoothing)
        model.share(self.group)
        self.pipes, self.processes = [], []
        for rank in range(1, size):
            mine, theirs = context.Pipe()
            self.processes.append(context.Process(target=serve, args=(args, rank, size, specs, semaphores, theirs),
                                                  name=f"numpy_nn replica {rank}", daemon=True))
            self.processes[-1].start()
            theirs.close()
            self.pipes.append(mine)
        self.close = weakref.finalize(self, stop, self.group, self.pipes, self.processes)  # (or when collected)
        processes, group = self.processes, self.group  # when a replica ends, break the group: nobody waits for it
        threading.Thread(target=lambda: (connection.wait([p.sentinel for p in processes]), group.abort()),
                         daemon=True).start()
        self.answers()  # each replica ready, its model built (a spawned one imports NumPy first), before any step

    def forward_backward(self, x, y):
        """Fill the model's grads from batch (x, y), a slice in each process: (loss, correct); None for a batch of
        fewer images than processes, which this process runs alone."""
        n, memory = len(x), self.memory
        if n < self.size:
            return None
        if not self.close.alive:
            raise Failed(f"numpy_nn's replica processes have stopped{ALONE}")
        memory["params"][...] = self.model.flat_params
        memory["x"][:n], memory["y"][:n] = x, y
        rng = self.model.mask_rng.bit_generator.state if self.model.dropouts else None
        try:
            for pipe in self.pipes:
                pipe.send((n, rng))
            try:
                loss, correct = self.group.step(self.model, memory["x"][:n], memory["y"][:n])
            except Failed as broken:  # a replica broke the group: say which, if it tells within a second
                self.answers(wait=1.0, otherwise=broken)
                raise
            for rank, (share, right) in enumerate(self.answers(), start=1):
                loss, correct = loss + share, correct + right
                self.model.flat_grads += memory["grads"][rank - 1]
        except BaseException:
            self.close()
            raise
        return loss, correct

    def answers(self, wait=None, otherwise=None):
        """Each replica's (loss share, correct count) for this step, waiting at most wait (WAIT_S) seconds; Failed, in
        one line, for a replica that failed or ended (or for none in time: otherwise, if given)."""
        wait, got = WAIT_S if wait is None else wait, {}
        deadline = time.monotonic() + wait
        while len(got) < len(self.pipes):
            ready = connection.wait([p for p in self.pipes if p not in got] + [p.sentinel for p in self.processes],
                                    max(0.0, deadline - time.monotonic()))
            if not ready:
                raise otherwise or Failed(f"a numpy_nn replica process did not finish its slice within {wait:.0f} s: "
                                          f"it is stopped or stuck{ALONE}")
            for pipe, process in zip(self.pipes, self.processes):
                try:
                    if pipe not in got and (pipe.poll() or process.sentinel in ready):
                        got[pipe] = pipe.recv()
                except (EOFError, OSError):
                    process.join(timeout=1)
                    code = process.exitcode
                    how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                    raise Failed(f"numpy_nn's replica process {process.pid} ended ({how}) in a step{ALONE}") from None
                if got.get(pipe, ("done",))[0] == "error":
                    raise Failed(f"numpy_nn's replica process failed: {got[pipe][1]}{ALONE}")
        return [got[p][1:] for p in self.pipes]


def stop(group, pipes, processes):
    """Stop the replicas (close(), or the Replicas collected): wake any that waits, tell each to stop."""
    group.abort()
    for pipe in pipes:
        with contextlib.suppress(OSError):
            pipe.send(None)
    for process in processes:
        process.join(timeout=2)
        if process.is_alive():  # (stopped, or deep in a slice)
            process.kill()
            process.join(timeout=5)


def serve(args, rank, size, specs, semaphores, pipe):
    """A replica's life: build the model, then run a slice of each batch ordered, until told to stop or the trainer
    is gone (its pipe closes, or a thread sees it end)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the trainer decides
    parent = mp.parent_process()
    threading.Thread(target=lambda: (connection.wait([parent.sentinel]), os._exit(0)), daemon=True).start()
    from threadpoolctl import threadpool_limits
    from common.machine import keep_freed_memory
    from numpy_nn.model import build
    keep_freed_memory()  # as its trainer's process (a forked replica inherits it, a spawned one does not)
    threadpool_limits(max(1, args.threads // size), user_api="blas")
    memory, model = {k: array(spec) for k, spec in specs.items()}, build(args)
    group = Group(size, rank, semaphores, memory["slots"], memory["broken"], args.label_smoothing)
    model.share(group)
    try:
        pipe.send(("done", 0.0, 0))  # ready: the trainer waits for this before its first step
        while (order := pipe.recv()) is not None:
            n, rng = order
            model.flat_params[...] = memory["params"]
            if rng is not None:
                model.mask_rng.bit_generator.state = rng
            answer = group.step(model, memory["x"][:n], memory["y"][:n])
            memory["grads"][rank - 1] = model.flat_grads
            pipe.send(("done", *answer))
    except (EOFError, OSError):
        pass  # the trainer is gone
    except BaseException as e:
        group.abort()
        with contextlib.suppress(OSError):
            pipe.send(("error", f"{type(e).__name__}: {' '.join(str(e).split())}"[:300]))
