"""Checkpoints: what a run writes so that it can continue exactly where it stopped, and reading them back.
A checkpoint is the shared safetensors format (common/weights.py) holding the trainer's state (weights,
batch-norm statistics, optimizer moments, generator states) with the flags and the loop's progress."""
from __future__ import annotations

import dataclasses
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
    if meta["implementation"] != implementation:
        raise RunError(f"{path}: a {meta['implementation']}_nn checkpoint; resume it with "
                       f"{meta['implementation']}_nn/train.py --resume {folder}")
    return arrays, meta


def progress_of(meta: dict) -> Progress:
    return Progress(**meta["progress"])
