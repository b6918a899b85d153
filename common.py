"""What both trainers share, so that each train.py keeps only the lines that really differ (forward,
backward, step): the flags, the epoch loop, history.json, atomic writes and the CLI's error handling.

A trainer is a small class (numpy_nn/train.py, pytorch_nn/train.py) with:
    name, suffix              "numpy" / "pytorch", ".npz" / ".pt"
    Trainer(args)             builds model, optimizer and schedule from the flags
    place(x, y)               the training arrays where the trainer computes (NumPy, torch, CuPy), once
    train_step(x, y)          one update on a placed batch; returns (mean loss, n correct) as numbers on
                              the CPU, or as device scalars on a GPU, which host(list) reads in one go
    predict(x)                logits as a NumPy array, in evaluation mode, without gradients
    lr, end_epoch()           the current learning rate; advance the schedule by one epoch
    save(path), load(path)    weights; load raises RunError with a one-line reason
    describe()                extra environment facts (threads, device)
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

import data_loader
from data_loader import DataError
from numpy_nn.losses import softmax_cross_entropy

# Named configurations (issue 7): flags given on the command line still win over a preset's values.
PRESETS = {
    # The seed network (784-128-64-10) and the recipe that takes it past 98.3 % in 20 epochs:
    # Adam alone overfits (train loss ~1e-4, 98.2 %); decoupled decay and light dropout give 98.35 +- 0.06 % (numpy_nn, 3 seeds).
    "default": dict(hidden=(128, 64), optimizer="adamw", lr=1e-3, weight_decay=0.1, dropout=0.1,
                    schedule="cosine", epochs=20, batch_size=64),
    # Fastest to 98.0 % test accuracy found for the seed network on 2 cores: big batches, a high Adam
    # learning rate, few epochs (98.05 % numpy_nn, 98.08 % pytorch_nn, 3 seeds; 3.3 s / 6.6 s of training).
    "fast": dict(hidden=(128, 64), optimizer="adam", lr=3e-3, schedule="cosine", epochs=8, batch_size=256,
                 dropout=0.0),
    # Best accuracy from a plain MLP (no convolutions, no augmentation): wide, dropout on the input and the
    # hidden layers (Hinton et al. 2012), AdamW, cosine, trained on all 60,000 images once the recipe was
    # fixed on a held-out 5,000 (98.82 % there for seed 1). Minutes per run on a CPU.
    "best": dict(hidden=(1024, 1024), input_dropout=0.2, dropout=0.4, optimizer="adamw", weight_decay=0.05,
                 lr=1e-3, schedule="cosine", epochs=40, batch_size=128, val_size=0),
}


class RunError(Exception):
    """An expected failure of a run (a checkpoint that does not fit, a missing device), said in one line."""


class Diverged(Exception):
    """The training loss stopped being finite."""


# --- flags -------------------------------------------------------------------------------------------------

def _number(kind, low=None, high=None, low_open=False, high_open=False):
    """An argparse type: kind(text) within [low, high] (or open ends), with an argparse-style message."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}")
        bad_low = low is not None and (value <= low if low_open else value < low)
        bad_high = high is not None and (value >= high if high_open else value > high)
        if bad_low or bad_high or not math.isfinite(value):
            lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
            hi = "" if high is None else f"{'<' if high_open else '<='} {high}"
            raise argparse.ArgumentTypeError(f"{text} is out of range; must be {' and '.join(filter(None, [lo, hi]))}")
        return value
    parse.__name__ = kind.__name__
    return parse


def _hidden(text):
    """'128,64' -> (128, 64); '' -> () (softmax regression)."""
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated layer sizes, e.g. 128,64")
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"{text!r}: layer sizes must be positive")
    return sizes


def make_parser(description: str, train_script: bool = True) -> argparse.ArgumentParser:
    """The flags both train.py scripts take (names as in pytorch/examples' mnist where it has one).
    train_script=False leaves out what only a single run has (--seed, --out, --save-model, --evaluate)."""
    p = argparse.ArgumentParser(description=description)
    d = PRESETS["default"]
    pos_int, pos_float = _number(int, 1), _number(float, 0, low_open=True)
    p.add_argument("--preset", choices=sorted(PRESETS), help="a named configuration; explicit flags override it")
    p.add_argument("--epochs", type=_number(int, 0), default=d["epochs"], help="epochs to train (default: %(default)s)")
    p.add_argument("--batch-size", type=pos_int, default=d["batch_size"], help="training batch size (default: %(default)s)")
    p.add_argument("--test-batch-size", type=pos_int, default=1000, help="evaluation batch size (default: %(default)s)")
    p.add_argument("--lr", type=pos_float, default=d["lr"], help="learning rate (default: %(default)s)")
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], default=d["optimizer"], help="(default: %(default)s)")
    p.add_argument("--momentum", type=_number(float, 0, 1, high_open=True), default=0.0,
                   help="SGD momentum (default: %(default)s)")
    p.add_argument("--nesterov", action="store_true", help="Nesterov momentum (SGD with --momentum > 0)")
    p.add_argument("--weight-decay", type=_number(float, 0), default=None,
                   help=f"L2 penalty for sgd/adam, decoupled decay for adamw (default: {d['weight_decay']} for adamw, "
                        f"else 0)")
    p.add_argument("--schedule", choices=["constant", "step", "cosine"], default=d["schedule"],
                   help="learning-rate schedule, stepped per epoch (default: %(default)s)")
    p.add_argument("--step-size", type=pos_int, default=1, help="epochs between decays for --schedule step (default: %(default)s)")
    p.add_argument("--gamma", type=_number(float, 0, 1, low_open=True), default=0.7,
                   help="decay factor for --schedule step (default: %(default)s)")
    p.add_argument("--hidden", type=_hidden, default=d["hidden"], help="hidden layer sizes (default: 128,64)")
    p.add_argument("--activation", choices=["relu", "tanh", "sigmoid"], default="relu", help="(default: %(default)s)")
    p.add_argument("--dropout", type=_number(float, 0, 1, high_open=True), default=d["dropout"],
                   help="dropout probability after each hidden layer (default: %(default)s)")
    p.add_argument("--input-dropout", type=_number(float, 0, 1, high_open=True), default=0.0,
                   help="dropout probability on the input pixels (default: %(default)s)")
    p.add_argument("--init", choices=["he", "xavier", "torch"], default="he", help="weight init (default: %(default)s)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="(default: %(default)s)")
    p.add_argument("--val-size", type=_number(int, 0, 59999), default=data_loader.VAL_SIZE,
                   help="training images held out for validation (default: %(default)s)")
    p.add_argument("--limit-train", type=pos_int, help="train on this many images only (default: all)")
    p.add_argument("--data-dir", help="folder with the MNIST IDX files (default: $MNIST_DIR, else ./data)")
    p.add_argument("--threads", type=pos_int, default=default_threads(),
                   help="CPU threads for the math (default: all cores, %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar (the per-epoch lines remain)")
    if train_script:
        p.add_argument("--seed", type=_number(int, 0), default=1, help="random seed (default: %(default)s)")
        p.add_argument("--out", type=Path, help="output folder for history.json and the model (default: runs/<impl>)")
        p.add_argument("--save-model", action="store_true", help="write the trained weights into --out")
        p.add_argument("--evaluate", type=Path, metavar="CHECKPOINT",
                       help="evaluate saved weights on the test set instead of training (model flags must match)")
    return p


def parse_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse, letting a --preset supply defaults that explicit flags override; check flag combinations."""
    args = parser.parse_args(argv)
    if args.preset:
        parser.set_defaults(**PRESETS[args.preset])
        args = parser.parse_args(argv)
    if args.nesterov and (args.optimizer != "sgd" or args.momentum == 0):
        parser.error("--nesterov needs --optimizer sgd and --momentum > 0")
    if args.weight_decay is None:
        args.weight_decay = PRESETS["default"]["weight_decay"] if args.optimizer == "adamw" else 0.0
    if args.momentum and args.optimizer != "sgd":
        parser.error(f"--momentum applies to --optimizer sgd, not {args.optimizer}")
    return args


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# --- the loop ----------------------------------------------------------------------------------------------

def predict_all(trainer, x, batch_size) -> np.ndarray:
    """Logits for all of x, predicted in batches of batch_size."""
    return np.concatenate([trainer.predict(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def evaluate(trainer, x, y, batch_size) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of the trainer's predictions, in batches of batch_size."""
    if len(x) == 0:
        return math.nan, math.nan
    logits = predict_all(trainer, x, batch_size)
    loss, _ = softmax_cross_entropy(logits, y)  # both twins' predictions scored by one function
    return float(loss), float((logits.argmax(axis=1) == y).mean())


def train_epoch(trainer, x, y, args, epoch) -> dict:
    """One pass over (x, y), as placed by trainer.place, in the (seed, epoch) order; times the updates only.

    A step's loss comes back as a float (CPU: checked at once, training stops at the first non-finite one)
    or as a device array (GPU: reading it would stall the pipeline, so the epoch's losses are read together
    at its end, which also waits for the device before the clock stops).
    """
    n, loss_sum, correct, deferred = len(x), 0.0, 0, []
    progress = tqdm(total=n, desc=f"epoch {epoch + 1}/{args.epochs}", unit="img", unit_scale=True,
                    leave=False, disable=args.quiet, mininterval=0.5)
    start = time.perf_counter()
    # numpy's overflow warnings would only precede the one-line divergence error raised below
    with progress, np.errstate(over="ignore", invalid="ignore"):
        for step, (xb, yb) in enumerate(data_loader.batches(x, y, args.batch_size, args.seed, epoch)):
            loss, n_correct = trainer.train_step(xb, yb)
            if isinstance(loss, float):
                if not math.isfinite(loss):
                    raise _diverged(trainer, epoch, step, loss)
                loss_sum += loss * len(yb)
            else:
                deferred.append((loss, len(yb)))
            correct += n_correct
            progress.update(len(yb))
        if deferred:
            losses = trainer.host([loss for loss, _ in deferred])
            bad = np.flatnonzero(~np.isfinite(losses))
            if bad.size:
                raise _diverged(trainer, epoch, int(bad[0]), losses[bad[0]])
            loss_sum = sum(float(loss) * size for loss, (_, size) in zip(losses, deferred))
    seconds = time.perf_counter() - start
    return {"train_loss": loss_sum / n, "train_acc": int(correct) / n, "epoch_seconds": seconds}


def _diverged(trainer, epoch, step, loss) -> Diverged:
    return Diverged(f"training loss is {float(loss)} at epoch {epoch + 1}, step {step + 1} (lr {trainer.lr:g}); "
                    f"try a smaller --lr, e.g. {trainer.lr / 10:g}")


def fit(trainer, data, args, log=print, test_each_epoch=False) -> dict:
    """Train for args.epochs; returns the history record (config, environment, epochs, test figures).
    test_each_epoch adds test_loss/test_acc to every epoch's record (compare.py's time-to-accuracy)."""
    epochs = []
    x, y = trainer.place(data.x_train, data.y_train)  # once: on a GPU the whole training set moves there
    for epoch in range(args.epochs):
        lr = trainer.lr
        record = {"epoch": epoch + 1, **train_epoch(trainer, x, y, args, epoch)}
        record["val_loss"], record["val_acc"] = evaluate(trainer, data.x_val, data.y_val, args.test_batch_size)
        if test_each_epoch:
            record["test_loss"], record["test_acc"] = evaluate(trainer, data.x_test, data.y_test, args.test_batch_size)
        record["lr"] = lr
        epochs.append(record)
        trainer.end_epoch()
        log(format_epoch(record))
    test_loss, test_acc = evaluate(trainer, data.x_test, data.y_test, args.test_batch_size)
    return {
        "implementation": trainer.name,
        "config": config_of(args),
        "environment": environment(**trainer.describe()),
        "epochs": epochs,
        "test_loss": test_loss,
        "test_acc": test_acc,
        "train_seconds": sum(r["epoch_seconds"] for r in epochs),
    }


def format_epoch(r: dict) -> str:
    val = "" if math.isnan(r["val_loss"]) else \
        f"  val loss {r['val_loss']:.4f} acc {r['val_acc']:7.2%}"
    return (f"epoch {r['epoch']:3d}  train loss {r['train_loss']:.4f} acc {r['train_acc']:7.2%}{val}"
            f"  {r['epoch_seconds']:6.2f} s  lr {r['lr']:.3g}")


def config_of(args) -> dict:
    return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
            for k, v in vars(args).items()}


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


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


# --- arithmetic --------------------------------------------------------------------------------------------

def train_flops_per_sample(hidden, n_in=784, n_out=10) -> int:
    """Multiply-adds x 2 of one training step per sample: forward x @ W, backward dW for every layer and
    dx for all but the first (nothing needs the input's gradient). Elementwise work is left out."""
    sizes = [n_in, *hidden, n_out]
    macs = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    return 2 * (sum(macs) + sum(macs) + sum(macs[1:]))


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


# --- files -------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside `path`; on success rename it into place, on failure remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, obj) -> None:
    """NaN (no validation split) is written as null: JSON has no NaN."""
    def strict(o):
        if isinstance(o, dict):
            return {k: strict(v) for k, v in o.items()}
        if isinstance(o, list):
            return [strict(v) for v in o]
        return None if isinstance(o, float) and math.isnan(o) else o
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(strict(obj), indent=2, allow_nan=False) + "\n")


# --- the CLI -----------------------------------------------------------------------------------------------

def main(trainer_cls, argv=None, description="", add_flags=None) -> int:
    """Parse flags, load data, train (or --evaluate), write --out; every expected failure is one line."""
    parser = make_parser(description)
    if add_flags:
        add_flags(parser)
    args = parse_args(parser, argv)
    args.out = args.out or Path("runs") / trainer_cls.name
    threadpool_limits(args.threads)
    try:
        data = data_loader.load_mnist(args.data_dir, dtype=np.dtype(args.dtype), val_size=args.val_size,
                                      limit_train=args.limit_train)
        trainer = trainer_cls(args)
        if args.evaluate:
            trainer.load(args.evaluate)
            loss, acc = evaluate(trainer, data.x_test, data.y_test, args.test_batch_size)
            print(f"{args.evaluate}: test loss {loss:.4f}, accuracy {acc:.2%} ({len(data.y_test)} images)")
            return 0
        history = fit(trainer, data, args)
        write_json(args.out / "history.json", history)
        if args.save_model:
            trainer.save(args.out / f"model{trainer.suffix}")
    except (DataError, RunError, Diverged) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"test loss {history['test_loss']:.4f}, accuracy {history['test_acc']:.2%}; "
          f"trained {history['train_seconds']:.1f} s; wrote {args.out}")
    return 0
