"""The flags a file recorded (a checkpoint's, a model file's), read back through the same checks as the command
line: what --resume and --evaluate take from a file, and what they refuse."""
from __future__ import annotations

import argparse

from common.errors import RunError
from common.architecture import per_block
from common.flags import ONLY_FOR, check_blocks, show

# Flags about where and how a run happens rather than what it computes: a resumed run may be given them anew.
ENVIRONMENT = ("resume", "quiet", "data_dir", "threads", "processes", "out", "checkpoint_every", "evaluate",
               "save_model")
# Switches that compute the same math another way: a resumed run may be given them anew too (moved to another machine,
# or resumed with the reference kernels to look inside), its sums then in another order.
SAME_MATH = ("kernels", "backend", "device", "fused", "compile")
# What a resumed run may change that makes it no longer bit-exact with one never interrupted: the order of sums.
REORDERS = ("threads", "processes", *SAME_MATH)
# Flags added after files were written, with the value an older file's run had: its record lacks them.
ADDED = {"padding": "same", "decay": "all", "label_smoothing": 0.0, "shift": 0,
         **dict.fromkeys(("width", "depth", "steps", "patch", "heads", "mlp_ratio"))}
# Values older files recorded for a flag that now takes others: --batch-norm was on or off.
RENAMED = {"batch_norm": {True: "all", False: None}}


def recorded_value(parser: argparse.ArgumentParser, key: str, value, source):
    """A flag's value as a file recorded it (JSON), through the same checks as on the command line: a damaged or
    foreign record is refused in one line instead of building a network nobody asked for."""
    action = next(a for a in parser._actions if a.dest == key)
    flag = action.option_strings[-1]
    if isinstance(value, bool) and key in RENAMED:
        value = RENAMED[key][value]

    def refuse(why):
        remedy = (f"give {flag} to use another value" if key in ENVIRONMENT else
                  "the file is damaged or was not written by this project's train.py")
        return RunError(f"{source}: records {flag} {value!r}, {why}; {remedy}")
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            raise refuse("not true or false")
        return value
    if value is None:
        if action.default is None:
            return None
        raise refuse("but that flag needs a value")
    if isinstance(value, bool) or not isinstance(value, (int, float, str, list)):
        raise refuse("not a value that flag takes")
    try:
        parsed = action.type(show(value)) if action.type else show(value)
    except (argparse.ArgumentTypeError, ValueError, TypeError) as e:
        raise refuse(" ".join(str(e).split()) or "which that flag refuses") from None
    if action.choices is not None and parsed not in action.choices:
        raise refuse(f"not one of {', '.join(map(str, action.choices))}")
    return parsed


def adopt(parser: argparse.ArgumentParser, recorded: dict, args, given: set, keys, source) -> None:
    """Take keys' values from a file's record into args, each checked as its flag would be; a key the record
    lacks, or a flag given with another value, is an error. Keys this parser does not know are left alone."""
    known, recorded = {a.dest for a in parser._actions}, {**ADDED, **recorded}
    for k in sorted(keys, key=lambda k: (k != "model", k != "channels")):  # what the others are checked against first
        if k not in known:
            continue
        if k not in recorded:
            raise RunError(f"{source}: its record lacks {k!r}; the file is damaged or was not written by this "
                           f"project's train.py")
        value, mine = recorded_value(parser, k, recorded[k], source), getattr(args, k)
        if k == "kernel_size" and args.model == "cnn" and args.channels and mine and value:  # (3 is 3,3 for two blocks)
            try:
                mine, value = per_block(mine, args.channels), per_block(value, args.channels)
            except ValueError:
                pass  # (check_blocks below says what is wrong with the record's)
        # (a flag given for the other model is not compared: cli.prepare says it does not fit)
        if k in given and mine != value and args.model in ONLY_FOR.get(k, (args.model,)):
            raise RunError(f"--{k.replace('_', '-')} {show(getattr(args, k))} contradicts {source}, which records "
                             f"{show(value)}; drop the flag")
        setattr(args, k, value)
    if args.model == "cnn":
        recorded_blocks = f"--channels {show(args.channels)} and --kernel-size {show(args.kernel_size)}"
        try:
            if not args.channels or not args.kernel_size:
                raise ValueError("no blocks")
            check_blocks(args)
        except ValueError as e:
            raise RunError(f"{source}: records --model cnn with {recorded_blocks}, which make no network ({e}); the "
                           f"file is damaged") from None
    if args.model == "vit" and args.width and args.heads and args.width % args.heads:
        raise RunError(f"{source}: records --model vit with --width {args.width} and --heads {args.heads}, which do "
                       f"not divide; the file is damaged")
