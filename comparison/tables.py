"""The comparison's tables: one row per implementation and device, formatted for Markdown and CSV."""
from __future__ import annotations

import itertools
import math
import statistics

import pandas as pd

from common.files import atomic_path

# Markdown headers for the CSV's machine-friendly column names (every table of the report goes through these)
HEADERS = {
    "implementation": "twin", "runs_with": "runs with", "test_acc_mean": "test accuracy",
    "test_acc_std": "± (seeds)", "test_loss_mean": "test loss", "best_val_acc": "best validation accuracy",
    "median_epoch_s": "median epoch (s)", "samples_per_s": "images/s", "train_s_median": "training (s)",
    "time_to_target_s": "time to {target} (s)", "runs_reaching_target": "runs reaching {target}",
    "peak_rss_mb": "peak memory (MB)", "epoch_vs_pytorch_nn": "epoch time / pytorch_nn's",
    "max_abs_diff": "largest difference", "max_abs_value": "largest entry", "train_loss": "training loss",
    "val_acc": "validation accuracy", "test_acc": "test accuracy", "batch_size": "batch size", "epoch_s": "epoch (s)",
    "gflops": "GFLOP/s", "final_val_acc": "final validation accuracy",
    "train_s": "training (s)", "lr": "learning rate", "forward_ms": "forward (ms)", "backward_ms": "backward (ms)",
    "total_ms": "forward + backward (ms)", "numpy_over_pytorch": "numpy_nn / pytorch_nn",
    "numpy_epoch_s": "numpy_nn epoch (s)", "pytorch_epoch_s": "pytorch_nn epoch (s)", "images": "images",
}
# One line each under the comparison table, for the columns whose meaning is not obvious
EXPLAINED = {
    "runs with": "what each twin ran with (numpy_nn's kernels and optimizer, torch's fused optimizer or compile).",
    "± (seeds)": "the standard deviation of the test accuracy over the seeds.",
    "median epoch (s)": "the median over every epoch of every seed of the seconds spent in training updates "
                        "(evaluation excluded); images/s is the training set's size over it.",
    "training (s)": "the median over seeds of a whole run's training seconds (so for one epoch, the median epoch).",
    "time to {target} (s)": "the mean over the seeds that reached it of the training seconds until the test accuracy, "
                            "measured after each epoch, first reached {target} (accuracy_vs_time.png).",
    "peak memory (MB)": "the largest resident memory of one run's process (its worker's high-water mark, reset "
                        "before the run).",
    "epoch time / pytorch_nn's": "median epoch over pytorch_nn's on the CPU, the one direction of every ratio in these "
                                 "reports: above 1 is slower than pytorch_nn.",
}


def summarize(runs: list[dict], target: float = 0.98):
    """The comparison table (one row per implementation/device) and the long per-epoch table; target is the
    test accuracy whose time-to is reported (0.98 for the MLP, 0.99 for a CNN by default)."""
    epochs = pd.DataFrame([{"implementation": r["implementation"], "device": r["device"], "seed": r["config"]["seed"],
                            **e} for r in runs for e in r["epochs"]])
    best_val = epochs.groupby(["implementation", "device"])["val_acc"].max()  # NaN without a validation split
    rows = []
    for (impl, device), group in itertools.groupby(runs, key=lambda r: (r["implementation"], r["device"])):
        group = list(group)
        accs = [r["test_acc"] for r in group]
        sec = [e["epoch_seconds"] for r in group for e in r["epochs"]]
        reach = [next((sum(e["epoch_seconds"] for e in r["epochs"][:i + 1]) for i, e in enumerate(r["epochs"])
                       if e["test_acc"] >= target), math.nan) for r in group]
        reached = [t for t in reach if not math.isnan(t)]
        rows.append({
            "implementation": impl, "device": device, "runs_with": group[0]["environment"].get("runs_with", ""),
            "runs": len(group),
            "test_acc_mean": statistics.mean(accs), "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "test_loss_mean": statistics.mean(r["test_loss"] for r in group),
            "best_val_acc": best_val[impl, device],
            "median_epoch_s": statistics.median(sec), "samples_per_s": group[0]["n_train"] / statistics.median(sec),
            "train_s_median": statistics.median(r["train_seconds"] for r in group),
            "target_acc": target, "time_to_target_s": statistics.mean(reached) if reached else math.nan,
            "runs_reaching_target": len(reached),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in group),
        })
    table = pd.DataFrame(rows)
    torch_cpu = table.loc[(table["implementation"] == "pytorch") & (table["device"] == "cpu"), "median_epoch_s"]
    table["epoch_vs_pytorch_nn"] = table["median_epoch_s"] / torch_cpu.iloc[0] if len(torch_cpu) else math.nan
    return table, epochs


def comparison_markdown(table) -> list[str]:
    """The comparison table with readable headers, and a line under it for each column that needs one."""
    target = f"{table['target_acc'].iloc[0]:.0%}".replace("%", " %")
    shown = table.drop(columns="target_acc")
    lines = [markdown_table(shown, target=target), ""]
    headers = [HEADERS.get(c, c).format(target=target) for c in shown.columns]
    lines += [f"- *{h}*: {EXPLAINED[key].format(target=target)}" for key in EXPLAINED
              if (h := key.format(target=target)) in headers]
    return lines + [""]


def fmt(column: str, v) -> str:
    """Accuracies as percentages, big counts with separators, small differences in e-notation, the rest to
    3-4 significant digits."""
    if not isinstance(v, float):
        return str(v)
    if math.isnan(v):
        return "-"
    if "acc" in column:
        return f"{100 * v:.2f} %"
    if v != 0 and abs(v) < 1e-3:
        return f"{v:.1e}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.1f}" if abs(v) >= 100 else f"{v:.3g}"


def table(header: list[str], rows: list[list]) -> str:
    """A Markdown pipe table of a header and rows of cells (pandas' to_markdown would need the tabulate package)."""
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


def markdown_table(df, **names) -> str:
    """A pipe table from a DataFrame, its headers readable (HEADERS, formatted with names) while the values are
    formatted by their machine-friendly column names."""
    cols = list(df.columns)
    return table([HEADERS.get(c, c).format(**names) for c in cols],
                 [[fmt(c, v) for c, v in zip(cols, row)] for row in df.itertuples(index=False)])


def write_csv(df, path):
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
