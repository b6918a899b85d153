"""ANALYSIS.md's figures, written from the committed reports: `python -m comparison.analysis` rewrites each block
between <!-- begin NAME --> and <!-- end NAME --> from results/ (the compare.py reports' CSV files, the benchmarks'
JSON under results/benchmarks/, the speed levers in results/levers.csv); tests/test_docs.py checks that the committed
ANALYSIS.md is what it would write, so a figure in those blocks cannot go stale. Prose outside them gives no figure."""
from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import pandas as pd

from comparison.speed import RESULTS, automates, bench_machines, gpu, kernels, layers, levers, speed
from comparison.tables import fmt, table

ROOT = Path(__file__).resolve().parents[1]
ANALYSIS = ROOT / "ANALYSIS.md"
REPORTS = {".": "MLP (default preset)", "fast": "MLP, fast preset", "best": "MLP, best preset", "lenet": "LeNet-5 shapes",
           "cnn": "CNN, cnn preset", "cnn-fast": "CNN, cnn-fast preset (speedrun)",
           "mnist-rnn": "LSTM, mnist-rnn preset (pytorch/examples)", "lstm": "LSTM, lstm preset",
           "vit": "ViT, vit preset"}


def pct(v):
    return f"{100 * v:.2f} %"


def report(name: str) -> Path:
    return RESULTS if name == "." else RESULTS / name


def link(name: str) -> str:
    return f"[{REPORTS[name]}]({'results' if name == '.' else 'results/' + name}/comparison.md)"


def machine_line(name: str) -> str:
    return re.search(r"^Machine: (.*?)\. Wall time", (report(name) / "comparison.md").read_text(), re.M)[1]


def cpu_rows(name: str) -> pd.DataFrame:
    t = pd.read_csv(report(name) / "comparison.csv")
    return t[t["device"] == "cpu"].set_index("implementation")


def summary() -> str:
    rows = []
    for name in REPORTS:
        t, steps = cpu_rows(name), pd.read_csv(report(name) / "parity.csv")
        f64 = steps[steps["case"].str.startswith("float64")]["rel_diff"]
        target = f"{t['target_acc'].iloc[0]:.0%}"
        rows.append([link(name), *(f"{pct(t.loc[i, 'test_acc_mean'])} ± {pct(t.loc[i, 'test_acc_std'])}" for i in
                                   ("numpy", "pytorch")),
                     f"{fmt('s', t.loc['numpy', 'train_s_median'])} / {fmt('s', t.loc['pytorch', 'train_s_median'])}",
                     f"{target}: {fmt('s', t.loc['numpy', 'time_to_target_s'])} / "
                     f"{fmt('s', t.loc['pytorch', 'time_to_target_s'])}",
                     f"{t.loc['numpy', 'median_epoch_s'] / t.loc['pytorch', 'median_epoch_s']:.2f}x",
                     f"{f64.max():.1e}", int(t.loc["numpy", "runs"])])
    return table(["report", "numpy_nn test accuracy", "pytorch_nn test accuracy", "training s, numpy_nn / pytorch_nn",
                  "time to target (s)", "epoch time numpy_nn / pytorch_nn", "float64 lockstep, max relative loss "
                  "difference", "seeds"], rows)


def verdict() -> str:
    """Which twin trains faster on each report's network (the epoch ratio's direction), as a sentence."""
    faster = {True: [], False: []}
    for name in REPORTS:
        t = cpu_rows(name)
        faster[bool(t.loc["numpy", "median_epoch_s"] < t.loc["pytorch", "median_epoch_s"])].append(REPORTS[name])
    return (f"numpy_nn trains faster than pytorch_nn on: {', '.join(faster[True]) or 'none'}; slower on: "
            f"{', '.join(faster[False]) or 'none'} (median epochs, summary table).")


def machines() -> str:
    lines = sorted({machine_line(name) for name in REPORTS})
    return "\n".join(f"- {line}" for line in lines)


def proof() -> str:
    rows = []
    for name in REPORTS:
        steps, grads = pd.read_csv(report(name) / "parity.csv"), pd.read_csv(report(name) / "gradients.csv")
        inter = pd.read_csv(report(name) / "interchange.csv")
        by = steps.groupby("case", sort=False)["rel_diff"]
        f64 = steps["case"].str.startswith("float64")
        f32 = steps["case"] == "float32, dropout off"
        control = steps["rel_diff_kernels"].max() if "rel_diff_kernels" in steps else float("nan")
        rows.append([link(name), f"{steps[f64]['rel_diff'].median():.1e} / {steps[f64]['rel_diff'].max():.1e}",
                     "-" if pd.isna(control) else f"{control:.1e}", f"{steps[f32]['rel_diff'].max():.1e}",
                     f"{grads['relative'].max():.1e}", int(inter["differ"].sum()), len(by)])
    return table(["report", "float64: median / max relative loss difference over 120 steps",
                  "control: numpy_nn's reference kernels against its fast ones, max", "float32 (no dropout), max",
                  "gradients against autograd, largest relative difference", "interchange: predictions that differ",
                  "cases"], rows)


def precision() -> str:
    rows = []
    for name in REPORTS:
        p = pd.read_csv(report(name) / "precision.csv").set_index("dtype")
        rows.append([link(name), f"{p.loc['float32', 'numpy_over_pytorch']:.2f}x",
                     f"{p.loc['float64', 'numpy_over_pytorch']:.2f}x",
                     f"{p.loc['float64', 'numpy_epoch_s'] / p.loc['float32', 'numpy_epoch_s']:.2f}x",
                     f"{p.loc['float64', 'pytorch_epoch_s'] / p.loc['float32', 'pytorch_epoch_s']:.2f}x"])
    return table(["report", "numpy_nn / pytorch_nn, float32", "numpy_nn / pytorch_nn, float64",
                  "float64 / float32, numpy_nn", "float64 / float32, pytorch_nn"], rows)


def scaling() -> str:
    s = pd.read_csv(RESULTS / "scaling.csv").pivot(index="batch_size", columns="implementation", values="epoch_s")
    ratio = s["numpy"] / s["pytorch"]
    faster = [int(b) for b in ratio.index if ratio[b] < 1]
    sizes = f"batch sizes {int(ratio.index.min())} to {int(ratio.index.max())}"
    some = f"numpy_nn is faster at batch sizes {', '.join(map(str, faster))} of {sizes}, slower at the others"
    said = (f"numpy_nn is faster at every one of {len(ratio)} {sizes}" if len(faster) == len(ratio) else
            some if faster else f"numpy_nn is slower at every one of {len(ratio)} {sizes}")
    return (f"The default MLP against batch size: {said}: {ratio.min():.2f}x to {ratio.max():.2f}x of pytorch_nn's "
            f"median epoch (results/scaling.csv).")


BLOCKS = {"machines": machines, "summary": summary, "verdict": verdict, "proof": proof, "speed": speed,
          "bench-machines": bench_machines, "automates": automates, "layers": layers, "precision": precision,
          "scaling": scaling, "levers": levers, "recurrent": lambda: kernels("lstm"),
          "attention": lambda: kernels("vit"), "gpu": gpu}


def wrapped(text: str, width: int = 120) -> str:
    """Prose lines folded at width (a bullet's continuation indented under it); table rows left whole."""
    def fold(line):
        if line.startswith("|") or len(line) <= width:
            return line
        return textwrap.fill(line, width, subsequent_indent="  " if line.startswith("- ") else "",
                             break_long_words=False, break_on_hyphens=False)
    return "\n".join(fold(line) for line in text.split("\n"))


def render(text: str) -> str:
    """text with every block between markers written anew."""
    def block(match):
        name = match[1]
        return f"<!-- begin {name} -->\n{wrapped(BLOCKS[name]())}\n<!-- end {name} -->"
    return re.sub(r"<!-- begin ([\w-]+) -->.*?<!-- end \1 -->", block, text, flags=re.S)


def main() -> int:
    ANALYSIS.write_text(render(ANALYSIS.read_text()))
    print(f"wrote {ANALYSIS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
