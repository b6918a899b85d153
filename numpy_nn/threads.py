"""numpy_nn's threads. BLAS multiplies big matrices on all of them by itself, but every other NumPy operation
(a copy, a maximum, a sum) runs on one core, and a CNN's step is mostly such passes and skinny products. So
the fast kernels cut a batch into blocks of images and hand the blocks to a pool of threads, one block's
whole chain of passes (and its products, on one BLAS thread) at a time; NumPy lets go of the interpreter lock
inside each operation, so the threads run at once. This is what torch's kernels do with OpenMP
(pytorch_nn/threads.py). Measured on 2 cores (Intel Xeon), conv2 of the cnn-fast network, batch 256: forward
8.8 ms as whole-batch passes with two-threaded BLAS, 5.2 ms block by block on two threads; backward 23.7 and
15.0 ms. Two threads do 1.5-1.7x the work of one here (a product, a multiplication), not 2x.
What it costs, measured on a 2-core VM (AMD EPYC, cnn preset, batches 16-128): a step on two workers is
7.9-8.7 ms + 395-434 us per image, on one 1.4-2.5 ms + 720-760 us. The fixed part is the threads meeting:
each parallel pass wakes the other worker, and the threads take turns at the interpreter lock between NumPy
calls, sleeping when it is held; a thread woke another in 30-40 us there. Fewer passes did not buy it back
(cnn-fast's forward as one pass through all its layers took the same time): torch's OpenMP threads wait
spinning, in C, with no such lock (ANALYSIS.md, section 6). So a CNN's training step shares its batch over
processes instead (replicas.py), one thread in each; the pool serves evaluation, and training where replicas
do not apply (the reference kernels, a system without fork).
"""
import os
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from common.machine import default_threads

BLOCK_BYTES = 4 << 20  # a block's working set; cnn-fast step (2 cores): 102, 74, 59, 53, 52 ms at 1/4, 1/2, 1,
# 2, 4 MiB, 52 at 16: fewer calls into NumPy and larger products outweigh what a block loses from the cache
WORKERS = default_threads()
_pool = _blas = None


def _forget_pool():
    """In a forked child: the pool's object came along, its threads did not; the child starts its own."""
    global _pool
    _pool = None


os.register_at_fork(after_in_child=_forget_pool)


def set_threads(n, pool_only=False):
    """n threads for the pool and for BLAS, or (pool_only, as the CNN asks) BLAS on one thread throughout.
    OpenBLAS's idle threads spin for about 0.1 s after each product before they sleep, on the cores the pool
    then wants: a cnn-fast step took 66 ms with the dense layers' products on two BLAS threads, 55 ms with every
    product on one (the dense layers are 4 % of the step)."""
    global WORKERS
    from threadpoolctl import threadpool_limits
    WORKERS = n
    threadpool_limits(1 if pool_only else n, user_api="blas")


def blocks(n, bytes_per_image, xp=np):
    """Slices of a batch of n, each about BLOCK_BYTES of working set (at least one image), as many as a
    multiple of the workers so that each gets the same share. Under a quarter of a block, one block: handing
    work to the pool takes about 0.1 ms, more than a pass that small. On a GPU (no cache to fit): one block."""
    if xp is not np or n * bytes_per_image < BLOCK_BYTES // 4:
        return split(n, 1)
    count = min(n, -(-n * bytes_per_image // BLOCK_BYTES))
    return split(n, -(-count // WORKERS) * WORKERS)


def split(n, count):
    """range(n) in min(n, count) slices of nearly equal length, in order."""
    edges = [n * i // min(n, count) for i in range(min(n, count) + 1)]
    return [slice(a, b) for a, b in zip(edges, edges[1:])]


def parallel(fn, slices):
    """fn(worker, s) for every slice s: worker w takes slices w, w + W, w + 2W, ... in order, the same every
    run, so that sums a worker gathers over its blocks come out the same; BLAS on one thread meanwhile.
    Returns the workers' results in order of worker, each the list of fn's returns for its slices."""
    global _pool, _blas
    workers = min(WORKERS, len(slices))
    run = lambda w: [fn(w, s) for s in slices[w::workers]]
    if workers == 1:
        return [run(0)]
    if _pool is None or _pool._max_workers < workers - 1:
        from threadpoolctl import ThreadpoolController
        _pool, _blas = ThreadPoolExecutor(workers - 1, thread_name_prefix="numpy_nn"), ThreadpoolController()
    with _blas.limit(limits=1, user_api="blas"):  # (8 us, and right whatever set BLAS's threads last)
        others = [_pool.submit(run, w) for w in range(1, workers)]
        try:
            mine = run(0)  # this thread is worker 0
        finally:
            wait(others)   # none left running on one BLAS thread, whatever happened here
        return [mine] + [f.result() for f in others]


def total(fn, slices):
    """The sum of fn(worker, s) over the slices, in the same order every run; fn may return a tuple of sums."""
    returns = [r for worker in parallel(fn, slices) for r in worker]
    if isinstance(returns[0], tuple):
        return tuple(sum(parts) for parts in zip(*returns))
    return sum(returns)
