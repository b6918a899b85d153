"""ANALYSIS.md's figures, written from the committed reports: `python -m comparison.analysis` rewrites each block
between <!-- begin NAME --> and <!-- end NAME --> from results/ (the compare.py reports' CSV files, the benchmarks'
JSON under results/benchmarks/, the speed levers in results/levers.csv); tests/test_docs.py checks that the committed
ANALYSIS.md is what it would write, so a figure in those blocks cannot go stale. Prose outside them gives no figure."""
from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

import pandas as pd

from comparison.tables import fmt

ROOT = Path(__file__).resolve().parents[1]
RESULTS, ANALYSIS = ROOT / "results", ROOT / "ANALYSIS.md"
REPORTS = {".": "MLP (default preset)", "fast": "MLP, fast preset", "best": "MLP, best preset", "lenet": "LeNet-5 shapes",
           "cnn": "CNN, cnn preset", "cnn-fast": "CNN, cnn-fast preset (speedrun)",
           "mnist-rnn": "LSTM, mnist-rnn preset (pytorch/examples)", "lstm": "LSTM, lstm preset"}
BENCHMARKS = {"cnn": "cnn preset's network", "cnn-fast": "cnn-fast preset's network", "mlp": "default MLP",
              "lstm": "lstm preset's network"}


def pct(v):
    return f"{100 * v:.2f} %"


def table(header: list[str], rows: list[list]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


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


def bench(name: str, way: str) -> dict:
    return json.loads((RESULTS / "benchmarks" / f"{name}-{way}.json").read_text())


def speed() -> str:
    rows = []
    for name, what in BENCHMARKS.items():
        for way in ("own", "forced"):
            b = bench(name, way)
            for bs in dict.fromkeys(r["batch_size"] for r in b["rows"]):
                r = {x["variant"]: x for x in b["rows"] if x["batch_size"] == bs}
                peak = b["matmul_peak_gflops"]
                one = r.get("numpy_nn one process")
                rows.append([what, bs, b["machine"].split("; ", 1)[1], f"{r['numpy_nn']['median_s']:.3f}",
                             "-" if one is None else f"{one['median_s']:.3f}", f"{r['pytorch_nn']['median_s']:.3f}",
                             f"**{r['numpy_nn']['median_s'] / r['pytorch_nn']['median_s']:.2f}x**",
                             f"{r['numpy_nn']['gflops']:.0f} ({r['numpy_nn']['gflops'] / peak:.0%})",
                             f"{r['pytorch_nn']['gflops']:.0f} ({r['pytorch_nn']['gflops'] / peak:.0%})", f"{peak:.0f}"])
    return table(["network", "batch", "NumPy's BLAS", "numpy_nn epoch (s)", "numpy_nn in one process (s)",
                  "pytorch_nn epoch (s)", "numpy_nn / pytorch_nn", "numpy_nn GFLOP/s (% of peak)",
                  "pytorch_nn GFLOP/s (% of peak)", "matmul peak GFLOP/s"], rows)


def bench_machines() -> str:
    def row(n, way):
        b = bench(n, way)
        prefix = "" if "forced" in b["machine"] else "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "
        return [BENCHMARKS[n], f"{b['machine']}, {b['threads']} threads", f"{b['train_samples']:,}", b["repeats"],
                f"`{prefix}{b['command']}`", f"results/benchmarks/{n}-{way}.json"]
    return table(["network", "machine", "images an epoch", "epochs (median of)", "command", "file"],
                 [row(n, way) for n in BENCHMARKS for way in ("own", "forced")])


def automates() -> str:
    """What each of torch's switches buys: the bare loops and pytorch_nn's variants of the own-kernel benchmarks."""
    rows = []
    for name, what in BENCHMARKS.items():
        b = bench(name, "own")
        bs = b["rows"][0]["batch_size"]
        r = {x["variant"]: x["median_s"] for x in b["rows"] if x["batch_size"] == bs}
        steps = [("bare torch", "a minimal loop: autograd, torch.optim's for-each optimizer"),
                 ("bare torch fused", "the fused optimizer (one kernel for all parameters)"),
                 ("bare torch c-last", "channels_last memory (oneDNN's fast path)"),
                 ("pytorch_nn", "pytorch_nn itself (its Trainer, the epoch loop)"),
                 ("pytorch_nn for-each", "pytorch_nn without the fused optimizer")]
        base = r["bare torch"]
        rows += [[what, bs, label, f"{r[v]:.3f}", f"{base / r[v]:.2f}x"] for v, label in steps if v in r]
        if "bare numpy" in r:
            rows.append([what, bs, "bare NumPy loop (the same math inline) against numpy_nn",
                         f"{r['bare numpy']:.3f} / {r['numpy_nn']:.3f}", "-"])
    return table(["network", "batch", "variant", "epoch (s)", "speed against the bare torch loop"], rows)


def layers() -> str:
    df = pd.read_csv(RESULTS / "cnn" / "layers.csv")
    wide = df.pivot(index="layer", columns="implementation", values="total_ms").reindex(dict.fromkeys(df["layer"]))
    ran = df.groupby("implementation")[["processes", "threads"]].first()
    rows = [[layer, f"{v['numpy']:.2f}", f"{v['pytorch']:.2f}", f"{v['numpy'] / v['pytorch']:.2f}x"]
            for layer, v in wide.iterrows()]
    rows.append(["whole step", f"{wide['numpy'].sum():.2f}", f"{wide['pytorch'].sum():.2f}",
                 f"{wide['numpy'].sum() / wide['pytorch'].sum():.2f}x"])
    return (table(["layer (cnn preset, batch 128)", "numpy_nn ms", "pytorch_nn ms", "numpy_nn / pytorch_nn"], rows)
            + f"\n\nnumpy_nn: one of its {ran.loc['numpy', 'processes']} processes, {ran.loc['numpy', 'threads']} BLAS "
              f"thread each, on its share of the batch; pytorch_nn: the whole batch on {ran.loc['pytorch', 'threads']} "
              f"threads (results/cnn/layers.csv).")


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
    rows = [[int(b), f"{s.loc[b, 'numpy']:.2f}", f"{s.loc[b, 'pytorch']:.2f}", f"{ratio[b]:.2f}x"] for b in s.index]
    said = ("numpy_nn is faster at every batch size." if len(faster) == len(ratio) else
            f"numpy_nn is faster at batch sizes {', '.join(map(str, faster))} and slower at the others." if faster else
            "numpy_nn is slower at every batch size.")
    return table(["batch size (default MLP)", "numpy_nn epoch (s)", "pytorch_nn epoch (s)", "numpy_nn / pytorch_nn"],
                 rows) + f"\n\n{said} (results/scaling.csv)"


def recurrent() -> str:
    """The lstm preset's network: numpy_nn's reference loops, its fast layer in one process and over two, pytorch_nn."""
    own = ref = bench("lstm", "own")
    peak, rows, torch_row = own["matmul_peak_gflops"], [], next(x for x in own["rows"] if x["variant"] == "pytorch_nn")
    for label, b, variant in (("numpy_nn, reference layers (recurrent.py), one process", ref, "numpy_nn reference"),
                              ("numpy_nn, fast layer (fast_recurrent.py), one process", own, "numpy_nn one process"),
                              ("numpy_nn, fast layer, each batch over 2 processes (the default)", own, "numpy_nn"),
                              ("pytorch_nn (nn.LSTM, oneDNN)", own, "pytorch_nn")):
        r, base = next(x for x in b["rows"] if x["variant"] == variant), torch_row["median_s"]
        rows.append([label, r["batch_size"], f"{r['median_s']:.3f}", f"{r['median_s'] / base:.2f}x",
                     f"{r['gflops']:.0f} ({r['gflops'] / peak:.0%})"])
    return (table(["lstm preset's network", "batch", "epoch (s)", "against pytorch_nn", "GFLOP/s (% of peak)"], rows)
            + f"\n\n{own['machine']}, {own['threads']} threads, {own['train_samples']:,} images an epoch, median of "
              f"{own['repeats']} epochs, interleaved (results/benchmarks/lstm-own.json).")


def levers() -> str:
    df = pd.read_csv(RESULTS / "levers.csv")
    rows = [[r.lever, r.network, r.batch, f"{r.without_ms:.2f}", f"{r.with_ms:.2f}",
             f"{r.with_ms / r.without_ms - 1:+.1%}", r.verdict] for r in df.itertuples()]
    return table(["lever", "network", "batch (one process's)", "step without (ms)", "step with (ms)", "change", "verdict"],
                 rows)


BLOCKS = {"machines": machines, "summary": summary, "verdict": verdict, "proof": proof, "speed": speed, "bench-machines": bench_machines,
          "automates": automates, "layers": layers, "precision": precision, "scaling": scaling, "levers": levers,
          "recurrent": recurrent}


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
