"""The train.py command line, shared by both twins: flags -> data -> train (or --evaluate) -> files."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

import data_loader
from common.errors import Diverged, RunError
from common.files import write_json
from common.flags import make_parser, parse_args
from common.loop import evaluate, fit
from data_loader import DataError


def load_data(args) -> data_loader.MNIST:
    """The arrays these flags ask for: dtype, validation split, training subset, and images for a CNN."""
    return data_loader.load_mnist(args.data_dir, dtype=np.dtype(args.dtype), val_size=args.val_size,
                                  limit_train=args.limit_train, images=args.model == "cnn")


def main(trainer_cls, argv=None, description="", add_flags=None) -> int:
    """Parse flags, load data, train (or --evaluate), write --out; every expected failure is one line."""
    parser = make_parser(description)
    if add_flags:
        add_flags(parser)
    args = parse_args(parser, argv)
    args.out = args.out or Path("runs") / trainer_cls.name
    threadpool_limits(args.threads)
    try:
        data = load_data(args)
        trainer = trainer_cls(args)
        if args.evaluate:
            trainer.load(args.evaluate)
            loss, acc = evaluate(trainer, data.x_test, data.y_test, args.test_batch_size)
            print(f"{args.evaluate}: test loss {loss:.4f}, accuracy {acc:.2%} ({len(data.y_test)} images)")
            return 0
        history = fit(trainer, data, args)
        write_json(args.out / "history.json", history)
        if args.save_model:
            trainer.save(args.out / f"model{trainer.suffix}")
    except (DataError, RunError, Diverged) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"test loss {history['test_loss']:.4f}, accuracy {history['test_acc']:.2%}; "
          f"trained {history['train_seconds']:.1f} s; wrote {args.out}")
    return 0
