"""The comparison's studies: optimizers (each at its customary learning rate), batch-size scaling, and the
sweep mode's grid; each returns its part of the report."""
from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd

from common import architecture, machine
from comparison import plots, tables
from comparison.runs import devices, model_argv, time_epoch_job, train_job, train_size

OPTIMIZERS = {  # the optimizer study: each at its customary learning rate
    "sgd": ["--optimizer", "sgd", "--lr", "0.1"],
    "momentum": ["--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.01"],
    "nesterov": ["--optimizer", "sgd", "--momentum", "0.9", "--nesterov", "--lr", "0.01"],
    "adam": ["--optimizer", "adam", "--lr", "1e-3"],
    "adamw": ["--optimizer", "adamw", "--lr", "1e-3"],
}
SWEEP_FLAGS = ("lr", "hidden", "batch_size", "optimizer", "epochs")
# what the optimizer study leaves out of a run's flags, so that each optimizer's own flags cannot contradict them
OPTIMIZER_FLAGS_OFF = dict(optimizer=None, lr=None, momentum=None, nesterov=None, betas=None, weight_decay=None)


def optimizers(args, rows, tmp, progress, workers) -> list[str]:
    opt_runs = []
    for name in args.optimizer_names:
        for impl, device in rows:
            progress.set_postfix_str(f"optimizer {name}: {impl} {device}")
            argv = model_argv(args, impl, seed=1, **OPTIMIZER_FLAGS_OFF)
            h = workers.run((impl, device), train_job, impl, device, argv + OPTIMIZERS[name], False)
            opt_runs.append({"optimizer": name, "implementation": impl, "device": device, "history": h})
            progress.update()
    opt_epochs = pd.DataFrame([{"optimizer": r["optimizer"], "implementation": r["implementation"],
                                "device": r["device"], **e} for r in opt_runs for e in r["history"]["epochs"]])
    tables.write_csv(opt_epochs, tmp / "optimizers.csv")
    plots.plot_optimizers(opt_epochs, tmp / "optimizers.png")
    final = opt_epochs.sort_values("epoch").groupby(["optimizer", "implementation", "device"], sort=False).last()
    final = final.reset_index()[["optimizer", "implementation", "device", "train_loss", "val_acc", "test_acc"]]
    return ["## Optimizers (seed 1; flags: " + "; ".join(f"{n}: {' '.join(OPTIMIZERS[n])}"
                                                              for n in args.optimizer_names) + ")\n",
                 tables.markdown_table(final), "", "![optimizers](optimizers.png)\n"]



def scaling(args, rows, tmp, progress, workers) -> list[str]:
    peak = machine.matmul_peak_gflops(args.threads)
    flops = architecture.train_flops_per_sample(args)
    n = train_size(args)
    scale = []
    for bs in args.batch_size_list:
        for impl, device in rows:
            progress.set_postfix_str(f"batch {bs}: {impl} {device}")
            s = workers.run((impl, device), time_epoch_job, impl, device, model_argv(args, impl, batch_size=bs, seed=1),
                            1 if args.quick else 3)
            scale.append({"implementation": impl, "device": device, "batch_size": bs, "epoch_s": s,
                          "samples_per_s": n / s, "gflops": flops * n / s / 1e9, "matmul_peak_gflops": peak})
            progress.update()
    scale = pd.DataFrame(scale)
    tables.write_csv(scale, tmp / "scaling.csv")
    plots.plot_scaling(scale, peak, tmp / "scaling.png")
    return [f"## Scaling (median of {1 if args.quick else 3} epochs of {n} images after one warm-up; "
                 f"matmul peak {peak:.0f} GFLOP/s)\n",
                 tables.markdown_table(scale.drop(columns="matmul_peak_gflops")), "", "![scaling](scaling.png)\n"]


def sweep(args, tmp: Path, progress, workers) -> list[str]:
    grid = {k: getattr(args, f"sweep_{k}") or [getattr(args, k)] for k in SWEEP_FLAGS}
    results = []
    for values in itertools.product(*grid.values()):
        point = dict(zip(grid, values))
        for impl, device in devices(args):
            progress.set_postfix_str(f"{impl} {point}")
            argv = model_argv(args, impl, seed=1, lr=point["lr"], hidden=",".join(map(str, point["hidden"])),
                              batch_size=point["batch_size"], optimizer=point["optimizer"], epochs=point["epochs"],
                              momentum=None, betas=None, weight_decay=None)
            h = workers.run((impl, device), train_job, impl, device, argv, False)
            results.append({"implementation": impl, "device": device, **point,
                            "hidden": ",".join(map(str, point["hidden"])),
                            "best_val_acc": max(e["val_acc"] for e in h["epochs"]),  # parse() demands a split
                            "final_val_acc": h["epochs"][-1]["val_acc"], "test_acc": h["test_acc"],
                            "train_s": h["train_seconds"]})
            progress.update()
    table = pd.DataFrame(results).sort_values("best_val_acc", ascending=False)
    tables.write_csv(table, tmp / "sweep.csv")
    plots.plot_sweep(table, tmp / "sweep.png")
    return ["## Sweep (seed 1), sorted by best validation accuracy\n", tables.markdown_table(table), "",
            "![sweep](sweep.png)\n"]




def precision(args, tmp, progress, workers) -> list[str]:
    """precision.csv: the same network's epoch time in float32 and float64 for both twins on the CPU, on a
    subset, measured in this run, with the ratio numpy_nn / pytorch_nn for each precision."""
    images, repeats = min(train_size(args), 500 if args.quick else 2000), 1 if args.quick else 2
    rows = []
    for dtype in ("float32", "float64"):
        row = {"dtype": dtype, "images": images}
        for impl in ("numpy", "pytorch"):
            progress.set_postfix_str(f"precision {dtype}: {impl}")
            argv = model_argv(args, impl, dtype=dtype, limit_train=images, seed=1)
            row[f"{impl}_epoch_s"] = workers.run((impl, "cpu"), time_epoch_job, impl, "cpu", argv, repeats)
            progress.update()
        rows.append({**row, "numpy_over_pytorch": row["numpy_epoch_s"] / row["pytorch_epoch_s"]})
    table = pd.DataFrame(rows)
    tables.write_csv(table, tmp / "precision.csv")
    r32, r64 = table["numpy_over_pytorch"]
    return [f"## What precision costs (median of {repeats} epoch{'s' * (repeats > 1)} of {images:,} images after a "
            f"warm-up, the CPU)\n",
            f"numpy_nn takes {r32:.2f}x pytorch_nn's time in float32 and {r64:.2f}x in float64 on this network; "
            f"float64 costs numpy_nn {table['numpy_epoch_s'][1] / table['numpy_epoch_s'][0]:.2f}x its float32 time and "
            f"pytorch_nn {table['pytorch_epoch_s'][1] / table['pytorch_epoch_s'][0]:.2f}x. "
            + ("PyTorch's float64 convolutions do not go through oneDNN, its float32 fast path. "
               if args.model == "cnn" else "")
            + "\n", tables.markdown_table(table), ""]
