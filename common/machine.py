"""What the machine is and what it can do: cores, CPU, versions, and its practical matrix-multiply peak."""
from __future__ import annotations

import contextlib
import ctypes
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


def keep_freed_memory() -> None:
    """Keep freed memory in the process's heap instead of handing it back to the system (glibc's malloc).
    By default a large block (an activation, a gradient) is mmap-ed fresh each step and unmapped when freed,
    so every step page-faults new memory in and the kernel zeroes it: measured here, 94 faults per numpy_nn
    CNN step (30 with this) and 340 per pytorch_nn step (55), and numpy_nn's step 17 % faster. Applied
    alike to both twins; a no-op where the C library is not glibc."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: blocks below 1 GiB come from the heap
        libc.mallopt(-1, 2 << 30)  # M_TRIM_THRESHOLD: keep up to 2 GiB of free heap for the next step


def settle(limit_s=2.0) -> None:
    """Wait, at most limit_s, until this process's threads are idle, so that a variant's threads still spinning
    after its epoch are not billed to the next: OpenBLAS's workers spin for about 2^28 cycles after a call on
    several threads (measured: 0.10 s of a core after a 2-thread product), torch's for about a tenth of that."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        cpu = time.process_time()
        time.sleep(0.05)
        if time.process_time() - cpu < 0.005:
            return


def release_freed_memory() -> None:
    """Hand the free memory keep_freed_memory() kept back to the system (glibc's malloc_trim): between two runs
    in one worker, so that the next run's peak memory is its own, not the previous run's heap."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def idle_polling() -> str | None:
    """How long an idle core of this virtual machine polls for work before it halts ("halt polling 200 us"), or None
    where the guest has no haltpoll idle driver. Waking a halted virtual core takes the host tens of microseconds
    (one thread waking another, measured on a 2-core VM: 73 us round trip halting at once, 13 us polling 200 us, the
    Linux default), and numpy_nn's processes wake each other at every batch-norm meeting: a speed figure from a VM
    names it."""
    with contextlib.suppress(OSError, ValueError):
        cpuidle = Path("/sys/devices/system/cpu/cpuidle")
        if (cpuidle / "current_driver").read_text().strip() == "haltpoll":
            ns = int(Path("/sys/module/haltpoll/parameters/guest_halt_poll_ns").read_text())
            return f"halt polling {ns // 1000} us"
    return None


FORCING = ("OPENBLAS_CORETYPE", "MKL_ENABLE_INSTRUCTIONS", "MKL_DEBUG_CPU_TYPE")  # variables that pick BLAS's kernels


def blas() -> str:
    """NumPy's BLAS as a speed figure names it: the library, its version and the kernels it runs ("openblas 0.3.31,
    SkylakeX kernels"), and the environment variable that forces them when one is set ("..., Haswell kernels forced
    by OPENBLAS_CORETYPE=Haswell"). A forced kernel can be a generation older than the CPU's own: AVX2's on an
    AVX-512 CPU multiply at about half the speed (ANALYSIS.md), and torch's kernels ignore these variables."""
    from threadpoolctl import threadpool_info
    found = [i for i in threadpool_info() if i["user_api"] == "blas"]
    found = [i for i in found if "numpy" in i["filepath"]] or found
    if not found:
        return "no BLAS found"
    info = found[0]
    kernels = f", {info['architecture']} kernels" if info.get("architecture") else ""
    forced = [f"{v}={os.environ[v]}" for v in FORCING if os.environ.get(v)]
    return f"{info['internal_api']} {info['version']}{kernels}" + (f" forced by {', '.join(forced)}" if forced else "")


def forced_note() -> list[str]:
    """A benchmark's note, when an environment variable forces BLAS's kernels: [] when none does."""
    forced = [v for v in FORCING if os.environ.get(v)]
    if not forced:
        return []
    unset = " ".join(f"-u {v}" for v in (*forced, "OPENBLAS_L2_SIZE") if v in os.environ)
    return [f"note: {', '.join(f'{v}={os.environ[v]}' for v in forced)} forces NumPy's BLAS kernels, which may not be "
            f"this CPU's own (torch's ignore it); for the CPU's own: env {unset} python ..."]


def cpu_label() -> str:
    """What a speed figure is labelled with: the CPU's name, on a VM how long its idle cores poll, and NumPy's BLAS."""
    idle = idle_polling()
    return f"{cpu_name()}, {idle}; {blas()}" if idle else f"{cpu_name()}; {blas()}"


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
        "idle": idle_polling(),
        "blas": blas(),
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

