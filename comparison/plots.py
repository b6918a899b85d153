"""The comparison's figures of numbers: curves per epoch, epoch times, optimizers, scaling, sweep."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

import contextlib  # noqa: E402
import contextvars  # noqa: E402

from common.files import atomic_path  # noqa: E402

COLORS = {"numpy": "tab:blue", "pytorch": "tab:orange"}
MARKERS = "osD^vP*X"  # one per seed
CAPTION = contextvars.ContextVar("caption", default="")  # the network and the machine, under every figure


@contextlib.contextmanager
def captioned(text):
    """Every figure saved inside the block says text at its foot (compare.py: the network and the machine)."""
    token = CAPTION.set(text)
    try:
        yield
    finally:
        CAPTION.reset(token)


def figure(ncols=1, width=6.4, height=4.2):
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, axes[0]


def save(fig, path, tight=True):
    if CAPTION.get():
        fig.text(0.5, 0.005, CAPTION.get(), ha="center", va="bottom", fontsize=7, color="dimgray", wrap=True)
    if tight:
        fig.tight_layout(rect=(0, 0.035 if CAPTION.get() else 0, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches=None if tight else "tight")
    plt.close(fig)


def label(impl, device):
    return f"{impl}_nn" + (f" ({device})" if device != "cpu" else "")


def color(impl, device):
    return COLORS.get(impl, "gray") if device == "cpu" else "tab:green"


def epoch_axis(ax):
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")


def _band(ax, df, column, name, line_color, style="-"):
    """Mean over seeds per epoch, with a min-max band."""
    g = df.groupby("epoch")[column]
    mean, lo, hi = g.mean(), g.min(), g.max()
    ax.plot(mean.index, mean.values, style, color=line_color, label=name)
    if len(df["seed"].unique()) > 1:
        ax.fill_between(mean.index, lo.values, hi.values, color=line_color, alpha=0.2)


def plot_curves(epochs, path, kind):
    """loss.png / accuracy.png: train and validation (and test accuracy) per epoch, both twins overlaid."""
    panels = [(split, style) for split, style in [("train", "-"), ("val", "--"), ("test", ":")]
              if f"{split}_{kind}" in epochs and epochs[f"{split}_{kind}"].notna().any()]
    fig, axes = figure(len(panels), width=5.2)
    for ax, (split, style) in zip(axes, panels):
        for (impl, device), df in epochs.groupby(["implementation", "device"], sort=False):
            values = df.assign(v=df[f"{split}_{kind}"] * (100 if kind == "acc" else 1))
            _band(ax, values, "v", label(impl, device), color(impl, device), style)
        ax.set_title(f"{split} {'accuracy' if kind == 'acc' else 'loss'}")
        epoch_axis(ax)
        ax.set_ylabel("accuracy (%)" if kind == "acc" else "cross-entropy loss (nats)")
        if kind == "loss":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{'Accuracy' if kind == 'acc' else 'Loss'} per epoch: mean over seeds, band = min-max")
    save(fig, path)


def plot_epoch_times(epochs, table, path):
    """epoch_time.png: the spread of epoch seconds and samples per second per implementation."""
    fig, (ax1, ax2) = figure(2, width=5.2)
    groups = list(epochs.groupby(["implementation", "device"], sort=False))
    labels = [label(*k) for k, _ in groups]
    ax1.boxplot([df["epoch_seconds"].values for _, df in groups], tick_labels=labels)
    ax1.set_ylabel("seconds per training epoch")
    ax1.set_title("Epoch time (all epochs, all seeds)")
    ax2.bar(labels, table["samples_per_s"], color=[color(i, d) for i, d in zip(table["implementation"], table["device"])])
    ax2.set_ylabel("training samples per second (median epoch)")
    ax2.set_title("Throughput")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3, axis="y")
    save(fig, path)


def plot_optimizers(df, path):
    """optimizers.png: training loss and validation accuracy (test accuracy with --val-size 0) per optimizer;
    solid lines numpy_nn, dashed pytorch_nn, one colour per optimizer."""
    acc, split = ("val_acc", "validation") if df["val_acc"].notna().any() else ("test_acc", "test")
    fig, (ax1, ax2) = figure(2, width=5.6, height=4.6)
    colors = dict(zip(df["optimizer"].unique(), ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]))
    for (opt, impl, device), g in df.groupby(["optimizer", "implementation", "device"], sort=False):
        style = "-" if impl == "numpy" else "--"
        for ax, column, scale in ((ax1, "train_loss", 1), (ax2, acc, 100)):
            ax.plot(g["epoch"], g[column] * scale, style, color=colors[opt], label=f"{opt}, {label(impl, device)}")
    ax1.set_yscale("log")
    ax1.set_ylabel("training loss (nats)")
    ax2.set_ylabel(f"{split} accuracy (%)")
    for ax, title in ((ax1, "Training loss"), (ax2, f"{split.capitalize()} accuracy")):
        epoch_axis(ax)
        ax.set_title(f"{title} by optimizer")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Optimizers, seed 1: solid numpy_nn, dashed pytorch_nn")
    save(fig, path)


def plot_scaling(df, peak, path):
    """scaling.png: epoch time and achieved GFLOP/s against batch size, with the measured matmul peak."""
    fig, (ax1, ax2) = figure(2, width=5.6)
    for (impl, device), g in df.groupby(["implementation", "device"], sort=False):
        ax1.plot(g["batch_size"], g["epoch_s"], "o-", color=color(impl, device), label=label(impl, device))
        ax2.plot(g["batch_size"], g["gflops"], "o-", color=color(impl, device), label=label(impl, device))
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
    save(fig, path)


def plot_sweep(df, path):
    """sweep.png: best validation accuracy of every grid point, both twins."""
    fig, (ax,) = figure(1, width=max(6.4, 0.5 * len(df)))
    labels = [f"{r.optimizer} lr={r.lr:g} h={r.hidden} bs={r.batch_size} e={r.epochs}\n{r.implementation}"
              for r in df.itertuples()]
    ax.bar(range(len(df)), df["best_val_acc"] * 100, color=[COLORS.get(i, "gray") for i in df["implementation"]])
    ax.set_xticks(range(len(df)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylim(max(0, df["best_val_acc"].min() * 100 - 2), 100)
    ax.set_ylabel("best validation accuracy (%)")
    ax.set_title("Sweep: best validation accuracy per configuration")
    ax.grid(alpha=0.3, axis="y")
    save(fig, path)


def plot_accuracy_vs_time(epochs, target, path):
    """accuracy_vs_time.png: test accuracy after each epoch against the training seconds spent so far, every
    seed of both twins, with the target drawn: how much accuracy for how many seconds."""
    fig, (ax,) = figure(1, width=7.5, height=4.6)
    seeds = sorted(epochs["seed"].unique())
    for (impl, device), df in epochs.groupby(["implementation", "device"], sort=False):
        for i, (seed, run) in enumerate(df.groupby("seed")):
            run = run.sort_values("epoch")
            ax.plot(run["epoch_seconds"].cumsum(), run["test_acc"] * 100, "-", color=color(impl, device),
                    marker=MARKERS[seeds.index(seed) % len(MARKERS)], markersize=4, alpha=0.8,
                    label=label(impl, device) if i == 0 else None)
    if len(seeds) > 1:  # the markers' key: seed by seed, in gray
        for seed in seeds:
            ax.plot([], [], MARKERS[seeds.index(seed) % len(MARKERS)], color="gray", label=f"seed {seed}")
    ax.axhline(target * 100, color="gray", linestyle=":", label=f"target {target:.0%}")
    if epochs["test_acc"].max() < target:
        ax.text(0.02, 0.88, "target not reached in this run", transform=ax.transAxes, fontsize=8, color="gray")
    ax.set_xlim(left=0)
    ax.set_xlabel("training seconds (cumulative; evaluation excluded)")
    ax.set_ylabel("test accuracy after the epoch (%)")
    ax.set_title("Accuracy for time: every seed (a marker each), each point an epoch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    save(fig, path)


def plot_layers(df, path, how=""):
    """layers.png: forward and backward milliseconds per step of every layer (and the loss and the optimizer
    step), numpy_nn and pytorch_nn side by side; how: what each twin ran (batch, threads, processes)."""
    layers = list(dict.fromkeys(df["layer"]))
    fig, (ax,) = figure(1, width=8.5, height=max(3.5, 0.42 * len(layers) + 1.5))
    y = range(len(layers))
    for k, impl in enumerate(("numpy", "pytorch")):
        g = df[df["implementation"] == impl].set_index("layer").reindex(layers).fillna(0)
        offset = [v + (-0.2 if k == 0 else 0.2) for v in y]  # (the y axis is inverted: numpy_nn above)
        ax.barh(offset, g["forward_ms"], height=0.38, color=COLORS[impl], label=f"{impl}_nn forward")
        ax.barh(offset, g["backward_ms"], left=g["forward_ms"], height=0.38, color=COLORS[impl], alpha=0.45,
                label=f"{impl}_nn backward")
    ax.set_yticks(list(y), layers)
    ax.invert_yaxis()
    ax.margins(x=0.04)
    ax.set_xlabel("milliseconds per training step (median)")
    ax.set_title("Where a step's time goes, layer by layer (upper bar numpy_nn, lower pytorch_nn)"
                 + (f"\n{how}" if how else ""), fontsize=9 if how else None)
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8)
    save(fig, path)
