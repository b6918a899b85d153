"""What the machine is and what it can do: cores, CPU, versions, and its practical matrix-multiply peak."""
from __future__ import annotations

import contextlib
import importlib.metadata
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def environment(**extra) -> dict:
    """Versions and machine facts for a report; extra adds the trainer's own (threads, device)."""
    def version(pkg):
        try:
            return importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            return None
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": version("torch"),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cores": default_threads(),
        **extra,
    }


def matmul_peak_gflops(threads, dtype=np.float32, n=1024, repeats=7) -> float:
    """Best GFLOP/s of an n x n matrix multiply in NumPy: the machine's practical ceiling for this math."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype)
    out = np.empty_like(a)
    best = math.inf
    with threadpool_limits(threads):
        for _ in range(repeats):
            t = time.perf_counter()
            np.matmul(a, a, out=out)
            best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def train_flops_per_sample(hidden, n_in=784, n_out=10) -> int:
    """Multiply-adds x 2 of one training step per sample: forward x @ W, backward dW for every layer and
    dx for all but the first (nothing needs the input's gradient). Elementwise work is left out."""
    sizes = [n_in, *hidden, n_out]
    macs = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    return 2 * (sum(macs) + sum(macs) + sum(macs[1:]))
