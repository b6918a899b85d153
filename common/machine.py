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


def available_memory() -> int | None:
    """Bytes of memory free for a new allocation (MemAvailable), or None where /proc/meminfo is not."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


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

