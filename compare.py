"""Train both twins with one config on the same data and report accuracy and time: `python compare.py --help`.

Writes into --out (default results/), beside runs/ (every finished run, reused by the same command):
comparison.md/.csv (one row per implementation), epochs.csv (every epoch of every run), parity.csv, gradients.csv
and interchange.csv (the twins are one network), layers.csv (where a step's time goes), precision.csv (float32
against float64), optimizers.csv, scaling.csv, sweep.csv/.md in sweep mode, and the figures:
accuracy_vs_time.png, loss.png, accuracy.png, epoch_time.png, confusion.png, misclassified.png, samples.png,
parity.png, weights.png, layers.png, optimizers.png, scaling.png (and sweep.png). Under results/ it also
rewrites results/README.md, the index of every report there. Training runs happen in worker processes, one
per implementation and device (comparison/runs.py).
"""
from __future__ import annotations

import argparse
import math
import shlex
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import data_loader
from common import architecture, flags, machine
from common.errors import RunError
from common.files import atomic_path, check_folder, check_name
from comparison import images, index, layers, plots, proof, studies, tables
from comparison.runs import Store, Workers, devices, model_argv, train_job, train_size
from comparison.studies import OPTIMIZERS, SWEEP_FLAGS

OUTPUTS = ["comparison.md", "comparison.csv", "epochs.csv", "parity.csv", "gradients.csv", "interchange.csv", "optimizers.csv",
           "scaling.csv", "sweep.csv", "sweep.md", "layers.csv", "precision.csv", "loss.png", "accuracy.png",
           "accuracy_vs_time.png", "epoch_time.png", "confusion.png", "misclassified.png", "samples.png", "parity.png",
           "weights.png", "layers.png", "optimizers.png", "scaling.png", "sweep.png"]


def make_parser() -> argparse.ArgumentParser:
    p = flags.make_parser(__doc__.splitlines()[0], train_script=False)
    p.add_argument("--out", type=Path, default=Path("results"), help="output folder (default: %(default)s)")
    p.add_argument("--seeds", type=flags.number(int, 1), default=3, help="seeds per implementation (default: %(default)s)")
    p.add_argument("--optimizers", default="sgd,momentum,adam",
                   help=f"optimizer study, from {','.join(OPTIMIZERS)}; '' to skip (default: %(default)s)")
    p.add_argument("--batch-sizes", default="16,32,64,128,256,512,1024",
                   help="scaling study batch sizes; '' to skip (default: %(default)s)")
    p.add_argument("--only", choices=["numpy", "pytorch"], help="run one implementation only (no parity section)")
    p.add_argument("--target", type=flags.number(float, 0, 100, low_open=True, high_open=True),
                   help="the test accuracy (%%) whose time-to the report gives (default: 98 for mlp, 99 for cnn)")
    flags.numpy_flags(p, backend=False)
    flags.pytorch_flags(p)
    p.add_argument("--fresh", action="store_true",
                   help="train everything anew, ignoring the runs an earlier invocation stored in --out/runs")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 2,000 images, 2 epochs, 1 seed, short studies (what the tests use)")
    sweep = p.add_argument_group("sweep mode (any of these runs the grid instead of the comparison)")
    sweep.add_argument("--sweep-lr", type=flags.number(float, 0, low_open=True), nargs="+",
                       help="learning rates to try, e.g. 1e-3 3e-3")
    sweep.add_argument("--sweep-hidden", type=flags.sizes, nargs="+", help="hidden layer sizes to try, e.g. 128,64 256,128")
    sweep.add_argument("--sweep-batch-size", type=flags.number(int, 1), nargs="+", help="batch sizes to try")
    sweep.add_argument("--sweep-optimizer", choices=["sgd", "adam", "adamw"], nargs="+", help="optimizers to try")
    sweep.add_argument("--sweep-epochs", type=flags.number(int, 1), nargs="+", help="epoch counts to try")
    return p


def parse(argv):
    parser = make_parser()
    args = flags.parse_args(parser, argv)
    args.sweep = any(getattr(args, f"sweep_{k}") for k in SWEEP_FLAGS)
    args.target = (args.target or (99.0 if args.model == "cnn" else 98.0)) / 100
    if args.quick:
        args.seeds, args.epochs, args.limit_train = 1, min(args.epochs, 2), 2000
        args.val_size = 500 if args.val_size == data_loader.VAL_SIZE else args.val_size
        args.batch_sizes = "64,512" if args.batch_sizes == parser.get_default("batch_sizes") else args.batch_sizes
    try:
        args.optimizer_names = [o for o in args.optimizers.split(",") if o]
        unknown = set(args.optimizer_names) - set(OPTIMIZERS)
        if unknown:
            raise ValueError(f"--optimizers: unknown {', '.join(sorted(unknown))}; choose from {', '.join(OPTIMIZERS)}")
        args.batch_size_list = [int(b) for b in args.batch_sizes.split(",") if b]
        if any(b < 1 for b in args.batch_size_list):
            raise ValueError("--batch-sizes: sizes must be positive")
        if args.val_size == 0 and args.sweep:
            raise ValueError("--val-size 0: a sweep ranks configurations by validation accuracy; hold out images "
                             "(e.g. --val-size 5000)")
    except ValueError as e:
        parser.error(str(e).replace("invalid literal for int() with base 10", "--batch-sizes: not an integer"))
    return args


def run_comparison(args, tmp: Path, progress, workers) -> list[str]:
    """The main comparison, the proof that the twins are one network, the optimizer and scaling studies;
    returns the report's sections."""
    rows = devices(args)
    runs = []
    for impl, device in rows:
        for seed in range(1, args.seeds + 1):
            progress.set_postfix_str(f"{impl} {device} seed {seed}")
            h = workers.run((impl, device), train_job, impl, device, model_argv(args, impl, seed=seed), seed == 1)
            h["n_train"] = train_size(args)
            runs.append(h)
            progress.update()
    table, epochs = tables.summarize(runs, args.target)
    tables.write_csv(table, tmp / "comparison.csv")
    tables.write_csv(epochs, tmp / "epochs.csv")
    data = data_loader.load_mnist(args.data_dir, val_size=args.val_size, limit_train=args.limit_train)
    kept = {plots.label(r["implementation"], r["device"]): r for r in runs if "test_pred" in r}
    preds = {name: r["test_pred"] for name, r in kept.items()}
    plots.plot_curves(epochs, tmp / "loss.png", "loss")
    plots.plot_curves(epochs, tmp / "accuracy.png", "acc")
    plots.plot_accuracy_vs_time(epochs, args.target, tmp / "accuracy_vs_time.png")
    plots.plot_epoch_times(epochs, table, tmp / "epoch_time.png")
    images.plot_confusions(data.y_test, preds, tmp / "confusion.png")
    images.plot_misclassified(data.raw.test_images, data.y_test, preds, tmp / "misclassified.png")
    images.plot_samples(next(data_loader.batches(data.x_train, data.y_train, 64, 1, 0)), tmp / "samples.png")
    images.plot_weights({name: r["weights"] for name, r in kept.items()}, tmp / "weights.png")
    pictures = "![samples](samples.png)\n"
    if args.model == "vit":
        source = next(r for r in kept.values() if r["implementation"] == "numpy")  # one model, read by both twins
        digits, maps = workers.run(("proof", "cpu"), images.attention_job, model_argv(args),
                                   {f"{impl}_nn": (impl, source["weights"]) for impl in ("numpy", "pytorch")})
        images.plot_attention(digits, maps, tmp / "attention.png", "numpy_nn's seed-1 model")
        pictures += "\n![the class token's attention, per head](attention.png)\n"

    sections = [f"## Comparison ({args.seeds} seed{'s' * (args.seeds > 1)}, {args.epochs} epoch{'s' * (args.epochs > 1)})\n",
                *tables.comparison_markdown(table),
                "![accuracy against training time](accuracy_vs_time.png)\n\n"
                "![loss](loss.png)\n\n![accuracy](accuracy.png)\n\n![epoch time](epoch_time.png)\n\n"
                "![confusion](confusion.png)\n\n![misclassified](misclassified.png)\n\n" + pictures]
    if not any(d == "cuda" for _, d in rows):
        sections.append("No GPU: torch finds no CUDA device on this machine, so every row is on the CPU.\n")

    if not args.only:
        progress.set_postfix_str("the twins are one network")
        argv = model_argv(args)
        result = workers.run(("proof", "cpu"), proof.proof_job, argv)
        interchange = workers.run(("proof", "cpu"), proof.interchange_job, argv,
                                  {n: r["weights"] for n, r in kept.items()}, preds)
        sections += proof.section(result, interchange, tmp)
        progress.update()
        progress.set_postfix_str("where the time goes")
        steps = 20 if args.quick else 200
        sections += layers.section(workers.run(("proof", "cpu"), layers.layers_job, argv, steps), steps,
                                   args.batch_size, tmp)
        progress.update()
        sections += studies.precision(args, tmp, progress, workers)

    if args.optimizer_names:
        sections += studies.optimizers(args, rows, tmp, progress, workers)
    if args.batch_size_list:
        sections += studies.scaling(args, rows, tmp, progress, workers)
    return sections


def replace_outputs(tmp: Path, out: Path) -> None:
    """Swap in this run's files: earlier outputs of ours go first, so nothing stale mixes in."""
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        (out / name).unlink(missing_ok=True)
    for f in tmp.iterdir():
        shutil.move(str(f), out / f.name)


def stop(signum, frame):
    """Ctrl-C or SIGTERM: stored runs stay, the run in progress is dropped. Installed for SIGINT too, as train.py's
    handler is: a Python started with SIGINT ignored (a job started in the background) would never raise it."""
    raise KeyboardInterrupt


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    store = Store(args.out / "runs", fresh=args.fresh)
    try:
        check_folder(args.out, "--out", "the report")
        check_name(args.data_dir, "--data-dir")
        data_loader.load_raw(args.data_dir)  # fail early, in one line, before any child starts
        from tqdm import tqdm
        n_rows = len(devices(args))
        if args.sweep:
            total = n_rows * math.prod(len(getattr(args, f"sweep_{k}") or [0]) for k in SWEEP_FLAGS)
        else:
            total = n_rows * (args.seeds + len(args.optimizer_names) + len(args.batch_size_list)) + 6 * (not args.only)
        start = time.perf_counter()
        args.out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=args.out, prefix=".compare-") as tmp, \
                tqdm(total=total, desc="compare", unit="run") as progress:
            tmp = Path(tmp)
            workers = Workers(store, lambda: progress.set_description(f"compare ({store.reused} reused)"))
            try:
                with plots.captioned(f"{architecture.describe(args)} · {machine.cpu_label()}, {args.threads} threads"):
                    sections = (studies.sweep if args.sweep else run_comparison)(args, tmp, progress, workers)
            finally:
                workers.close(terminate=sys.exc_info()[0] is KeyboardInterrupt)
            env = machine.environment()
            reused = f" {store.reused} of its runs were stored by an earlier invocation of the same command." \
                if store.reused else ""
            header = ["# numpy_nn vs pytorch_nn on MNIST\n",
                      f"Reproduce: `{('python compare.py ' + shlex.join(argv)).strip()}`\n",
                      f"Network: {architecture.describe(args)}\n",
                      f"Machine: {machine.cpu_label()}, {env['cores']} cores, {args.threads} threads; Python {env['python']}, "
                      f"NumPy {env['numpy']}, PyTorch {env['torch']}. Wall time {time.perf_counter() - start:.0f} s."
                      f"{reused}\n",
                      "Epoch times cover the training updates only (forward, loss, backward, optimizer step, "
                      "batch gathering); evaluation is excluded. Both implementations use the same threads, "
                      "data, batches and initial weights.\n"]
            with atomic_path(tmp / ("sweep.md" if args.sweep else "comparison.md")) as f:
                f.write_text("\n".join(header + sections) + "\n")
            replace_outputs(tmp, args.out)
        if args.out.resolve() == index.ROOT or args.out.resolve().parent == index.ROOT:
            index.write_index()
    except (data_loader.DataError, RunError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a figure or table written straight into the temporary folder: a full disk, say
        print(f"error: could not write the report into {args.out} ({e.strerror or e}); the finished runs are "
              f"stored in {args.out / 'runs'}: free some space and run the same command again", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted: the finished runs are stored in {args.out / 'runs'}; the same command continues "
              f"from them (--fresh starts over)", file=sys.stderr)
        return 130
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    report = args.out / ("sweep.md" if args.sweep else "comparison.md")
    print(report.read_text().split("\n## ")[1].split("\n![")[0].strip())
    print(f"\nwrote {args.out}/ in {time.perf_counter() - start:.0f} s" + (f" ({store.reused} runs reused)" if store.reused else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
