"""Training runs in child processes: one spawned worker per implementation and device, reused for its runs, so
that numpy_nn's process never imports torch and torch is imported once; each run's peak memory is measured
on its own (the kernel's high-water mark is reset before it starts)."""
from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import math
import resource
import signal
import statistics
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file
from tqdm import tqdm

import data_loader
from common import cli, flags, loop, machine, records
from common.files import atomic_path, write_json

IMPLS = {"numpy": "numpy_nn.train", "pytorch": "pytorch_nn.train"}
OWN_FLAGS = {"numpy": flags.numpy_flags, "pytorch": flags.pytorch_flags}  # each twin's switches, declared once


def trainer_module(impl: str):
    return importlib.import_module(IMPLS[impl])


def run_parser(impl: str | None):
    """The parser of a child run: the shared flags and that twin's own; impl None (the proof, which builds
    both twins from one set of flags): both twins' switches."""
    parser = flags.make_parser(impl or "proof")
    for name in [impl] if impl else OWN_FLAGS:
        OWN_FLAGS[name](parser)
    return parser


def parse_run_args(impl: str | None, device: str, argv: list[str]):
    """The flags of one child run, parsed as its implementation's train.py would."""
    return flags.parse_args(run_parser(impl), [*argv, "--quiet"] + (["--device", device] if impl != "numpy" else []))


def reset_peak_memory() -> None:
    """Restart the kernel's count of this process's peak resident memory (Linux: /proc/self/clear_refs), after
    handing back the heap an earlier run left free."""
    import gc
    gc.collect()
    machine.release_freed_memory()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # elsewhere peak_memory_mb() falls back to the process's lifetime peak


def peak_memory_mb() -> float:
    """The peak resident memory since reset_peak_memory(): VmHWM, else the process's lifetime peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def setup(impl: str, device: str, argv: list[str]):
    """(args, data, trainer) for one child run of this implementation with these flags."""
    args = parse_run_args(impl, device, argv)
    cli.threadpool_limits(args.threads)
    return args, cli.load_data(args), trainer_module(impl).Trainer(args)


def train_job(impl: str, device: str, argv: list[str], keep: bool) -> dict:
    """Train one twin with these flags; return its history and peak memory, and with keep=True its test
    predictions and final weights (the seed-1 run: figures and weight interchange)."""
    reset_peak_memory()
    args, data, trainer = setup(impl, device, argv)
    history = loop.fit(trainer, data, args, log=lambda line: None, test_each_epoch=True)
    trainer.close()
    if keep:
        history["test_pred"] = loop.predict_all(trainer, data.x_test, args.test_batch_size).argmax(axis=1)
        history["weights"] = trainer.weights()
    history["peak_rss_mb"] = peak_memory_mb()
    history["device"] = device
    return history


def time_epoch_job(impl: str, device: str, argv: list[str], repeats: int) -> float:
    """Median seconds of `repeats` training epochs after one warm-up epoch (the scaling study). The run is made
    that many epochs long, so that a schedule stepped per batch covers every step it times."""
    args, data, trainer = setup(impl, device, [*argv, "--epochs", str(repeats + 1)])
    x, y = trainer.place(data.x_train, data.y_train)
    loop.train_epoch(trainer, x, y, args, 0)
    seconds = [loop.train_epoch(trainer, x, y, args, e)["epoch_seconds"] for e in range(1, repeats + 1)]
    trainer.close()
    return statistics.median(seconds)


def model_argv(args, impl=None, **override) -> list[str]:
    """The flags a child run gets: every flag its train.py takes (derived from its parser, so a new flag
    reaches the runs by itself) with this invocation's value, overrides (None: leave the flag out) on top."""
    values = {**vars(args), **override}
    # presets are resolved already; --device comes per row; where a run writes is the worker's business
    skip = {"help", "preset", "device", *records.ENVIRONMENT} - {"threads", "processes", "data_dir"}
    argv = []
    for action in run_parser(impl)._actions:
        value, flag = values.get(action.dest), action.option_strings[-1] if action.option_strings else None
        if action.dest in skip or flag is None or value is None or value == action.default:
            continue  # (a default is the child's default too: left out, it cannot contradict another flag)
        if action.dest in flags.ONLY_FOR and values["model"] not in flags.ONLY_FOR[action.dest]:
            continue  # a flag of the other model (its value is a placeholder)
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            argv += [flag]
        else:
            argv += [flag, flags.show(value)]
    return argv


def devices(args) -> list[tuple[str, str]]:
    """(implementation, device) rows: numpy on the CPU, pytorch on the CPU and, when present, CUDA."""
    rows = [] if args.only == "pytorch" else [("numpy", "cpu")]
    if args.only != "numpy":
        import torch
        cuda = torch.cuda.is_available()
        if args.device in ("auto", "cpu"):
            rows.append(("pytorch", "cpu"))
        if args.device == "cuda" or (args.device == "auto" and cuda):
            rows.append(("pytorch", "cuda"))
    return rows


def train_size(args) -> int:
    """Images per training epoch: MNIST's 60,000 less the validation split, or the --limit-train subset."""
    return min(args.limit_train or math.inf, data_loader.TRAIN_IMAGES - args.val_size)


ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["data_loader.py", "mnist_files.py", "common/*.py", "numpy_nn/*.py", "pytorch_nn/*.py", "comparison/runs.py"]


def code_version() -> str:
    """A hash of every source file a run's result depends on: a stored run from other code is not reused."""
    digest = hashlib.sha256()
    for pattern in SOURCES:
        for path in sorted(ROOT.glob(pattern)):
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


class Store:
    """Finished runs under --out/runs/, a folder each, named by what decides their result: the job, the
    implementation, the device, the flags and the code's version. The same command run again finds them;
    a crash or Ctrl-C loses at most the run in progress."""
    JOBS = ("train_job", "time_epoch_job")

    def __init__(self, folder: Path, fresh=False):
        self.folder, self.fresh, self.version, self.reused = folder, fresh, code_version(), 0

    def path(self, fn, args) -> Path:
        key = json.dumps([fn.__name__, *args, self.version])
        return self.folder / f"{fn.__name__}-{args[0]}-{args[1]}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"

    def get(self, fn, args):
        """The stored result of this job, or None."""
        folder = self.path(fn, args)
        if self.fresh or not (folder / "result.json").is_file():
            return None
        try:
            result = json.loads((folder / "result.json").read_text(), object_hook=_nan)["result"]
            if (folder / "arrays.safetensors").is_file():
                arrays = load_file(str(folder / "arrays.safetensors"))
                result["test_pred"] = arrays.pop("test_pred")
                result["weights"] = {k.split(".", 1)[1]: v for k, v in arrays.items()}
        except Exception as e:  # truncated JSON, a damaged arrays file, a missing key: a run to do again
            print(f"\n{folder}: damaged ({type(e).__name__}: {' '.join(str(e).split())[:80]}); training that run "
                  f"again", file=sys.stderr)
            return None
        self.reused += 1
        return result

    def put(self, fn, args, result):
        folder = self.path(fn, args)
        record = result
        if isinstance(result, dict) and "weights" in result:  # arrays first: result.json marks the run complete
            record = {k: v for k, v in result.items() if k not in ("test_pred", "weights")}
            arrays = {"test_pred": result["test_pred"], **{f"weights.{k}": v for k, v in result["weights"].items()}}
            with atomic_path(folder / "arrays.safetensors") as tmp:
                save_file({k: np.asarray(v, order="C") for k, v in arrays.items()}, str(tmp))
        write_json(folder / "result.json", {"job": fn.__name__, "argv": list(args[2]), "result": record})


def _nan(d: dict) -> dict:
    """JSON's null back to NaN for the figures (no validation split writes NaN as null)."""
    return {k: math.nan if v is None and k.endswith(("_loss", "_acc")) else v for k, v in d.items()}


def start_worker():
    """In a worker: Ctrl-C is the parent's to handle (it ends the workers itself), so no traceback here; the
    same allocator setting as a train.py process; and tqdm's lock a thread lock, not its default
    multiprocessing one, whose semaphore a worker stopped by Ctrl-C leaves behind for multiprocessing to warn
    about as the parent exits."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    machine.keep_freed_memory()
    tqdm.set_lock(threading.RLock())


class Workers:
    """One spawned process per key (implementation and device), reused for all of its runs: torch is
    imported once, not per run, and never into numpy_nn's process. With a store, finished runs are
    saved at once and found again instead of run again."""

    def __init__(self, store: Store | None = None, on_reuse=lambda: None):
        self.pools, self.store, self.on_reuse = {}, store, on_reuse

    def run(self, key, fn, *args):
        stored = self.store is not None and fn.__name__ in Store.JOBS
        if stored and (hit := self.store.get(fn, args)) is not None:
            self.on_reuse()
            return hit
        if key not in self.pools:
            self.pools[key] = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"), initializer=start_worker)
        result = self.pools[key].submit(fn, *args).result()
        if stored:
            self.store.put(fn, args, result)
        return result

    def close(self, terminate=False):
        """Shut the workers down; terminate=True stops a run in progress (after Ctrl-C)."""
        for pool in self.pools.values():
            if terminate:
                for process in list(pool._processes.values()):  # no public way to stop a running task
                    process.terminate()
            pool.shutdown(wait=not terminate, cancel_futures=True)
