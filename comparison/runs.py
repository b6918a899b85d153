"""Training runs in child processes: one spawned worker per implementation and device, reused for its runs,
so that a run's peak memory is its own and numpy_nn's process never imports torch."""
from __future__ import annotations

import importlib
import math
import resource
import statistics
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from common import cli, flags, loop

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


def model_argv(args, **override) -> list[str]:
    """The flags a child run gets: the shared model/training flags of this invocation, with overrides."""
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
                                       ("--batch-norm", args.batch_norm)) if on]
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


class Workers:
    """One spawned process per key (implementation and device), reused for all of its runs: torch is
    imported once, not per run, and never into numpy_nn's process."""

    def __init__(self):
        self.pools = {}

    def run(self, key, fn, *args):
        if key not in self.pools:
            self.pools[key] = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
        return self.pools[key].submit(fn, *args).result()

    def close(self):
        for pool in self.pools.values():
            pool.shutdown()
