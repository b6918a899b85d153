"""ANALYSIS.md's speed tables, written from the benchmarks' JSON (results/benchmarks/, epoch_bench.py's --json) and the
levers' table (results/levers.csv): the blocks comparison/analysis.py renders beside the reports' own."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from comparison.tables import table


BENCHMARKS = {"cnn": "cnn preset's network", "cnn-fast": "cnn-fast preset's network", "mlp": "default MLP",
              "lstm": "lstm preset's network", "vit": "vit preset's network"}
KERNELS = {"lstm": {"numpy_nn one process": "numpy_nn, recurrent.py's loop, one process",
                    "numpy_nn": "numpy_nn, each batch over 2 processes (the default)",
                    "pytorch_nn": "pytorch_nn (nn.LSTM, oneDNN)"},
           "vit": {"numpy_nn reference": "numpy_nn, reference layers (attention.py), one process",
                   "numpy_nn one process": "numpy_nn, fast attention (fast_attention.py), one process",
                   "numpy_nn": "numpy_nn, fast attention, each batch over 2 processes (the default)",
                   "pytorch_nn": "pytorch_nn (nn.TransformerEncoderLayer)"}}  # {epoch_bench's variant: its row}
GPU = ("mlp", "cnn")
RESULTS = Path(__file__).resolve().parents[1] / "results"


def bench(name: str, way: str) -> dict:
    return json.loads((RESULTS / "benchmarks" / f"{name}-{way}.json").read_text())


def by_batch(b: dict) -> dict:
    """A benchmark's rows as {batch size: {variant: row}}, batch sizes in the order measured."""
    return {bs: {x["variant"]: x for x in b["rows"] if x["batch_size"] == bs}
            for bs in dict.fromkeys(x["batch_size"] for x in b["rows"])}


def speed() -> str:
    rows = []
    for name, what in BENCHMARKS.items():
        for way in ("own", "forced"):
            b = bench(name, way)
            for bs, r in by_batch(b).items():
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
    def row(n):
        b = bench(n, "own")
        return [BENCHMARKS[n], f"{b['machine']}, {b['threads']} threads", f"{b['train_samples']:,}", b["repeats"],
                f"`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE {b['command']}`; forced: "
                f"`{bench(n, 'forced')['command']}` with OPENBLAS_CORETYPE=Haswell",
                f"results/benchmarks/{n}-own.json, {n}-forced.json"]
    return table(["network", "machine (own kernels)", "images an epoch", "epochs (median of)", "commands", "files"],
                 [row(n) for n in BENCHMARKS])


def automates() -> str:
    """What each of torch's switches buys: the bare loops and pytorch_nn's variants of the own-kernel benchmarks."""
    rows = []
    for name, what in ((n, BENCHMARKS[n]) for n in ("mlp", "cnn", "cnn-fast")):  # (the other nets: as the MLP)
        bs, rows_by_variant = next(iter(by_batch(bench(name, "own")).items()))
        r = {v: x["median_s"] for v, x in rows_by_variant.items()}
        steps = [("bare torch", "a minimal loop: autograd, torch.optim's for-each optimizer"),
                 ("bare torch fused", "the fused optimizer (one kernel for all parameters)"),
                 ("bare torch c-last", "channels_last memory (oneDNN's fast path)"),
                 ("pytorch_nn", "pytorch_nn itself (its Trainer, the epoch loop)")]
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


def kernels(name: str) -> str:
    """A preset's network: numpy_nn in one process (its reference layers, its fast ones) and over two, pytorch_nn."""
    own = bench(name, "own")
    peak, rows, base = own["matmul_peak_gflops"], [], next(x for x in own["rows"] if x["variant"] == "pytorch_nn")
    for variant, label in KERNELS[name].items():
        r = next(x for x in own["rows"] if x["variant"] == variant)
        rows.append([label, r["batch_size"], f"{r['median_s']:.3f}", f"{r['median_s'] / base['median_s']:.2f}x",
                     f"{r['gflops']:.0f} ({r['gflops'] / peak:.0%})"])
    return (table([f"{name} preset's network", "batch", "epoch (s)", "against pytorch_nn", "GFLOP/s (% of peak)"], rows)
            + f"\n\n{own['machine']}, {own['threads']} threads, {own['train_samples']:,} images an epoch, median of "
              f"{own['repeats']} epochs, interleaved (results/benchmarks/{name}-own.json).")


def gpu() -> str:
    """The twins on a GPU: pytorch_nn on CUDA, numpy_nn's own math on CuPy (epoch_bench --device cuda)."""
    rows = []
    for name in GPU:
        b = bench(name, "cuda")
        for bs, r in by_batch(b).items():
            rows.append([BENCHMARKS[name], bs, f"{b['train_samples']:,}", f"{r['numpy_nn']['median_s']:.3f}",
                         f"{r['pytorch_nn']['median_s']:.3f}",
                         f"**{r['numpy_nn']['median_s'] / r['pytorch_nn']['median_s']:.2f}x**",
                         f"{r['numpy_nn']['gflops']:.0f} / {r['pytorch_nn']['gflops']:.0f}"])
    b = bench(GPU[0], "cuda")
    return (table(["network", "batch", "images an epoch", "numpy_nn on CuPy, epoch (s)",
                   "pytorch_nn on CUDA, epoch (s)", "numpy_nn / pytorch_nn", "GFLOP/s, numpy_nn / pytorch_nn"], rows)
            + f"\n\n{b['machine'].replace('; ', ' on a host with ', 1)}; float32 matmul peak "
              f"{b['matmul_peak_gflops'] / 1000:.1f} TFLOP/s; median of {b['repeats']} epochs, interleaved "
              f"(results/benchmarks/{'-cuda.json, '.join(GPU)}-cuda.json).")


def levers() -> str:
    df = pd.read_csv(RESULTS / "levers.csv")
    rows = [[r.lever, r.network, r.batch, f"{r.without_ms:.2f}", f"{r.with_ms:.2f}",
             f"{r.with_ms / r.without_ms - 1:+.1%}", r.verdict] for r in df.itertuples()]
    return table(["lever", "network", "batch (one process's)", "step without (ms)", "step with (ms)", "change", "verdict"],
                 rows)
