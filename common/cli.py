"""The train.py command line, shared by both twins: flags -> data -> train, resume or evaluate -> files.
Every expected failure ends in one line and a non-zero exit; Ctrl-C and SIGTERM stop at a step boundary."""
from __future__ import annotations

import inspect
import os
import signal
import sys
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

import data_loader
from common import architecture, machine, resume, weights
from common.errors import Diverged, RunError
from common.files import check_folder, check_name, jsonable, write_json
from common.flags import explicit, fill_defaults, make_parser, misplaced, parse_args, show
from common.records import ADDED, ENVIRONMENT, REORDERS, SAME_MATH, adopt
from common.loop import Progress, batches_per_epoch, evaluate, fit
from data_loader import DataError


def load_data(args) -> data_loader.MNIST:
    """The arrays these flags ask for: dtype, validation split, training subset, and images for a CNN. Sets
    args.steps_per_epoch, which a schedule stepped per batch needs before a trainer is built."""
    data = data_loader.load_mnist(args.data_dir, dtype=np.dtype(args.dtype), val_size=args.val_size,
                                  limit_train=args.limit_train, images=args.model == "cnn")
    args.steps_per_epoch = batches_per_epoch(len(data.x_train), args)
    return data


class StopRequest:
    """Ctrl-C (SIGINT) or SIGTERM asks the training loop to stop at the next step boundary; a second one exits
    at once. A context manager around training; calling it says whether a stop was asked for."""

    def __init__(self, restore=True):
        self.signum, self.previous, self.restore = None, {}, restore

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            self.previous[s] = signal.signal(s, self.handle)
        return self

    def __exit__(self, *exc):
        """The handlers from before, whether or not a stop was asked for: a later Ctrl-C in this process is
        then what it was (KeyboardInterrupt, or whatever the caller installed), never this one's os._exit. Not with
        restore=False (train.py's own process, which ends next): a Ctrl-C after a stop still exits at once."""
        for s, handler in self.previous.items() if self.restore else ():
            signal.signal(s, handler)

    def handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.signum is not None:
            print(f"\n{name} again: exiting at once, without writing anything", file=sys.stderr)
            os._exit(128 + signum)
        self.signum = signum
        print(f"\n{name}: stopping after this step (once more to exit at once)", file=sys.stderr)

    def __call__(self):
        return self.signum is not None


def prepare(parser, args, given, name):
    """The flags to run with: a checkpoint's (--resume) or a model file's architecture (--evaluate) taken in;
    --out checked; a model too large for this machine's memory refused before anything is allocated."""
    checkpoint = source = None  # source: the file whose record the flags came from
    for flag in ("resume", "evaluate", "data_dir", "out"):
        check_name(getattr(args, flag), f"--{flag.replace('_', '-')}")
    if args.resume:
        checkpoint = resume.read(args.resume, name)
        recorded = {**ADDED, **{k: v for k, v in checkpoint[1]["config"].items() if k not in ("resume", "out")}}
        # every recorded flag comes back unless given anew: the environment's and the same math's may be, any other
        # only with the value it had
        source, free = f"the checkpoint in {args.resume}", set(ENVIRONMENT) | set(SAME_MATH)
        adopt(parser, recorded, args, given - free, recorded.keys() - (given & free), source)
        changed = [k for k in REORDERS if k in given & recorded.keys() and jsonable(getattr(args, k)) != recorded[k]]
        if changed:
            print(f"note: resuming with {', '.join(f'--{k} {show(getattr(args, k))}' for k in changed)} where the "
                  f"checkpoint's run had {', '.join(show(recorded[k]) for k in changed)}: the same math, its sums in "
                  f"another order, so the run goes on as one never interrupted would, but not bit for bit",
                  file=sys.stderr)
        args.out = args.out or (args.resume if args.resume.is_dir() else args.resume.parent)
    elif args.evaluate and args.evaluate.suffix == ".safetensors" and args.evaluate.is_file():
        meta = weights.read_metadata(args.evaluate)
        if meta.get("kind") == "checkpoint":
            raise RunError(f"{args.evaluate}: a training checkpoint, not a model file; continue its run with --resume "
                           f"{args.evaluate.parent} (a finished run with --save-model writes model.safetensors)")
        if meta:
            if not isinstance(meta.get("config"), dict):
                raise RunError(f"{args.evaluate}: its record has no flags ('config'); the file is damaged or was "
                               f"not written by this project's train.py")
            source = args.evaluate
            adopt(parser, meta["config"], args, given, weights.ARCHITECTURE, source)
    if "model" not in given and (args.resume or args.evaluate):  # the file's model is known now (flags.parse_args)
        if why := misplaced(args, given):
            raise RunError(why + (f" ({source} records --model {args.model})" if source else ""))
        fill_defaults(args)
    args.out = args.out or Path("runs") / name
    check_folder(args.out, "--out", "history.json and the model")
    need, have = architecture.memory_needed(args), machine.available_memory()
    if have and need > have:
        raise RunError(f"the model ({architecture.n_params(args):,} parameters) needs about {need / 2**30:.1f} GiB "
                       f"to train, more than the {have / 2**30:.1f} GiB this machine has free; use smaller layers")
    return checkpoint


def main(trainer_cls, argv=None, description="", add_flags=None, restore=True) -> int:
    """Parse flags, load data, train (or resume, or --evaluate), write --out; every expected failure is one line."""
    parser = make_parser(description)
    if add_flags:
        add_flags(parser)
    argv = sys.argv[1:] if argv is None else argv
    args, given = parse_args(parser, argv), explicit(parser, argv)
    trainer = None
    try:
        checkpoint = prepare(parser, args, given, trainer_cls.name)
        threadpool_limits(args.threads)  # after prepare: a resumed run takes the threads it recorded
        machine.keep_freed_memory()
        data = load_data(args)
        trainer = trainer_cls(args)
        if args.evaluate:
            return score(trainer, data, args)
        progress = Progress()
        if checkpoint:
            progress = resume.progress_of(checkpoint[1], args.resume)
            try:
                trainer.load_state(checkpoint[0], {**checkpoint[1]["trainer"], "started": progress.epoch + progress.step > 0})
            except (ValueError, KeyError, TypeError) as e:
                raise RunError(f"the checkpoint in {args.resume}: {' '.join(str(e).split())}; it is damaged: start the "
                               f"run again without --resume") from None

        def periodic(p):
            if args.checkpoint_every and p.epoch % args.checkpoint_every == 0 and p.epoch < args.epochs:
                resume.write(args.out, trainer, args, p)

        with StopRequest(restore) as stop:  # through the writes too: a second Ctrl-C there exits without a traceback
            history = fit(trainer, data, args, progress=progress, stop=stop, after_epoch=periodic)
            write_json(args.out / "history.json", history)
            if history["interrupted"]:
                path = resume.write(args.out, trainer, args, progress)
                script = os.path.relpath(inspect.getfile(trainer_cls))
                print(f"stopped at epoch {progress.epoch + 1}, step {progress.step}: wrote {args.out / 'history.json'}"
                      f" and {path}; resume with: python {script} --resume {args.out}", file=sys.stderr)
                trainer.close()
                return 128 + stop.signum
            if args.save_model:
                weights.write_file(args.out / "model.safetensors", trainer.weights(),
                                   weights.describe(args, trainer.name, test_acc=history["test_acc"]))
            (args.out / resume.CHECKPOINT).unlink(missing_ok=True)
            trainer.close()  # (here too: a Ctrl-C while the replicas stop still exits at once)
    except (DataError, RunError, Diverged) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"error: out of memory (the model needs about {architecture.memory_needed(args) / 2**30:.1f} GiB); "
              f"use smaller layers or a smaller --batch-size", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted before training started; nothing written", file=sys.stderr)
        return 130
    finally:
        if trainer is not None:
            trainer.close()
    print(f"test loss {history['test_loss']:.4f}, accuracy {history['test_acc']:.2%}; "
          f"trained {history['train_seconds']:.1f} s; wrote {args.out}")
    return 0


def run(trainer_cls, description, add_flags) -> None:
    """A train.py's entry point: main(), then exit with its code. Once main has returned there is nothing left
    to stop, so Ctrl-C is ignored while the interpreter shuts down (a signal there would kill the process
    without its exit code; CPython keeps an ignored signal ignored through shutdown)."""
    code = main(trainer_cls, sys.argv[1:], description, add_flags, restore=False)
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)
    sys.exit(code)


def score(trainer, data, args) -> int:
    """--evaluate: the file's weights into this twin, scored on the test set."""
    arrays, meta = trainer.read_weights(args.evaluate)
    try:
        trainer.load_weights(arrays)
    except ValueError as e:
        if meta:  # our own file: the architecture came from its record
            raise RunError(f"{args.evaluate}: its tensors contradict its own record ({e}); the file is damaged") from None
        raise RunError(f"{args.evaluate}: {e}; pass the model flags it was trained with") from None
    loss, acc = evaluate(trainer, data.x_test, data.y_test, args.test_batch_size)
    print(f"{args.evaluate}: test loss {loss:.4f}, accuracy {acc:.2%} ({len(data.y_test)} images)")
    return 0
