"""The comparison's figures of pictures: the digits the twins see and get wrong, and the weights they learn."""
from __future__ import annotations

import importlib

import numpy as np
from matplotlib.colors import LogNorm

import data_loader
from common import cli
from comparison.plots import figure, plt, save
from comparison.runs import parse_run_args, trainer_module


def plot_confusions(y, preds, path):
    """confusion.png: one confusion matrix per implementation (seed 1), side by side."""
    fig, axes = figure(len(preds), width=5.0, height=4.6)
    for ax, (name, pred) in zip(axes, preds.items()):
        cm = np.zeros((10, 10), int)
        np.add.at(cm, (y, pred), 1)
        im = ax.imshow(cm, cmap="Blues", norm=LogNorm(vmin=1))
        for i, j in zip(*np.nonzero(cm)):
            ax.text(j, i, cm[i, j], ha="center", va="center", fontsize=6,
                    color="white" if cm[i, j] > cm.max() / 10 else "black")
        ax.set_xticks(range(10))
        ax.set_yticks(range(10))
        ax.set_xlabel("predicted digit")
        ax.set_ylabel("true digit")
        ax.set_title(f"{name}: {np.mean(pred == y):.2%} correct")
        fig.colorbar(im, ax=ax, shrink=0.8, label="test images (log scale)")
    save(fig, path)


def plot_misclassified(images, y, preds, path, n=12):
    """misclassified.png: each twin's first errors (true -> predicted), then the digits where they disagree."""
    rows = [(name, np.flatnonzero(pred != y)[:n]) for name, pred in preds.items()]
    if len(preds) >= 2:
        (la, pa), (lb, pb) = list(preds.items())[:2]
        rows.append((f"disagree: {la} / {lb}", np.flatnonzero(pa != pb)[:n]))
    fig, axes = plt.subplots(len(rows), n, figsize=(n * 0.9, len(rows) * 1.35), squeeze=False)
    for r, (name, idx) in enumerate(rows):
        for c in range(n):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(idx):
                i = idx[c]
                ax.imshow(images[i], cmap="gray_r")
                if name.startswith("disagree"):
                    ax.set_title(f"{y[i]}: {' / '.join(str(p[i]) for p in list(preds.values())[:2])}", fontsize=7)
                else:
                    ax.set_title(f"{y[i]} -> {preds[name][i]}", fontsize=7, color="tab:red")
        axes[r][0].text(-0.15, 0.5, name, transform=axes[r][0].transAxes, ha="right", va="center", fontsize=8)
    counts = ", ".join(f"{name}: {np.sum(pred != y)} errors" for name, pred in preds.items())
    if len(preds) >= 2:
        counts += f"; the twins disagree on {np.sum(pa != pb)} digits"
    fig.suptitle(f"Misclassified test digits (true -> predicted), seed 1. {counts}", fontsize=9)
    fig.subplots_adjust(left=0.2)
    save(fig, path, tight=False)


def plot_samples(batch, path, n=32):
    """samples.png: the first training batch as the loader delivers it (seed 1, epoch 0), un-normalized."""
    x, y = batch
    fig, axes = plt.subplots(4, n // 4, figsize=(n // 4 * 0.9, 4 * 1.1))
    for ax, img, digit in zip(axes.flat, x[:n], y[:n]):
        ax.imshow((img.reshape(28, 28) * data_loader.STD + data_loader.MEAN), cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(str(digit), fontsize=8)
        ax.axis("off")
    fig.suptitle("First training batch as both twins receive it (seed 1, epoch 1), label above each digit", fontsize=9)
    save(fig, path)


def first_layer_filters(weights: dict) -> tuple[str, np.ndarray]:
    """(name, (units, h, w)) of the first weight tensor: a Linear's rows as 28x28 images, or a convolution's
    kernels on its first input channel."""
    name = next(k for k, v in weights.items() if k.endswith(".weight") and v.ndim in (2, 4))
    w = weights[name]
    if w.ndim == 4:
        return name, w[:, 0]
    side = int(round(np.sqrt(w.shape[1])))
    return name, w.reshape(len(w), side, side)


def plot_weights(weights_by_twin: dict, path, units=32, cols=8):
    """weights.png: the first layer of each twin's seed-1 model as images, side by side, on one colour scale
    per twin (blue negative, red positive): what each unit looks for in a digit."""
    filters = {twin: first_layer_filters(w) for twin, w in weights_by_twin.items()}
    n = min(units, *(len(f) for _, f in filters.values()))
    rows = -(-n // cols)
    fig = plt.figure(figsize=(cols * 0.95 * len(filters), rows * 0.95 + 0.9))
    for sub, (twin, (name, f)) in zip(np.atleast_1d(fig.subfigures(1, len(filters), wspace=0.04)), filters.items()):
        axes = sub.subplots(rows, cols, squeeze=False)
        scale = np.abs(f[:n]).max()
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i < n:
                ax.imshow(f[i], cmap="RdBu_r", vmin=-scale, vmax=scale)
        sub.suptitle(f"{twin}: {name}, first {n} of {len(f)} units", fontsize=9)
        sub.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=1 - 0.45 / (rows * 0.95 + 0.9), wspace=0.08, hspace=0.08)
    save(fig, path, tight=False)


def attention_job(argv: list[str], models: dict, n: int = 4) -> tuple[np.ndarray, dict]:
    """The first n test digits and, for each ViT ({label: (implementation, weights)}), its last block's attention
    from the class token to each patch, per head, as that implementation computes it (numpy_nn.attention's or
    pytorch_nn.attention's class_attention), in one process."""
    args = parse_run_args(None, "cpu", [*argv, "--processes", "1"])
    cli.threadpool_limits(args.threads)
    data, maps = cli.load_data(args), {}
    x, y = data.x_test[:n], data.y_test[:n]
    for label, (impl, weights) in models.items():
        trainer = trainer_module(impl).Trainer(args)
        trainer.load_weights(weights)
        a = importlib.import_module(f"{impl}_nn.attention").class_attention(trainer.model, trainer.place(x, y)[0])
        maps[label] = np.asarray(a.cpu() if hasattr(a, "cpu") else a, np.float64)
    return data.raw.test_images[:n], maps


def plot_attention(images, maps: dict, path, model: str):
    """attention.png: the class token's attention over the patches, per head (brighter: more weight), the digit's
    outline drawn over it, one row per test digit, as each twin computes it from the same model, side by side; the
    title names the model and gives the twins' largest difference."""
    a = next(iter(maps.values()))
    heads, side = a.shape[1], int(round(np.sqrt(a.shape[2])))
    gap = max(float(np.abs(m - a).max()) for m in maps.values())
    fig, axes = plt.subplots(len(images), heads * len(maps), squeeze=False,
                             figsize=(max(1.3 * heads * len(maps), 5.5), 1.35 * len(images) + 0.9))
    for c, (label, m) in enumerate((label, m) for label, m in maps.items() for _ in range(heads)):
        h = c % heads
        for r, image in enumerate(images):
            ax = axes[r][c]
            ax.imshow(m[r, h].reshape(side, side), cmap="magma", vmin=0, vmax=m[r].max(), extent=(0, 28, 28, 0))
            ax.contour(image, levels=[128], colors="cyan", linewidths=0.8, extent=(0, 28, 0, 28))
            ax.axis("off")
        axes[0][c].set_title(f"{label}\nhead {h + 1}", fontsize=7)
    fig.suptitle(f"The class token's attention over the {side}x{side} grid of patches in the last block, per head, of "
                 f"{model} as each twin computes it\n(the digit outlined; the twins' maps differ by at most {gap:.1e})",
                 fontsize=8)
    save(fig, path)
