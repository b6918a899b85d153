"""Where a training step's time goes, phase by phase (and layer by layer for numpy_nn).

    python benchmarks/phases.py [--batch-sizes 64,512] [--steps 300]
                                [any model flag of train.py: --preset cnn, --model cnn --channels 24,32, ...]

The network: train.py's flags over epoch_bench.py's defaults (momentum SGD, dropout off), as given.

Median microseconds per step over --steps steps of each twin on real batches, float32, after a warm-up.
CPU only: every phase below is synchronous there, so wall-clock timing per phase is honest.
"""
import argparse
import itertools
import statistics
import time
from collections import defaultdict

import torch
from threadpoolctl import threadpool_limits

from common import cli, machine
from epoch_bench import trainer_args
import data_loader
import numpy_nn.train
import pytorch_nn.train
from numpy_nn.losses import softmax_cross_entropy
from pytorch_nn.losses import cross_entropy as torch_cross_entropy


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
    model, opt = trainer.model, trainer.opt
    out, stamps = x, []
    layers = list(model.named_children())
    for name, module in layers:
        out = timed(per_layer, f"forward {name}", module, out)
        out.register_hook(lambda grad, name=name: stamps.append((name, time.perf_counter())))
    logits = out
    loss = timed(times, "loss", torch_cross_entropy, logits, y)
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


def profile(impl, batch_size, steps, data, opts):
    args = trainer_args(opts.model_argv, batch_size)
    trainer = (numpy_nn.train if impl == "numpy" else pytorch_nn.train).Trainer(args)
    x, y = trainer.place(data.x_train, data.y_train)
    times, per_layer = defaultdict(list), defaultdict(list)
    batches = (b for epoch in itertools.count() for b in data_loader.batches(x, y, batch_size, 1, epoch))
    for step in range(steps + 20):
        xb, yb = timed(times, "batch gather", next, batches)
        if impl == "numpy":
            numpy_step(trainer, xb, yb, times, per_layer)
        else:
            torch_step(trainer, xb, yb, times, per_layer)
        if step == 19:  # warm-up done
            times.clear(), per_layer.clear()
    return ({k: statistics.median(v) * 1e6 for k, v in times.items()},
            {k: statistics.median(v) * 1e6 for k, v in per_layer.items()})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog="Every other flag is a train.py model flag (see the module's docstring).")
    p.add_argument("--batch-sizes", type=lambda s: [int(v) for v in s.split(",")], default=[64, 512])
    p.add_argument("--steps", type=int, default=300)
    opts, opts.model_argv = p.parse_known_args(argv)
    args = trainer_args(opts.model_argv)  # the model flags checked (one line on a bad one) before anything runs
    machine.keep_freed_memory()
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    data = cli.load_data(args)
    print(f"{machine.cpu_name()}, {args.threads} threads, {args.dtype}, {' '.join(opts.model_argv) or 'default flags'}; "
          f"median microseconds per step over {opts.steps} steps")
    for bs in opts.batch_sizes:
        results = {impl: profile(impl, bs, opts.steps, data, opts) for impl in ("numpy", "pytorch")}
        phases = ["batch gather", "forward", "loss", "zero_grad", "backward", "optimizer step", ".item() + accuracy"]
        print(f"\nbatch {bs}\n{'phase':22s} {'numpy_nn':>10s} {'pytorch_nn':>11s}")
        for phase in phases:
            a, b = (results[i][0].get(phase) for i in ("numpy", "pytorch"))
            print(f"{phase:22s} {'' if a is None else f'{a:10.1f}':>10s} {'' if b is None else f'{b:11.1f}':>11s}")
        print(f"{'sum':22s} {sum(v for k, v in results['numpy'][0].items() if k in phases):10.1f} "
              f"{sum(v for k, v in results['pytorch'][0].items() if k in phases):11.1f}")
        layers = dict.fromkeys(k.split(" ", 1)[1] for k in results["numpy"][1])
        print(f"\n{'per layer':22s} {'numpy_nn fwd':>12s} {'bwd':>8s} {'pytorch_nn fwd':>15s} {'bwd':>8s}")
        for name in layers:
            cells = [results[i][1].get(f"{d} {name}") for i in ("numpy", "pytorch") for d in ("forward", "backward")]
            print(f"{name:22s} " + " ".join(f"{'-' if c is None else f'{c:.0f}':>{w}s}" for c, w in zip(cells, (12, 8, 15, 8))))


if __name__ == "__main__":
    main()
