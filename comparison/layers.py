"""Where a training step's time goes, layer by layer, in both twins: the report's layers section (layers.csv,
layers.png) and benchmarks/phases.py. CPU only: every kernel has finished when the call returns there, so
wall-clock time per layer is honest. Medians over the steps after a warm-up.
"""
from __future__ import annotations

import itertools
import statistics
import time
from collections import defaultdict

import pandas as pd

import data_loader
from comparison import plots
from comparison.tables import markdown_table, write_csv
from numpy_nn.losses import softmax_cross_entropy


def timed(times, name, fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    times[name].append(time.perf_counter() - t)
    return out


def numpy_step(trainer, x, y, times, per_layer):
    model, opt = trainer.model, trainer.opt
    out = x
    for name, layer in model.layers.items():
        out = timed(per_layer, f"forward {name}", layer.forward, out)
    loss, dlogits = timed(times, "loss", softmax_cross_entropy, out, y)
    dout = dlogits
    for name, layer in reversed(model.layers.items()):
        if layer is model.first:
            timed(per_layer, f"backward {name}", layer.backward, dout, False)
            break
        dout = timed(per_layer, f"backward {name}", layer.backward, dout)
    timed(times, "optimizer step", opt.step)
    timed(times, ".item() + accuracy", lambda: (float(loss), int((out.argmax(axis=1) == y).sum())))
    for phase in ("forward", "backward"):
        times[phase].append(sum(v[-1] for k, v in per_layer.items() if k.startswith(phase)))


def torch_step(trainer, x, y, times, per_layer):
    """As numpy_step: each module's forward timed as it runs; each layer's backward from the moments autograd
    delivers the gradient of its output and of its input (hooks on the activations; on the CPU every kernel
    has finished when the hook runs)."""
    from pytorch_nn.losses import cross_entropy
    model, opt = trainer.model, trainer.opt
    out, stamps = x, []
    layers = list(model.named_children())
    for name, module in layers:
        out = timed(per_layer, f"forward {name}", module, out)
        if out.requires_grad:  # (a layer before the first with parameters, input dropout say, has no backward)
            out.register_hook(lambda grad, name=name: stamps.append((name, time.perf_counter())))
    logits = out
    loss = timed(times, "loss", cross_entropy, logits, y)
    timed(times, "zero_grad", opt.zero_grad, True)
    start = time.perf_counter()
    loss.backward()
    times["backward"].append(time.perf_counter() - start)
    ends = [t for _, t in stamps[1:]] + [start + times["backward"][-1]]  # layer L ends when L-1's output grad is ready
    for (name, t0), t1 in zip(stamps, ends):
        per_layer[f"backward {name}"].append(t1 - t0)
    times["forward"].append(sum(v[-1] for k, v in per_layer.items() if k.startswith("forward")))
    timed(times, "optimizer step", opt.step)
    timed(times, ".item() + accuracy", lambda: (loss.item(), int((logits.argmax(dim=1) == y).sum())))


def profile(trainer, data, args, steps, warmup=20):
    """(phases, per_layer): median microseconds per step of each phase ("forward", "loss", "backward", "optimizer
    step", ...) and of each layer's "forward NAME" and "backward NAME", over `steps` steps after `warmup`."""
    x, y = trainer.place(data.x_train, data.y_train)
    times, per_layer = defaultdict(list), defaultdict(list)
    step_fn = numpy_step if trainer.name == "numpy" else torch_step
    share = getattr(trainer, "processes", 1)  # numpy_nn sharing its batches: one process's rows, as it runs them
    batches = (b for epoch in itertools.count() for b in data_loader.batches(x, y, args.batch_size, 1, epoch))
    for step in range(steps + warmup):
        xb, yb = timed(times, "batch gather", next, batches)
        step_fn(trainer, xb[:len(xb) // share], yb[:len(yb) // share], times, per_layer)
        if step == warmup - 1:
            times.clear(), per_layer.clear()
    return ({k: statistics.median(v) * 1e6 for k, v in times.items()},
            {k: statistics.median(v) * 1e6 for k, v in per_layer.items()})


def aligned(per_layer: dict, names) -> dict:
    """One twin's per-layer medians under the other's layer names: where numpy_nn's fast kernels do two layers in
    one pass ("pool1+conv1_relu"), pytorch_nn's two (pool1, conv1_relu) are added up into that row."""
    out = dict(per_layer)
    for name in (n for n in names if "+" in n):
        for d in ("forward", "backward"):
            parts = [f"{d} {part}" for part in name.split("+")]
            if all(p in out for p in parts):
                out[f"{d} {name}"] = sum(out.pop(p) for p in parts)
    return out


def layers_job(argv: list[str], steps: int) -> pd.DataFrame:
    """Both twins on the compared network (seed 1, the CPU): milliseconds per step, per layer, forward and
    backward, then the loss and the optimizer step; run in a worker process."""
    from common import cli
    from comparison.runs import parse_run_args, trainer_module
    args = parse_run_args(None, "cpu", [*argv, "--seed", "1"])
    cli.threadpool_limits(args.threads)
    data, rows, names = cli.load_data(args), [], []
    for impl in ("numpy", "pytorch"):
        trainer = trainer_module(impl).Trainer(args)
        phases, per_layer = profile(trainer, data, args, steps, warmup=min(20, steps))
        ran = {"processes": getattr(trainer, "processes", 1), "threads": getattr(trainer, "blas_threads", args.threads)}
        per_layer = aligned(per_layer, names)
        names = list(dict.fromkeys(k.split(" ", 1)[1] for k in per_layer))
        for name in names:
            rows.append({"implementation": impl, "layer": name, "forward_ms": per_layer.get(f"forward {name}", 0) / 1e3,
                         "backward_ms": per_layer.get(f"backward {name}", 0) / 1e3, **ran})
        rows += [{"implementation": impl, "layer": phase, "forward_ms": phases[phase] / 1e3, "backward_ms": 0.0, **ran}
                 for phase in ("loss", "optimizer step")]
    return pd.DataFrame(rows).assign(total_ms=lambda d: d["forward_ms"] + d["backward_ms"])


def section(df: pd.DataFrame, steps: int, batch_size: int, out) -> list[str]:
    """Write layers.csv and layers.png; return the report's Markdown, which says in two sentences where each twin
    spends its step and where the two differ most."""
    write_csv(df, out / "layers.csv")
    ran = {impl: (int(g["processes"].iloc[0]), int(g["threads"].iloc[0])) for impl, g in df.groupby("implementation")}

    def ran_how(processes, threads):
        on = f"on {threads} thread{'s' * (threads > 1)}"
        return (f"{batch_size // processes} of the {batch_size} images {on}, as each of its {processes} processes runs "
                f"its share" if processes > 1 else f"{batch_size} images {on}")
    how = {impl: ran_how(*ran[impl]) for impl in ran}
    plots.plot_layers(df, out / "layers.png", f"numpy_nn: {how['numpy']}; pytorch_nn: {how['pytorch']}")
    wide = df.pivot(index="layer", columns="implementation", values="total_ms").reindex(dict.fromkeys(df["layer"]))
    totals = wide.sum()
    top = {impl: wide[impl].idxmax() for impl in ("numpy", "pytorch")}
    differ = (wide["numpy"] - wide["pytorch"]).abs().idxmax()
    def named(layer):
        return f"{'the ' if layer in ('loss', 'optimizer step') else ''}{layer}"

    def where(impl):
        return named(top[impl])
    said = (f"numpy_nn spends {wide.loc[top['numpy'], 'numpy'] / totals['numpy']:.0%} of its {totals['numpy']:.1f} ms "
            f"step in {where('numpy')}, pytorch_nn {wide.loc[top['pytorch'], 'pytorch'] / totals['pytorch']:.0%} of its "
            f"{totals['pytorch']:.1f} ms in {where('pytorch')}. They differ most at {named(differ)}: "
            f"{wide.loc[differ, 'numpy']:.2f} ms in numpy_nn against {wide.loc[differ, 'pytorch']:.2f} ms in pytorch_nn "
            f"({wide.loc[differ, 'numpy'] / max(wide.loc[differ, 'pytorch'], 1e-9):.2f}x).")
    table = wide.reset_index().rename(columns={"numpy": "numpy_nn (ms)", "pytorch": "pytorch_nn (ms)"})
    table["numpy_over_pytorch"] = table["numpy_nn (ms)"] / table["pytorch_nn (ms)"]
    return ["## Where the time goes, layer by layer\n",
            f"Both twins on this network, seed 1, the CPU: median milliseconds per step over {steps} steps of "
            f"{batch_size} after a warm-up, forward and backward of every layer, then the loss and the optimizer step "
            f"(layers.csv): numpy_nn {how['numpy']}, pytorch_nn {how['pytorch']}"
            + (" (a shared step adds the processes' meetings and the gradients' sum, which the epoch times include)"
               if ran["numpy"][0] > 1 else "") + f". {said}\n", markdown_table(table), "",
            "![layers](layers.png)\n"]
