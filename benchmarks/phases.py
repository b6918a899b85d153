"""Where a training step's time goes, phase by phase (and layer by layer for numpy_nn).

    python benchmarks/phases.py [--batch-sizes 64,512] [--steps 300]
                                [any model flag of train.py: --preset cnn, --model cnn --channels 24,32, ...]

The network: train.py's flags over epoch_bench.py's defaults (momentum SGD, dropout off), as given.

Median microseconds per step over --steps steps of each twin on real batches, float32, after a warm-up.
CPU only: every phase below is synchronous there, so wall-clock timing per phase is honest.
"""
import argparse

import torch
from threadpoolctl import threadpool_limits

from common import cli, flags, loop, machine
from epoch_bench import trainer_args

import numpy_nn.train
import pytorch_nn.train
from comparison import layers as layers_report


def profile(impl, batch_size, steps, data, opts):
    args = trainer_args(opts.model_argv, batch_size)
    args.steps_per_epoch = loop.batches_per_epoch(len(data.x_train), args)  # (data was loaded once, for every size)
    args.epochs = max(args.epochs, -(-(steps + 20) // args.steps_per_epoch))  # a per-batch schedule covers the steps
    return layers_report.profile((numpy_nn.train if impl == "numpy" else pytorch_nn.train).Trainer(args), data, args, steps)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog="Every other flag is a train.py model flag (see the module's docstring).")
    p.add_argument("--batch-sizes", type=flags.batch_sizes, default=[64, 512])
    p.add_argument("--steps", type=int, default=300)
    opts, opts.model_argv = p.parse_known_args(argv)
    args = trainer_args(opts.model_argv)  # the model flags checked (one line on a bad one) before anything runs
    machine.keep_freed_memory()
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    data = cli.load_data(args)
    print(*machine.forced_note(), sep="\n")
    print(f"{machine.cpu_label()}, {args.threads} threads, {args.dtype}, {' '.join(opts.model_argv) or 'default flags'}; "
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
        results["pytorch"] = (results["pytorch"][0], layers_report.aligned(results["pytorch"][1], layers))
        print(f"\n{'per layer':22s} {'numpy_nn fwd':>12s} {'bwd':>8s} {'pytorch_nn fwd':>15s} {'bwd':>8s}")
        for name in layers:
            cells = [results[i][1].get(f"{d} {name}") for i in ("numpy", "pytorch") for d in ("forward", "backward")]
            print(f"{name:22s} " + " ".join(f"{'-' if c is None else f'{c:.0f}':>{w}s}" for c, w in zip(cells, (12, 8, 15, 8))))


if __name__ == "__main__":
    main()
