"""The comparison's tables: one row per implementation and device, formatted for Markdown and CSV."""
from __future__ import annotations

import itertools
import math
import statistics

import pandas as pd

from common.files import atomic_path

TARGET_ACC = 0.98


def summarize(runs: list[dict]):
    """The comparison table (one row per implementation/device) and the long per-epoch table."""
    epochs = pd.DataFrame([{"implementation": r["implementation"], "device": r["device"], "seed": r["config"]["seed"],
                            **e} for r in runs for e in r["epochs"]])
    best_val = epochs.groupby(["implementation", "device"])["val_acc"].max()  # NaN without a validation split
    rows = []
    for (impl, device), group in itertools.groupby(runs, key=lambda r: (r["implementation"], r["device"])):
        group = list(group)
        accs = [r["test_acc"] for r in group]
        sec = [e["epoch_seconds"] for r in group for e in r["epochs"]]
        reach = [next((sum(e["epoch_seconds"] for e in r["epochs"][:i + 1]) for i, e in enumerate(r["epochs"])
                       if e["test_acc"] >= TARGET_ACC), math.nan) for r in group]
        reached = [t for t in reach if not math.isnan(t)]
        rows.append({
            "implementation": impl, "device": device, "runs_with": group[0]["environment"].get("runs_with", ""),
            "runs": len(group),
            "test_acc_mean": statistics.mean(accs), "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "test_loss_mean": statistics.mean(r["test_loss"] for r in group),
            "best_val_acc": best_val[impl, device],
            "median_epoch_s": statistics.median(sec), "samples_per_s": group[0]["n_train"] / statistics.median(sec),
            "train_s_mean": statistics.mean(r["train_seconds"] for r in group),
            f"time_to_{TARGET_ACC:.0%}_s": statistics.mean(reached) if reached else math.nan,
            "runs_reaching_target": len(reached),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in group),
        })
    table = pd.DataFrame(rows)
    table["epoch_time_vs_first"] = table["median_epoch_s"] / table["median_epoch_s"].iloc[0]
    return table, epochs


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


def markdown_table(df) -> str:
    """A pipe table from a DataFrame (pandas' to_markdown would need the tabulate package)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(c, v) for c, v in zip(cols, row)) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def write_csv(df, path):
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
