"""How much do the twins' abstractions cost? One training epoch of each, against a bare loop of the same math.

    python benchmarks/epoch_bench.py [--batch-sizes 64,512] [--repeats 5] [--threads N] [--json]

In one process, interleaved (so drift on a shared machine hits all four alike), median of --repeats epochs:
  bare numpy   the network written inline as a few dozen lines of NumPy: no layers, no dicts, no loop helper
  numpy_nn     numpy_nn's Trainer through loop.train_epoch (what `numpy_nn/train.py` times)
  bare torch   a minimal nn.Sequential + torch.optim loop: no .item(), no accuracy, no loop helper
  pytorch_nn   pytorch_nn's Trainer through loop.train_epoch
All float32, the same batches (data_loader.batches), SGD with momentum 0.9 (or --optimizer adam).
Speed is measured here, never asserted in a test: this is a benchmark.
"""
import argparse
import json
import statistics
import sys
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from common import flags, loop, machine
import data_loader
import numpy_nn.train
import pytorch_nn.train
from numpy_nn.model import MLP


def bare_numpy(data, args):
    """The same network and update as numpy_nn, inline: the floor numpy_nn's abstractions are measured against."""
    (W1, b1), (W2, b2), (W3, b3) = (
        (p[f"fc{i}.W"].copy(), p[f"fc{i}.b"].copy()) for p in [MLP(args.hidden, seed=args.seed).params] for i in (1, 2, 3))
    params = [W1, b1, W2, b2, W3, b3]
    state = [np.zeros_like(p) for p in params]
    state2 = [np.zeros_like(p) for p in params]
    lr, t = args.lr, [0]

    def epoch(e):
        for x, y in data_loader.batches(data.x_train, data.y_train, args.batch_size, args.seed, e):
            n = len(y)
            h1 = x @ W1 + b1
            np.maximum(h1, 0, out=h1)
            h2 = h1 @ W2 + b2
            np.maximum(h2, 0, out=h2)
            z = h2 @ W3 + b3
            z -= z.max(axis=1, keepdims=True)
            np.exp(z, out=z)
            z /= z.sum(axis=1, keepdims=True)
            z[np.arange(n), y] -= 1
            z /= n
            dh2 = z @ W3.T
            dh2 *= h2 > 0
            dh1 = dh2 @ W2.T
            dh1 *= h1 > 0
            grads = [x.T @ dh1, dh1.sum(0), h1.T @ dh2, dh2.sum(0), h2.T @ z, z.sum(0)]
            if args.optimizer == "sgd":
                for p, g, buf in zip(params, grads, state):
                    buf *= 0.9
                    buf += g
                    p -= lr * buf
            else:
                t[0] += 1
                c1, c2 = 1 - 0.9 ** t[0], (1 - 0.999 ** t[0]) ** 0.5
                for p, g, m, v in zip(params, grads, state, state2):
                    m += 0.1 * (g - m)
                    v *= 0.999
                    v += 0.001 * g * g
                    p -= (lr / c1) * (m / (np.sqrt(v) / c2 + 1e-8))
    return epoch


def bare_torch(data, args):
    """A minimal PyTorch loop of the same network: the floor pytorch_nn is measured against."""
    model = pytorch_nn.model.build(args)
    opt = (torch.optim.SGD(model.parameters(), args.lr, momentum=0.9) if args.optimizer == "sgd"
           else torch.optim.Adam(model.parameters(), args.lr))

    def step(x, y):  # a function, so that each step's graph is freed before the next one allocates
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def epoch(e):
        for x, y in data_loader.batches(data.x_train, data.y_train, args.batch_size, args.seed, e):
            step(x, y)
    return epoch


def framework(module, data, args):
    trainer = module.Trainer(args)
    x, y = trainer.place(data.x_train, data.y_train)
    return lambda e: loop.train_epoch(trainer, x, y, args, e)


def trainer_args(batch_size, opts):
    parser = flags.make_parser("bench")
    pytorch_nn.train.add_flags(parser)
    argv = ["--batch-size", str(batch_size), "--threads", str(opts.threads), "--quiet", "--device", "cpu", "--dropout", "0",
            "--optimizer", opts.optimizer, "--lr", "0.01" if opts.optimizer == "sgd" else "1e-3"]
    if opts.optimizer == "sgd":
        argv += ["--momentum", "0.9"]
    return flags.parse_args(parser, argv)


VARIANTS = {"bare numpy": bare_numpy, "numpy_nn": lambda d, a: framework(numpy_nn.train, d, a),
            "bare torch": bare_torch, "pytorch_nn": lambda d, a: framework(pytorch_nn.train, d, a)}


def run(opts):
    torch.set_num_threads(opts.threads)
    threadpool_limits(opts.threads)
    data = data_loader.load_mnist(opts.data_dir)
    peak = machine.matmul_peak_gflops(opts.threads)
    flops = machine.train_flops_per_sample((128, 64)) * len(data.x_train)
    rows = []
    for bs in opts.batch_sizes:
        args = trainer_args(bs, opts)
        epochs = {name: make(data, args) for name, make in VARIANTS.items()}
        times = {name: [] for name in VARIANTS}
        for name, epoch in epochs.items():  # warm-up: allocator, BLAS threads, torch's first-call costs
            epoch(0)
        names = list(epochs)
        for r in range(opts.repeats):
            for name in names[r % 4:] + names[:r % 4]:  # rotate: no variant always follows the same one
                epoch = epochs[name]
                t = time.perf_counter()
                epoch(r + 1)
                times[name].append(time.perf_counter() - t)
        for name in VARIANTS:
            med = statistics.median(times[name])
            rows.append({"variant": name, "batch_size": bs, "median_s": med, "min_s": min(times[name]),
                         "max_s": max(times[name]), "gflops": flops / med / 1e9})
        for fw, bare in (("numpy_nn", "bare numpy"), ("pytorch_nn", "bare torch")):
            f, b = (next(r for r in rows if r["variant"] == v and r["batch_size"] == bs) for v in (fw, bare))
            f["ratio_to_bare"] = f["median_s"] / b["median_s"]
    return {"machine": machine.cpu_name(), "threads": opts.threads, "optimizer": opts.optimizer,
            "matmul_peak_gflops": peak, "train_samples": len(data.x_train), "repeats": opts.repeats,
            "numpy": np.__version__, "torch": torch.__version__, "rows": rows}


def table(result) -> str:
    lines = [f"{result['machine']}, {result['threads']} threads, float32, {result['optimizer']}, "
             f"{result['train_samples']} images/epoch, median of {result['repeats']}; "
             f"matmul peak {result['matmul_peak_gflops']:.0f} GFLOP/s",
             f"{'variant':12s} {'batch':>5s} {'median s':>9s} {'min-max s':>13s} {'ratio':>6s} {'GFLOP/s':>8s} {'% peak':>7s}"]
    for r in result["rows"]:
        ratio = f"{r['ratio_to_bare']:.2f}" if "ratio_to_bare" in r else ""
        lines.append(f"{r['variant']:12s} {r['batch_size']:5d} {r['median_s']:9.3f} {r['min_s']:6.3f}-{r['max_s']:<6.3f} "
                     f"{ratio:>6s} {r['gflops']:8.1f} {100 * r['gflops'] / result['matmul_peak_gflops']:6.1f}%")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-sizes", type=lambda s: [int(v) for v in s.split(",")], default=[64, 512])
    p.add_argument("--repeats", type=flags.number(int, 1), default=5)
    p.add_argument("--threads", type=flags.number(int, 1), default=machine.default_threads())
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    p.add_argument("--data-dir")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    opts = p.parse_args(argv)
    try:
        result = run(opts)
    except data_loader.DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2) if opts.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
