"""Training runs in child processes: one spawned worker per implementation and device, reused for its runs,
so that a run's peak memory is its own and numpy_nn's process never imports torch."""
from __future__ import annotations

import hashlib
import importlib
import json
import math
import resource
import signal
import statistics
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from common import cli, flags, loop, machine
from common.files import atomic_path, write_json

IMPLS = {"numpy": "numpy_nn.train", "pytorch": "pytorch_nn.train"}


def trainer_module(impl: str):
    return importlib.import_module(IMPLS[impl])


def parse_run_args(impl: str, device: str, argv: list[str]):
    """The flags of one child run, parsed by that implementation's own parser."""
    module = trainer_module(impl)
    parser = flags.make_parser(impl)
    module.add_flags(parser)
    return flags.parse_args(parser, [*argv, "--quiet"] + (["--device", device] if impl == "pytorch" else []))


def setup(impl: str, device: str, argv: list[str]):
    """(args, data, trainer) for one child run of this implementation with these flags."""
    args = parse_run_args(impl, device, argv)
    cli.threadpool_limits(args.threads)
    return args, cli.load_data(args), trainer_module(impl).Trainer(args)


def train_job(impl: str, device: str, argv: list[str], keep: bool) -> dict:
    """Train one twin with these flags; return its history and peak memory, and with keep=True its test
    predictions and final weights (the seed-1 run: figures and weight interchange)."""
    args, data, trainer = setup(impl, device, argv)
    history = loop.fit(trainer, data, args, log=lambda line: None, test_each_epoch=True)
    if keep:
        history["test_pred"] = loop.predict_all(trainer, data.x_test, args.test_batch_size).argmax(axis=1)
        history["weights"] = trainer.weights()
    history["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    history["device"] = device
    return history


def time_epoch_job(impl: str, device: str, argv: list[str], repeats: int) -> float:
    """Median seconds of `repeats` training epochs after one warm-up epoch (the scaling study)."""
    args, data, trainer = setup(impl, device, argv)
    x, y = trainer.place(data.x_train, data.y_train)
    loop.train_epoch(trainer, x, y, args, 0)
    return statistics.median(loop.train_epoch(trainer, x, y, args, e)["epoch_seconds"] for e in range(1, repeats + 1))


def model_argv(args, impl=None, **override) -> list[str]:
    """The flags a child run gets: the shared model/training flags of this invocation, with overrides, and
    for pytorch_nn its own switches (--no-fused, --compile)."""
    values = {"epochs": args.epochs, "batch-size": args.batch_size, "test-batch-size": args.test_batch_size,
              "lr": args.lr, "optimizer": args.optimizer, "weight-decay": args.weight_decay,
              "schedule": args.schedule, "step-size": args.step_size, "gamma": args.gamma,
              "model": args.model, "channels": args.channels and ",".join(map(str, args.channels)),
              "kernel-size": args.kernel_size,
              "hidden": ",".join(map(str, args.hidden)), "activation": args.activation, "dropout": args.dropout,
              "input-dropout": args.input_dropout if args.model == "mlp" else None,
              "init": args.init, "dtype": args.dtype, "val-size": args.val_size, "threads": args.threads,
              "momentum": args.momentum if args.optimizer == "sgd" else None,
              "limit-train": args.limit_train, "data-dir": args.data_dir}
    values.update({k.replace("_", "-"): v for k, v in override.items()})
    argv = []
    for k, v in values.items():
        if v is not None:
            argv += [f"--{k}", str(v)]
    switches = [flag for flag, on in (("--nesterov", args.nesterov and values.get("optimizer") == "sgd"),
                                       ("--batch-norm", args.batch_norm),
                                       ("--no-fused", impl == "pytorch" and not args.fused),
                                       ("--compile", impl == "pytorch" and args.compile)) if on]
    return argv + switches


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
    return min(args.limit_train or math.inf, 60000 - args.val_size)


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
        result = json.loads((folder / "result.json").read_text(), object_hook=_nan)["result"]
        if (folder / "arrays.safetensors").is_file():
            arrays = load_file(str(folder / "arrays.safetensors"))
            result["test_pred"] = arrays.pop("test_pred")
            result["weights"] = {k.split(".", 1)[1]: v for k, v in arrays.items()}
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
    """In a worker: Ctrl-C is the parent's to handle (it ends the workers itself), so no traceback here; and
    the same allocator setting as a train.py process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    machine.keep_freed_memory()


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
