"""How much do the twins' abstractions cost, and what do PyTorch's switches buy? One training epoch of each
twin against bare loops of the same math (benchmarks/bare.py).

    python benchmarks/epoch_bench.py [--batch-sizes 64,512] [--repeats 5] [--compile] [--memory] [--json]
                                     [any model flag of train.py: --model cnn --channels 24,32 --hidden 256,
                                      --preset cnn, --optimizer adam, --kernels reference, --threads N,
                                      --device cuda (the twins on a GPU: pytorch_nn on CUDA, numpy_nn on CuPy)]

The network: train.py's flags over this benchmark's defaults (the default preset's MLP, or the cnn, lstm or vit
preset's network with --model cnn, rnn/lstm/gru or vit, unless the flags name a preset or the layers; float32,
dropout off, momentum SGD at 0.01 unless --optimizer is given, no decay).

In one process, interleaved (drift on a shared machine hits every variant alike; each epoch once the threads of the
one before are idle: machine.settle), median of --repeats epochs after a warm-up (compiling, if any; reported apart):
  bare numpy            the network written inline in NumPy
  numpy_nn              numpy_nn's Trainer through common/loop.py (what `numpy_nn/train.py` times)
  numpy_nn one process  (CNN, recurrent, ViT) the same with --processes 1, BLAS on every thread: what sharing the
                        batch buys
  numpy_nn reference    (ViT) one process of the reference layers: what the fast kernel buys
  bare torch            a minimal PyTorch loop, torch.optim's default (for-each) optimizer
  bare torch fused      the same with fused=True
  bare torch c-last     (CNN) the fused loop with the model and images in channels_last memory format
  pytorch_nn            pytorch_nn's Trainer (fused optimizer, its default)
  pytorch_nn for-each   with --no-fused
  pytorch_nn compiled   with --compile, and with --compile --no-fused (only with this script's --compile:
                        compiling takes a minute the first time, seconds once torch's cache has it)
ratio: each twin's median against the fastest bare loop of its own library. --memory adds each variant's
peak resident memory, one epoch in a process of its own. Speed is measured here, never asserted in a test.
"""
import argparse
import json
import math
import resource
import shlex
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
import torch
from threadpoolctl import threadpool_limits

import bare
from common import architecture, cli, flags, loop, machine
import numpy_nn.replicas
import numpy_nn.train
import pytorch_nn.train


def framework(module, data, args, **switches):
    """An epoch of a twin's trainer. numpy_nn's with its own BLAS threads (threads / processes in each process), set
    for each of its epochs: a trainer sets them for the whole process when built, and the last one built would
    otherwise decide for all (two BLAS threads beside a replica process: three threads on two cores)."""
    args = argparse.Namespace(**{**vars(args), **switches})
    if args.device == "cuda" and module is numpy_nn.train:
        args.backend, args.processes = "cupy", 1  # numpy_nn's own math on the GPU, through CuPy
    trainer = module.Trainer(args)
    x, y = trainer.place(data.x_train, data.y_train)
    epoch = lambda e: loop.train_epoch(trainer, x, y, args, e)  # noqa: E731
    return own_blas(epoch, trainer.blas_threads) if hasattr(trainer, "blas_threads") else epoch


def own_blas(epoch, threads):
    """The epoch with BLAS on --threads threads, whatever a variant built before set (numpy_nn's trainer gives each
    of its processes threads / processes: numpy_nn/replicas.py), and that setting restored after."""
    def run(e):
        with threadpool_limits(threads, user_api="blas"):
            return epoch(e)
    return run


VARIANTS = {
    "bare numpy": lambda d, a: own_blas((bare.numpy_cnn if a.model == "cnn" else bare.numpy_mlp)(d, a), a.threads),
    "numpy_nn": lambda d, a: framework(numpy_nn.train, d, a),
    "numpy_nn one process": lambda d, a: framework(numpy_nn.train, d, a, processes=1),
    "numpy_nn reference": lambda d, a: framework(numpy_nn.train, d, a, kernels="reference", processes=1),
    "bare torch": lambda d, a: bare.torch_loop(d, a),
    "bare torch fused": lambda d, a: bare.torch_loop(d, a, fused=True),
    "bare torch c-last": lambda d, a: bare.torch_loop(d, a, fused=True, channels_last=True),
    "pytorch_nn": lambda d, a: framework(pytorch_nn.train, d, a),
    "pytorch_nn for-each": lambda d, a: framework(pytorch_nn.train, d, a, fused=False),
    "pytorch_nn compiled": lambda d, a: framework(pytorch_nn.train, d, a, compile=True),
    "pytorch_nn compiled for-each": lambda d, a: framework(pytorch_nn.train, d, a, compile=True, fused=False),
}
LIBRARY = {"numpy": ["bare numpy"], "torch": ["bare torch", "bare torch fused", "bare torch c-last"]}


def chosen(opts) -> list[str]:
    names = [n for n in VARIANTS if (n != "bare torch c-last" or opts.model == "cnn")
             and (n != "numpy_nn one process" or numpy_nn.replicas.count(trainer_args(opts.model_argv)) > 1)
             and (n != "numpy_nn reference" or opts.model == "vit")]  # (a CNN's: minutes; an RNN's: one loop)
    if opts.device == "cuda":  # the twins alone: the bare loops and the processes are CPU variants
        names = [n for n in names if n.startswith(("numpy_nn", "pytorch_nn")) and "process" not in n
                 and "reference" not in n]
    return [n for n in names if "compiled" not in n or opts.compile]


def model_parser():
    """train.py's model flags, both twins' switches among them: what the benchmarks take to pick a network."""
    parser = flags.make_parser("the network to time")
    flags.numpy_flags(parser, backend=False)
    flags.pytorch_flags(parser)
    return parser


def trainer_args(model_argv, batch_size=None):
    """The flags of every variant: model_argv over the benchmark's defaults (above), on the CPU unless --device
    cuda is among them."""
    parser = model_parser()
    user, given = flags.parse_args(parser, model_argv), flags.explicit(parser, model_argv)
    shaped = given & {"preset", "channels", "kernel_size", "hidden", "batch_norm", "width", "depth", "steps", "patch",
                      "heads", "mlp_ratio"}  # the network named
    preset = {"mlp": "default", "cnn": "cnn", "vit": "vit"}.get(user.model, "lstm")
    base = [] if shaped or preset is None else ["--preset", preset]
    base += ["--dropout", "0", "--weight-decay", "0"]
    if "optimizer" not in given:
        base += ["--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.01"]
    size = ["--batch-size", str(batch_size)] if batch_size else []
    device = [] if "device" in given else ["--device", "cpu"]
    return flags.parse_args(parser, [*base, *model_argv, *size, "--quiet", *device])


def peak_memory(name, batch_size, opts) -> float:
    """MB of peak resident memory of a process that builds this variant and trains one epoch."""
    machine.keep_freed_memory()
    torch.set_num_threads(opts.threads)
    threadpool_limits(opts.threads)
    args = trainer_args(opts.model_argv, batch_size)
    VARIANTS[name](cli.load_data(args), args)(0)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gpu_matmul_peak_gflops(n=8192, repeats=5) -> float:
    """Best GFLOP/s of an n x n float32 matrix multiply on the GPU through torch (full float32, no TF32)."""
    a = torch.randn(n, n, device="cuda")
    best = math.inf
    for _ in range(repeats + 1):
        torch.cuda.synchronize()
        t = time.perf_counter()
        a @ a
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def run(opts):
    machine.keep_freed_memory()  # as the train.py processes do: every variant alike
    torch.set_num_threads(opts.threads)
    threadpool_limits(opts.threads)
    rows = []
    peak = gpu_matmul_peak_gflops() if opts.device == "cuda" else machine.matmul_peak_gflops(opts.threads)
    for bs in opts.batch_sizes:
        args = trainer_args(opts.model_argv, bs)
        args.epochs = max(args.epochs, opts.repeats + 1)  # a schedule stepped per batch covers every timed step
        data = cli.load_data(args)
        flops = architecture.train_flops_per_sample(args) * len(data.x_train)
        epochs, first = {}, {}
        for name in chosen(opts):
            if name == "bare numpy" and not bare.numpy_fits(args):
                continue  # (numpy_nn then has no bare loop to be compared with: its ratio is left blank)
            epochs[name] = VARIANTS[name](data, args)
            t = time.perf_counter()
            epochs[name](0)  # warm-up: allocator, BLAS threads, torch's first-call costs, compiling
            first[name] = time.perf_counter() - t
        times = {name: [] for name in epochs}
        names = list(epochs)
        for r in range(opts.repeats):
            for name in names[r % len(names):] + names[:r % len(names)]:  # rotate: no variant always follows one
                machine.settle()
                t = time.perf_counter()
                epochs[name](r + 1)
                times[name].append(time.perf_counter() - t)
        batch_rows = [{"variant": n, "batch_size": bs, "median_s": statistics.median(ts), "min_s": min(ts),
                       "max_s": max(ts), "first_epoch_s": first[n], "gflops": flops / statistics.median(ts) / 1e9}
                      for n, ts in times.items()]
        for library, fw in (("numpy", [n for n in names if n.startswith("numpy_nn")]),
                            ("torch", [n for n in names if n.startswith("pytorch_nn")])):
            floor = min((r["median_s"] for r in batch_rows if r["variant"] in LIBRARY[library]), default=None)
            for r in batch_rows:
                if r["variant"] in fw and floor:
                    r["ratio_to_bare"] = r["median_s"] / floor
        if opts.memory:
            with ProcessPoolExecutor(1, mp_context=get_context("spawn"), max_tasks_per_child=1) as pool:  # a fresh
                # process per variant: ru_maxrss is the peak of the whole process
                for r in batch_rows:
                    r["peak_mb"] = pool.submit(peak_memory, r["variant"], bs, opts).result()
        rows += batch_rows
    gpu = f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda}); " if opts.device == "cuda" else ""
    return {"machine": gpu + machine.cpu_label(), "device": opts.device, "threads": opts.threads,
            "model": opts.model, "optimizer": opts.optimizer,
            "processes": numpy_nn.replicas.count(trainer_args(opts.model_argv)),
            "flags": opts.model_argv, "command": opts.command,
            "matmul_peak_gflops": peak, "train_samples": len(data.x_train), "repeats": opts.repeats,
            "numpy": np.__version__, "torch": torch.__version__, "rows": rows}


def table(result) -> str:
    lines = [*machine.forced_note()] + [f"{result['machine']}, {result['threads']} threads, {result['model']}, float32, {result['optimizer']}, "
             f"{result['train_samples']} images/epoch, median of {result['repeats']}; "
             f"matmul peak {result['matmul_peak_gflops']:.0f} GFLOP/s",
             f"{'variant':28s} {'batch':>5s} {'median s':>9s} {'min-max s':>13s} {'ratio':>6s} {'GFLOP/s':>8s} "
             f"{'% peak':>7s} {'1st epoch':>9s}" + (f" {'peak MB':>8s}" if "peak_mb" in result["rows"][0] else "")]
    for r in result["rows"]:
        ratio = f"{r['ratio_to_bare']:.2f}" if "ratio_to_bare" in r else ""
        memory = f" {r['peak_mb']:8.0f}" if "peak_mb" in r else ""
        lines.append(f"{r['variant']:28s} {r['batch_size']:5d} {r['median_s']:9.3f} {r['min_s']:6.3f}-{r['max_s']:<6.3f} "
                     f"{ratio:>6s} {r['gflops']:8.1f} {100 * r['gflops'] / result['matmul_peak_gflops']:6.1f}% "
                     f"{r['first_epoch_s']:9.2f}{memory}")
    for bs in dict.fromkeys(r["batch_size"] for r in result["rows"]):
        median = {r["variant"]: r["median_s"] for r in result["rows"] if r["batch_size"] == bs}
        lines.append(f"batch {bs}: numpy_nn / pytorch_nn = {median['numpy_nn'] / median['pytorch_nn']:.2f}x"
                     + (f"; one process / {result['processes']} processes = "
                        f"{median['numpy_nn one process'] / median['numpy_nn']:.2f}x" if "numpy_nn one process" in median
                        else ""))
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog="Every other flag is a train.py model flag (see the module's docstring).")
    p.add_argument("--batch-sizes", type=flags.batch_sizes, default=None,
                   help="(default: 64,512 for mlp, 64,128 for cnn)")
    p.add_argument("--repeats", type=flags.number(int, 1), default=5)
    p.add_argument("--compile", action="store_true", help="add pytorch_nn with --compile (a minute of compiling)")
    p.add_argument("--memory", action="store_true", help="add each variant's peak memory (one process each)")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    argv = sys.argv[1:] if argv is None else argv
    opts, opts.model_argv = p.parse_known_args(argv)
    opts.command = "python benchmarks/epoch_bench.py " + shlex.join(a for a in argv if a != "--json")
    args = trainer_args(opts.model_argv)  # the model flags checked (one line on a bad one) before anything runs
    opts.model, opts.optimizer, opts.threads = args.model, args.optimizer, args.threads
    opts.device = "cuda" if args.device == "cuda" else "cpu"
    if opts.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda: torch.cuda.is_available() is False here; leave --device out to time the CPU",
              file=sys.stderr)
        return 1
    opts.batch_sizes = opts.batch_sizes or ([64, 512] if opts.model == "mlp" else [64, 128])
    try:
        result = run(opts)
    except cli.DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2) if opts.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
