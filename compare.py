"""Train both twins with one config on the same data and report accuracy and time: `python compare.py --help`.

Writes into --out (default results/): comparison.md/.csv (one row per implementation), epochs.csv (every
epoch of every run), optimizers.csv, scaling.csv, sweep.csv/.md in sweep mode, and the figures:
  loss.png, accuracy.png, epoch_time.png, confusion.png, misclassified.png, samples.png, optimizers.png,
  scaling.png (and sweep.png).
Every training run is its own process, so that its peak memory is its own and numpy_nn's never holds torch.
"""
from __future__ import annotations

import argparse
import itertools
import math
import resource
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

import common
import data_loader

OPTIMIZERS = {  # the optimizer study: each at its customary learning rate
    "sgd": ["--optimizer", "sgd", "--lr", "0.1"],
    "momentum": ["--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.01"],
    "nesterov": ["--optimizer", "sgd", "--momentum", "0.9", "--nesterov", "--lr", "0.01"],
    "adam": ["--optimizer", "adam", "--lr", "1e-3"],
    "adamw": ["--optimizer", "adamw", "--lr", "1e-3"],
}
IMPLS = {"numpy": "numpy_nn.train", "pytorch": "pytorch_nn.train"}
TARGET_ACC = 0.98
SWEEP_FLAGS = ("lr", "hidden", "batch_size", "optimizer", "epochs")
OUTPUTS = ["comparison.md", "comparison.csv", "epochs.csv", "optimizers.csv", "scaling.csv", "sweep.csv",
           "sweep.md", "loss.png", "accuracy.png", "epoch_time.png", "confusion.png", "misclassified.png",
           "samples.png", "optimizers.png", "scaling.png", "sweep.png"]


# --- one training run, in its own process -----------------------------------------------------------------

def _setup(impl: str, device: str, argv: list[str]):
    """(args, data, trainer) for one child run of this implementation with these flags."""
    import importlib
    module = importlib.import_module(IMPLS[impl])
    parser = common.make_parser(impl)
    if hasattr(module, "add_flags"):
        module.add_flags(parser)
    args = common.parse_args(parser, [*argv, "--quiet"] + (["--device", device] if impl == "pytorch" else []))
    common.threadpool_limits(args.threads)
    data = data_loader.load_mnist(args.data_dir, dtype=np.dtype(args.dtype), val_size=args.val_size,
                                  limit_train=args.limit_train)
    return args, data, module.Trainer(args)


def train_job(impl: str, device: str, argv: list[str], predictions: bool) -> dict:
    """Train one twin with these flags; return its history, test predictions and peak memory."""
    args, data, trainer = _setup(impl, device, argv)
    history = common.fit(trainer, data, args, log=lambda line: None, test_each_epoch=True)
    if predictions:
        history["test_pred"] = common.predict_all(trainer, data.x_test, args.test_batch_size).argmax(axis=1)
    history["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    history["device"] = device
    return history


def time_epoch_job(impl: str, device: str, argv: list[str], repeats: int) -> float:
    """Median seconds of `repeats` training epochs after one warm-up epoch (the scaling study)."""
    args, data, trainer = _setup(impl, device, argv)
    x, y = trainer.place(data.x_train, data.y_train)
    common.train_epoch(trainer, x, y, args, 0)
    return statistics.median(common.train_epoch(trainer, x, y, args, e)["epoch_seconds"] for e in range(1, repeats + 1))


class Workers:
    """One spawned process per implementation and device, reused for all of its runs: its peak memory is
    that implementation's alone (numpy_nn's never imports torch), and torch is imported once, not per run."""

    def __init__(self):
        self.pools = {}

    def run(self, key, fn, *args):
        if key not in self.pools:
            self.pools[key] = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
        return self.pools[key].submit(fn, *args).result()

    def close(self):
        for pool in self.pools.values():
            pool.shutdown()


# --- the plan ------------------------------------------------------------------------------------------------

def make_parser() -> argparse.ArgumentParser:
    p = common.make_parser(__doc__.splitlines()[0], train_script=False)
    p.add_argument("--out", type=Path, default=Path("results"), help="output folder (default: %(default)s)")
    p.add_argument("--seeds", type=common._number(int, 1), default=3, help="seeds per implementation (default: %(default)s)")
    p.add_argument("--optimizers", default="sgd,momentum,adam",
                   help=f"optimizer study, from {','.join(OPTIMIZERS)}; '' to skip (default: %(default)s)")
    p.add_argument("--batch-sizes", default="16,32,64,128,256,512,1024",
                   help="scaling study batch sizes; '' to skip (default: %(default)s)")
    p.add_argument("--only", choices=list(IMPLS), help="run one implementation only")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="pytorch's device; auto adds CUDA rows when a GPU is present (default: %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 2,000 images, 2 epochs, 1 seed, short studies (what the tests use)")
    sweep = p.add_argument_group("sweep mode (any of these runs the grid instead of the comparison)")
    sweep.add_argument("--sweep-lr", type=common._number(float, 0, low_open=True), nargs="+")
    sweep.add_argument("--sweep-hidden", type=common._hidden, nargs="+", help="e.g. 128,64 256,128")
    sweep.add_argument("--sweep-batch-size", type=common._number(int, 1), nargs="+")
    sweep.add_argument("--sweep-optimizer", choices=["sgd", "adam", "adamw"], nargs="+")
    sweep.add_argument("--sweep-epochs", type=common._number(int, 1), nargs="+")
    return p


def parse(argv):
    parser = make_parser()
    args = common.parse_args(parser, argv)
    args.sweep = any(getattr(args, f"sweep_{k}") for k in SWEEP_FLAGS)
    if args.quick:
        args.seeds, args.epochs, args.limit_train = 1, min(args.epochs, 2), 2000
        args.val_size = 500 if args.val_size == data_loader.VAL_SIZE else args.val_size
        args.batch_sizes = "64,512" if args.batch_sizes == parser.get_default("batch_sizes") else args.batch_sizes
    try:
        args.optimizer_names = [o for o in args.optimizers.split(",") if o]
        unknown = set(args.optimizer_names) - set(OPTIMIZERS)
        if unknown:
            raise ValueError(f"--optimizers: unknown {', '.join(sorted(unknown))}; choose from {', '.join(OPTIMIZERS)}")
        args.batch_size_list = [int(b) for b in args.batch_sizes.split(",") if b]
        if any(b < 1 for b in args.batch_size_list):
            raise ValueError("--batch-sizes: sizes must be positive")
        if args.val_size == 0 and args.sweep:
            raise ValueError("--val-size 0: a sweep ranks configurations by validation accuracy; hold out images "
                             "(e.g. --val-size 5000)")
    except ValueError as e:
        parser.error(str(e).replace("invalid literal for int() with base 10", "--batch-sizes: not an integer"))
    return args


def model_argv(args, **override) -> list[str]:
    """The flags a child run gets: the shared model/training flags of this invocation, with overrides."""
    values = {"epochs": args.epochs, "batch-size": args.batch_size, "test-batch-size": args.test_batch_size,
              "lr": args.lr, "optimizer": args.optimizer, "weight-decay": args.weight_decay,
              "schedule": args.schedule, "step-size": args.step_size, "gamma": args.gamma,
              "hidden": ",".join(map(str, args.hidden)), "activation": args.activation, "dropout": args.dropout,
              "input-dropout": args.input_dropout,
              "init": args.init, "dtype": args.dtype, "val-size": args.val_size, "threads": args.threads,
              "momentum": args.momentum if args.optimizer == "sgd" else None,
              "limit-train": args.limit_train, "data-dir": args.data_dir}
    values.update({k.replace("_", "-"): v for k, v in override.items()})
    argv = []
    for k, v in values.items():
        if v is not None:
            argv += [f"--{k}", str(v)]
    return argv + (["--nesterov"] if args.nesterov and values.get("optimizer") == "sgd" else [])


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


# --- figures ---------------------------------------------------------------------------------------------------

COLORS = {"numpy": "tab:blue", "pytorch": "tab:orange"}


def _figure(ncols=1, width=6.4, height=4.2):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, axes[0]


def _save(fig, path):
    fig.tight_layout()
    with common.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    import matplotlib.pyplot as plt
    plt.close(fig)


def _label(impl, device):
    return f"{impl}_nn" + (f" ({device})" if device != "cpu" else "")


def _band(ax, df, column, label, color, style="-"):
    """Mean over seeds per epoch, with a min-max band."""
    g = df.groupby("epoch")[column]
    mean, lo, hi = g.mean(), g.min(), g.max()
    ax.plot(mean.index, mean.values, style, color=color, label=label)
    if len(df["seed"].unique()) > 1:
        ax.fill_between(mean.index, lo.values, hi.values, color=color, alpha=0.2)


def plot_curves(epochs, path, kind):
    """loss.png / accuracy.png: train and validation (and test accuracy) per epoch, both twins overlaid."""
    panels = [(split, style) for split, style in [("train", "-"), ("val", "--"), ("test", ":")]
              if f"{split}_{kind}" in epochs and epochs[f"{split}_{kind}"].notna().any()]
    fig, axes = _figure(len(panels), width=5.2)
    for ax, (split, style) in zip(axes, panels):
        for (impl, device), df in epochs.groupby(["implementation", "device"], sort=False):
            values = df.assign(v=df[f"{split}_{kind}"] * (100 if kind == "acc" else 1))
            _band(ax, values, "v", _label(impl, device), COLORS.get(impl, "gray") if device == "cpu" else "tab:green", style)
        ax.set_title(f"{split} {'accuracy' if kind == 'acc' else 'loss'}")
        ax.xaxis.set_major_locator(__import__("matplotlib.ticker", fromlist=["MaxNLocator"]).MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (%)" if kind == "acc" else "cross-entropy loss (nats)")
        if kind == "loss":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{'Accuracy' if kind == 'acc' else 'Loss'} per epoch: mean over seeds, band = min-max")
    _save(fig, path)


def plot_epoch_times(epochs, table, path):
    """epoch_time.png: the spread of epoch seconds and samples per second per implementation."""
    fig, (ax1, ax2) = _figure(2, width=5.2)
    groups = list(epochs.groupby(["implementation", "device"], sort=False))
    labels = [_label(*k) for k, _ in groups]
    ax1.boxplot([df["epoch_seconds"].values for _, df in groups], tick_labels=labels)
    ax1.set_ylabel("seconds per training epoch")
    ax1.set_title("Epoch time (all epochs, all seeds)")
    ax2.bar(labels, table["samples_per_s"], color=[COLORS.get(i, "gray") for i in table["implementation"]])
    ax2.set_ylabel("training samples per second (median epoch)")
    ax2.set_title("Throughput")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3, axis="y")
    _save(fig, path)


def plot_confusions(y, preds, path):
    """confusion.png: one confusion matrix per implementation (seed 1), side by side."""
    fig, axes = _figure(len(preds), width=5.0, height=4.6)
    for ax, (label, pred) in zip(axes, preds.items()):
        cm = np.zeros((10, 10), int)
        np.add.at(cm, (y, pred), 1)
        im = ax.imshow(cm, cmap="Blues", norm=__import__("matplotlib.colors", fromlist=["LogNorm"]).LogNorm(vmin=1))
        for i, j in zip(*np.nonzero(cm)):
            ax.text(j, i, cm[i, j], ha="center", va="center", fontsize=6,
                    color="white" if cm[i, j] > cm.max() / 10 else "black")
        ax.set_xticks(range(10))
        ax.set_yticks(range(10))
        ax.set_xlabel("predicted digit")
        ax.set_ylabel("true digit")
        ax.set_title(f"{label}: {np.mean(pred == y):.2%} correct")
        fig.colorbar(im, ax=ax, shrink=0.8, label="test images (log scale)")
    _save(fig, path)


def plot_misclassified(images, y, preds, path, n=12):
    """misclassified.png: each twin's first errors (true -> predicted), then the digits where they disagree."""
    import matplotlib.pyplot as plt
    rows = [(label, np.flatnonzero(pred != y)[:n]) for label, pred in preds.items()]
    if len(preds) >= 2:
        (la, pa), (lb, pb) = list(preds.items())[:2]
        rows.append((f"disagree: {la} / {lb}", np.flatnonzero(pa != pb)[:n]))
    fig, axes = plt.subplots(len(rows), n, figsize=(n * 0.9, len(rows) * 1.35), squeeze=False)
    for r, (label, idx) in enumerate(rows):
        for c in range(n):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(idx):
                i = idx[c]
                ax.imshow(images[i], cmap="gray_r")
                if label.startswith("disagree"):
                    ax.set_title(f"{y[i]}: {' / '.join(str(p[i]) for p in list(preds.values())[:2])}", fontsize=7)
                else:
                    ax.set_title(f"{y[i]} -> {preds[label][i]}", fontsize=7, color="tab:red")
        axes[r][0].text(-0.15, 0.5, label, transform=axes[r][0].transAxes, ha="right", va="center", fontsize=8)
    counts = ", ".join(f"{label}: {np.sum(pred != y)} errors" for label, pred in preds.items())
    if len(preds) >= 2:
        counts += f"; the twins disagree on {np.sum(pa != pb)} digits"
    fig.suptitle(f"Misclassified test digits (true -> predicted), seed 1. {counts}", fontsize=9)
    fig.subplots_adjust(left=0.2)
    with common.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_samples(batch, path, n=32):
    """samples.png: the first training batch as the loader delivers it (seed 1, epoch 0), un-normalized."""
    import matplotlib.pyplot as plt
    x, y = batch
    fig, axes = plt.subplots(4, n // 4, figsize=(n // 4 * 0.9, 4 * 1.1))
    for ax, img, label in zip(axes.flat, x[:n], y[:n]):
        ax.imshow((img.reshape(28, 28) * data_loader.STD + data_loader.MEAN), cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(str(label), fontsize=8)
        ax.axis("off")
    fig.suptitle("First training batch as both twins receive it (seed 1, epoch 1), label above each digit", fontsize=9)
    _save(fig, path)


def plot_optimizers(df, path):
    """optimizers.png: training loss and validation accuracy (test accuracy with --val-size 0) per optimizer."""
    acc, split = ("val_acc", "validation") if df["val_acc"].notna().any() else ("test_acc", "test")
    fig, (ax1, ax2) = _figure(2, width=5.6)
    colors = dict(zip(df["optimizer"].unique(), ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]))
    for (opt, impl, device), g in df.groupby(["optimizer", "implementation", "device"], sort=False):
        style = "-" if impl == "numpy" else "--"
        ax1.plot(g["epoch"], g["train_loss"], style, color=colors[opt], label=f"{opt}, {_label(impl, device)}")
        ax2.plot(g["epoch"], g[acc] * 100, style, color=colors[opt], label=f"{opt}, {_label(impl, device)}")
    ax1.set_yscale("log")
    ax1.set_ylabel("training loss (nats)")
    ax2.set_ylabel(f"{split} accuracy (%)")
    for ax, title in ((ax1, "Training loss"), (ax2, f"{split.capitalize()} accuracy")):
        ax.set_xlabel("epoch")
        ax.set_title(f"{title} by optimizer (solid numpy_nn, dashed pytorch_nn)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save(fig, path)


def plot_scaling(df, peak, path):
    """scaling.png: epoch time and achieved GFLOP/s against batch size, with the measured matmul peak."""
    fig, (ax1, ax2) = _figure(2, width=5.6)
    for (impl, device), g in df.groupby(["implementation", "device"], sort=False):
        color = COLORS.get(impl, "gray") if device == "cpu" else "tab:green"
        ax1.plot(g["batch_size"], g["epoch_s"], "o-", color=color, label=_label(impl, device))
        ax2.plot(g["batch_size"], g["gflops"], "o-", color=color, label=_label(impl, device))
    ax2.axhline(peak, color="gray", linestyle=":", label=f"NumPy matmul peak {peak:.0f} GFLOP/s")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size")
        ax.grid(alpha=0.3)
        ax.legend()
    ax1.set_yscale("log")
    ax1.set_ylabel("seconds per training epoch")
    ax1.set_title("Epoch time against batch size")
    ax2.set_ylabel("achieved GFLOP/s (matmul work only)")
    ax2.set_title("Arithmetic throughput against batch size")
    _save(fig, path)


def plot_sweep(df, path):
    """sweep.png: best validation accuracy of every grid point, both twins."""
    fig, (ax,) = _figure(1, width=max(6.4, 0.5 * len(df)))
    labels = [f"{r.optimizer} lr={r.lr:g} h={r.hidden} bs={r.batch_size} e={r.epochs}\n{r.implementation}"
              for r in df.itertuples()]
    ax.bar(range(len(df)), df["best_val_acc"] * 100, color=[COLORS.get(i, "gray") for i in df["implementation"]])
    ax.set_xticks(range(len(df)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylim(max(0, df["best_val_acc"].min() * 100 - 2), 100)
    ax.set_ylabel("best validation accuracy (%)")
    ax.set_title("Sweep: best validation accuracy per configuration")
    ax.grid(alpha=0.3, axis="y")
    _save(fig, path)


# --- the report ------------------------------------------------------------------------------------------------

def summarize(runs: list[dict]):
    """comparison table (one row per implementation/device) and the long per-epoch table."""
    import pandas as pd
    epochs = pd.DataFrame([{"implementation": r["implementation"], "device": r["device"], "seed": r["config"]["seed"],
                            **e} for r in runs for e in r["epochs"]])
    best_val = epochs.groupby(["implementation", "device"])["val_acc"].max()  # NaN without a validation split
    rows = []
    for (impl, device), group in itertools.groupby(runs, key=lambda r: (r["implementation"], r["device"])):
        group = list(group)
        accs = [r["test_acc"] for r in group]
        sec = [e["epoch_seconds"] for r in group for e in r["epochs"]]
        n_train = group[0]["n_train"]
        reach = [next((sum(e["epoch_seconds"] for e in r["epochs"][:i + 1]) for i, e in enumerate(r["epochs"])
                       if e["test_acc"] >= TARGET_ACC), math.nan) for r in group]
        reached = [t for t in reach if not math.isnan(t)]
        rows.append({
            "implementation": impl, "device": device, "runs": len(group),
            "test_acc_mean": statistics.mean(accs), "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "test_loss_mean": statistics.mean(r["test_loss"] for r in group),
            "best_val_acc": best_val[impl, device],
            "median_epoch_s": statistics.median(sec), "samples_per_s": n_train / statistics.median(sec),
            "train_s_mean": statistics.mean(r["train_seconds"] for r in group),
            f"time_to_{TARGET_ACC:.0%}_s": statistics.mean(reached) if reached else math.nan,
            "runs_reaching_target": len(reached),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in group),
        })
    table = pd.DataFrame(rows)
    base = table["median_epoch_s"].iloc[0]
    table["epoch_time_vs_first"] = table["median_epoch_s"] / base
    return table, epochs


def _fmt(column: str, v) -> str:
    """Accuracies as percentages, big counts with separators, the rest to 3-4 significant digits."""
    if not isinstance(v, float):
        return str(v)
    if math.isnan(v):
        return "-"
    if "acc" in column:
        return f"{100 * v:.2f} %"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.1f}" if abs(v) >= 100 else f"{v:.3g}"


def markdown_table(df) -> str:
    """A pipe table from a DataFrame (pandas' to_markdown would need the tabulate package)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(c, v) for c, v in zip(cols, row)) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def write_csv(df, path):
    with common.atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def train_size(args) -> int:
    """Images per training epoch: MNIST's 60,000 less the validation split, or the --limit-train subset."""
    return min(args.limit_train or math.inf, 60000 - args.val_size)


def run_comparison(args, tmp: Path, progress, workers) -> list[str]:
    """The main comparison, the optimizer study and the scaling study; returns the report's sections."""
    import pandas as pd

    rows = devices(args)
    runs = []
    for impl, device in rows:
        for seed in range(1, args.seeds + 1):
            progress.set_postfix_str(f"{impl} {device} seed {seed}")
            h = workers.run((impl, device), train_job, impl, device, model_argv(args, seed=seed), seed == 1)
            h["n_train"] = train_size(args)
            runs.append(h)
            progress.update()
    table, epochs = summarize(runs)
    write_csv(table, tmp / "comparison.csv")
    write_csv(epochs, tmp / "epochs.csv")
    data = data_loader.load_mnist(args.data_dir, val_size=args.val_size, limit_train=args.limit_train)
    preds = {f"{r['implementation']} ({r['device']})": r["test_pred"] for r in runs if "test_pred" in r}
    plot_curves(epochs, tmp / "loss.png", "loss")
    plot_curves(epochs, tmp / "accuracy.png", "acc")
    plot_epoch_times(epochs, table, tmp / "epoch_time.png")
    plot_confusions(data.y_test, preds, tmp / "confusion.png")
    plot_misclassified(data.raw.test_images, data.y_test, preds, tmp / "misclassified.png")
    first = next(data_loader.batches(data.x_train, data.y_train, 64, 1, 0))
    plot_samples(first, tmp / "samples.png")

    sections = [f"## Comparison ({args.seeds} seed{'s' * (args.seeds > 1)}, {args.epochs} epochs)\n",
                markdown_table(table), "",
                "![loss](loss.png)\n\n![accuracy](accuracy.png)\n\n![epoch time](epoch_time.png)\n\n"
                "![confusion](confusion.png)\n\n![misclassified](misclassified.png)\n\n![samples](samples.png)\n"]
    if not any(d == "cuda" for _, d in rows):
        sections.append("No GPU: torch finds no CUDA device on this machine, so every row is on the CPU.\n")

    if args.optimizer_names:
        opt_runs = []
        for name in args.optimizer_names:
            for impl, device in rows:
                progress.set_postfix_str(f"optimizer {name}: {impl} {device}")
                argv = model_argv(args, seed=1, optimizer=None, lr=None, momentum=None, weight_decay=None)
                h = workers.run((impl, device), train_job, impl, device, argv + OPTIMIZERS[name], False)
                opt_runs.append({"optimizer": name, "implementation": impl, "device": device, "history": h})
                progress.update()
        opt_epochs = pd.DataFrame([{"optimizer": r["optimizer"], "implementation": r["implementation"],
                                    "device": r["device"], **e} for r in opt_runs for e in r["history"]["epochs"]])
        write_csv(opt_epochs, tmp / "optimizers.csv")
        plot_optimizers(opt_epochs, tmp / "optimizers.png")
        final = opt_epochs.sort_values("epoch").groupby(["optimizer", "implementation", "device"], sort=False).last()
        final = final.reset_index()[["optimizer", "implementation", "device", "train_loss", "val_acc", "test_acc"]]
        sections += ["## Optimizers (seed 1; flags: " + "; ".join(f"{n}: {' '.join(OPTIMIZERS[n])}"
                                                                  for n in args.optimizer_names) + ")\n",
                     markdown_table(final), "", "![optimizers](optimizers.png)\n"]

    if args.batch_size_list:
        peak = common.matmul_peak_gflops(args.threads)
        flops = common.train_flops_per_sample(args.hidden)
        n = train_size(args)
        scale = []
        for bs in args.batch_size_list:
            for impl, device in rows:
                progress.set_postfix_str(f"batch {bs}: {impl} {device}")
                s = workers.run((impl, device), time_epoch_job, impl, device, model_argv(args, batch_size=bs, seed=1),
                                1 if args.quick else 3)
                scale.append({"implementation": impl, "device": device, "batch_size": bs, "epoch_s": s,
                              "samples_per_s": n / s, "gflops": flops * n / s / 1e9, "matmul_peak_gflops": peak})
                progress.update()
        scale = pd.DataFrame(scale)
        write_csv(scale, tmp / "scaling.csv")
        plot_scaling(scale, peak, tmp / "scaling.png")
        sections += [f"## Scaling (median of {1 if args.quick else 3} epochs of {n} images after one warm-up; "
                     f"matmul peak {peak:.0f} GFLOP/s)\n",
                     markdown_table(scale.drop(columns="matmul_peak_gflops")), "", "![scaling](scaling.png)\n"]
    return sections


def run_sweep(args, tmp: Path, progress, workers) -> list[str]:
    import pandas as pd
    grid = {k: getattr(args, f"sweep_{k}") or [getattr(args, k)] for k in SWEEP_FLAGS}
    results = []
    for values in itertools.product(*grid.values()):
        point = dict(zip(grid, values))
        for impl, device in devices(args):
            progress.set_postfix_str(f"{impl} {point}")
            argv = model_argv(args, seed=1, lr=point["lr"], hidden=",".join(map(str, point["hidden"])),
                              batch_size=point["batch_size"], optimizer=point["optimizer"], epochs=point["epochs"],
                              momentum=None, weight_decay=None)
            h = workers.run((impl, device), train_job, impl, device, argv, False)
            results.append({"implementation": impl, "device": device, **point,
                            "hidden": ",".join(map(str, point["hidden"])),
                            "best_val_acc": max(e["val_acc"] for e in h["epochs"]),  # parse() demands a split
                            "final_val_acc": h["epochs"][-1]["val_acc"], "test_acc": h["test_acc"],
                            "train_s": h["train_seconds"]})
            progress.update()
    table = pd.DataFrame(results).sort_values("best_val_acc", ascending=False)
    write_csv(table, tmp / "sweep.csv")
    plot_sweep(table, tmp / "sweep.png")
    return ["## Sweep (seed 1), sorted by best validation accuracy\n", markdown_table(table), "", "![sweep](sweep.png)\n"]


def replace_outputs(tmp: Path, out: Path) -> None:
    """Swap in this run's files: earlier outputs of ours go first, so nothing stale mixes in."""
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        (out / name).unlink(missing_ok=True)
    for f in tmp.iterdir():
        shutil.move(str(f), out / f.name)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    try:
        data_loader.load_raw(args.data_dir)  # fail early, in one line, before any child starts
        from tqdm import tqdm
        n_rows = len(devices(args))
        if args.sweep:
            total = n_rows * math.prod(len(getattr(args, f"sweep_{k}") or [0]) for k in SWEEP_FLAGS)
        else:
            total = n_rows * (args.seeds + len(args.optimizer_names) + len(args.batch_size_list))
        start = time.perf_counter()
        args.out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=args.out, prefix=".compare-") as tmp, \
                tqdm(total=total, desc="compare", unit="run") as progress:
            tmp = Path(tmp)
            workers = Workers()
            try:
                sections = (run_sweep if args.sweep else run_comparison)(args, tmp, progress, workers)
            finally:
                workers.close()
            env = common.environment()
            header = ["# numpy_nn vs pytorch_nn on MNIST\n",
                      f"Reproduce: `python compare.py {shlex.join(argv)}`".rstrip() + "\n",
                      f"Machine: {env['cpu']}, {env['cores']} cores, {args.threads} threads; Python {env['python']}, "
                      f"NumPy {env['numpy']}, PyTorch {env['torch']}. Wall time {time.perf_counter() - start:.0f} s.\n",
                      "Epoch times cover the training updates only (forward, loss, backward, optimizer step, "
                      "batch gathering); evaluation is excluded. Both implementations use the same threads, "
                      "data, batches and initial weights.\n"]
            with common.atomic_path(tmp / ("sweep.md" if args.sweep else "comparison.md")) as f:
                f.write_text("\n".join(header + sections) + "\n")
            replace_outputs(tmp, args.out)
    except data_loader.DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    report = args.out / ("sweep.md" if args.sweep else "comparison.md")
    print(report.read_text().split("\n## ")[1].split("\n![")[0].strip())
    print(f"\nwrote {args.out}/ in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
