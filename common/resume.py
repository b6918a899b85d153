"""Checkpoints: what a run writes so that it can continue exactly where it stopped, and reading them back.
A checkpoint is the shared safetensors format (common/weights.py) holding the trainer's state (weights,
batch-norm statistics, optimizer moments, generator states) with the flags and the loop's progress."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from common import weights
from common.errors import RunError
from common.loop import Progress

CHECKPOINT = "checkpoint.safetensors"


def write(out: Path, trainer, args, progress: Progress) -> Path:
    arrays, meta = trainer.state()
    path = out / CHECKPOINT
    weights.write_file(path, arrays, {"kind": "checkpoint", "implementation": trainer.name, "config": vars(args),
                                      "progress": dataclasses.asdict(progress), "trainer": meta})
    return path


def read(folder: Path, implementation: str) -> tuple[dict, dict]:
    """(arrays, metadata) of the checkpoint in folder (or the file itself), checked to be this twin's."""
    path = folder / CHECKPOINT if folder.is_dir() else folder
    if not path.is_file():
        raise RunError(f"--resume {folder}: no {CHECKPOINT} there (a run writes one when interrupted and every "
                       f"--checkpoint-every epochs, and removes it when it finishes)")
    arrays, meta = weights.read_file(path)
    if meta.get("kind") != "checkpoint":
        raise RunError(f"{path}: not a checkpoint of this project (a model file? score it with --evaluate)")
    lacking = [k for k, kind in (("implementation", str), ("config", dict), ("progress", dict), ("trainer", dict))
               if not isinstance(meta.get(k), kind)]
    if lacking:
        raise RunError(f"{path}: its record lacks {', '.join(lacking)} (or holds something else there); the checkpoint "
                       f"is damaged: start the run again without --resume")
    if meta["implementation"] != implementation:
        raise RunError(f"{path}: a {meta['implementation']}_nn checkpoint; resume it with "
                       f"{meta['implementation']}_nn/train.py --resume {folder}")
    return arrays, meta


def progress_of(meta: dict, path) -> Progress:
    """The loop's progress a checkpoint recorded, each field checked to be what the loop keeps there (counts are
    non-negative integers, sums and seconds numbers, the completed epochs a list of records)."""
    record, fields = meta["progress"], {f.name for f in dataclasses.fields(Progress)}
    counts, numbers = ("epoch", "step", "correct"), ("loss_sum", "seconds", "lr")

    def fits(k, v):
        if k in counts:
            return isinstance(v, int) and not isinstance(v, bool) and v >= 0
        if k in numbers:
            return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
        return isinstance(v, list) and all(isinstance(e, dict) for e in v)
    bad = sorted(set(record) - fields) + [k for k in fields & set(record) if not fits(k, record[k])]
    if bad:
        raise RunError(f"{path}: its recorded progress has {', '.join(f'{k}={record.get(k)!r}' for k in bad)}; the "
                       f"checkpoint is damaged: start the run again without --resume")
    return Progress(**{k: math.nan if v is None else v for k, v in record.items()})  # JSON's null is the NaN lr


def schedule_position(value, args, name):
    """A learning-rate schedule's position a checkpoint recorded, checked: a count of the updates (a schedule
    stepped per batch) or epochs (per epoch) this run's flags make; ValueError, in one line, otherwise."""
    limit = args.epochs * args.steps_per_epoch if args.schedule == "onecycle" else args.epochs
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise ValueError(f"{name}={value!r}, not a position of this run's schedule (0 to {limit})")
    return value
