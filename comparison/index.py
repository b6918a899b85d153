"""results/README.md: an index of every report under results/, written by compare.py after each report it
writes there, or by `python -m comparison.index [FOLDER]`."""
from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pandas as pd

from common.files import atomic_path

ROOT = Path(__file__).resolve().parents[1] / "results"


def described(command: str) -> str:
    """The network a report's command trains (for reports written before they named it)."""
    import compare
    from common.architecture import describe
    try:
        return describe(compare.parse(shlex.split(command)[2:]))
    except SystemExit:
        return "-"


def summary(folder: Path, root: Path) -> dict | None:
    """One report's row: its command, network, each twin's test accuracy and the epoch-time ratio."""
    md, csv = folder / "comparison.md", folder / "comparison.csv"
    if not (md.is_file() and csv.is_file()):
        return None
    text, table = md.read_text(), pd.read_csv(csv)
    command = re.search(r"^Reproduce: `(.*)`", text, re.MULTILINE)
    network = re.search(r"^Network: (.*)$", text, re.MULTILINE)
    network = network[1].strip() if network else described(command[1]) if command else "-"
    cpu = table[table["device"] == "cpu"].set_index("implementation")
    acc = {impl: (f"{100 * cpu.loc[impl, 'test_acc_mean']:.2f} %" if impl in cpu.index else "-")
           for impl in ("numpy", "pytorch")}
    ratio = (f"{cpu.loc['numpy', 'median_epoch_s'] / cpu.loc['pytorch', 'median_epoch_s']:.2f}"
             if {"numpy", "pytorch"} <= set(cpu.index) else "-")
    link = "comparison.md" if folder == root else f"{folder.relative_to(root)}/comparison.md"
    name = "." if folder == root else str(folder.relative_to(root))
    return {"report": f"[{name}]({link})", "command": f"`{command[1].strip()}`" if command else "-",
            "network": network, "numpy_nn test accuracy": acc["numpy"],
            "pytorch_nn test accuracy": acc["pytorch"], "epoch time numpy_nn / pytorch_nn": ratio}


def write_index(root: Path = ROOT) -> Path:
    rows = [r for r in (summary(f, root) for f in [root, *sorted(p for p in root.iterdir() if p.is_dir())]) if r]
    lines = ["# Reports\n", "Every report under this folder, written by `python compare.py` (the command in each row "
             "reproduces it). Accuracy: mean test accuracy over the seeds on the CPU; epoch time: median training "
             "epoch of numpy_nn over pytorch_nn's (below 1, numpy_nn is faster). ANALYSIS.md reads them.\n",
             "| " + " | ".join(rows[0]) + " |" if rows else "(no reports yet)", "|" + "---|" * len(rows[0]) if rows else ""]
    lines += ["| " + " | ".join(r.values()) + " |" for r in rows]
    with atomic_path(root / "README.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return root / "README.md"


if __name__ == "__main__":
    print(write_index(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT))
