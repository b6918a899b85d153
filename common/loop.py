"""The epoch loop both twins run: the same batches, the same timing, the same records."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

import data_loader
from common.errors import Diverged
from common.files import jsonable
from common.machine import environment
from common.metrics import accuracy, cross_entropy


def predict_all(trainer, x, batch_size) -> np.ndarray:
    """Logits for all of x, predicted in batches of batch_size."""
    return np.concatenate([trainer.predict(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def evaluate(trainer, x, y, batch_size) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of the trainer's predictions, in batches of batch_size."""
    if len(x) == 0:
        return math.nan, math.nan
    logits = predict_all(trainer, x, batch_size)
    return cross_entropy(logits, y), accuracy(logits, y)


@dataclass
class Progress:
    """Where a run stands besides the trainer's own state: what a checkpoint needs to resume exactly."""
    epoch: int = 0          # epochs completed
    step: int = 0           # updates done within the current epoch
    loss_sum: float = 0.0   # the current epoch's running sums, so that a resumed epoch reports the same figures
    correct: int = 0
    seconds: float = 0.0
    lr: float = math.nan    # the learning rate the current epoch began with (a per-batch schedule moves it since)
    epochs: list = field(default_factory=list)  # the completed epochs' records

    def next_epoch(self, record):
        self.epochs.append(record)
        self.epoch, self.step, self.loss_sum, self.correct, self.seconds = self.epoch + 1, 0, 0.0, 0, 0.0


def min_last_batch(args) -> int:
    """The smallest last batch an epoch trains on: with batch norm 2, as a batch of one image has no batch
    statistics (its variance is 0: torch refuses it, a hand-written layer would divide by sqrt(eps)); the one
    image left over is skipped that epoch, in both twins alike, as torch's DataLoader(drop_last=True) would."""
    return 2 if args.batch_norm else 1


def trained_per_epoch(n, args) -> int:
    return n if n % args.batch_size == 0 or n % args.batch_size >= min_last_batch(args) else n - n % args.batch_size


def batches_per_epoch(n, args) -> int:
    """Training steps in an epoch of n images: what a schedule stepped per batch (onecycle) counts."""
    return -(-trained_per_epoch(n, args) // args.batch_size)


def train_epoch(trainer, x, y, args, epoch, progress=None, stop=None) -> dict | None:
    """One pass over (x, y), as placed by trainer.place, in the (seed, epoch) order; times the updates only.
    Returns the epoch's training figures, or None when stop() asked to stop: progress then says where.

    A step's loss comes back as a float (CPU: checked at once, training stops at the first non-finite one)
    or as a device array (GPU: reading it would stall the pipeline, so the epoch's losses are read together
    at its end, which also waits for the device before the clock stops).
    """
    p = progress or Progress(epoch=epoch)
    n, first, deferred, correct, stopped = len(x), p.step, [], 0, False
    bar = tqdm(total=n, initial=min(n, first * args.batch_size), desc=f"epoch {epoch + 1}/{args.epochs}", unit="img",
               unit_scale=True, leave=False, disable=args.quiet, mininterval=0.5)
    start = time.perf_counter()
    # numpy's overflow warnings would only precede the one-line divergence error raised below
    with bar, np.errstate(over="ignore", invalid="ignore"):
        for xb, yb in data_loader.batches(x, y, args.batch_size, args.seed, epoch, skip=first,
                                          min_last=min_last_batch(args), shift=getattr(args, "shift", 0)):
            if stop is not None and stop():
                stopped = True
                break
            loss, n_correct = trainer.train_step(xb, yb)
            if isinstance(loss, float):
                if not math.isfinite(loss):
                    raise _diverged(trainer, epoch, p.step, loss)
                p.loss_sum += loss * len(yb)
            else:
                deferred.append((loss, len(yb)))
            correct += n_correct
            p.step += 1
            bar.update(len(yb))
        if deferred:
            losses = trainer.host([loss for loss, _ in deferred])
            bad = np.flatnonzero(~np.isfinite(losses))
            if bad.size:
                raise _diverged(trainer, epoch, first + int(bad[0]), losses[bad[0]])
            p.loss_sum += sum(float(loss) * size for loss, (_, size) in zip(losses, deferred))
    p.correct += int(correct)
    p.seconds += time.perf_counter() - start
    if stopped:
        return None
    trained = trained_per_epoch(n, args)
    return {"train_loss": p.loss_sum / trained, "train_acc": p.correct / trained, "epoch_seconds": p.seconds}


def _diverged(trainer, epoch, step, loss) -> Diverged:
    return Diverged(f"training loss is {float(loss)} at epoch {epoch + 1}, step {step + 1} (lr {trainer.lr:g}); "
                    f"try a smaller --lr, e.g. {trainer.lr / 10:g}")


def fit(trainer, data, args, log=print, test_each_epoch=False, progress=None, stop=None, after_epoch=None) -> dict:
    """Train until args.epochs are done (from progress, when resuming) or stop() asks to stop; returns the
    history record (config, environment, epochs, test figures, and whether it was interrupted).
    test_each_epoch adds test_loss/test_acc to every epoch's record (compare.py's time-to-accuracy);
    after_epoch(progress) runs after each completed epoch (periodic checkpoints)."""
    p = progress or Progress()
    x, y = trainer.place(data.x_train, data.y_train)  # once: on a GPU the whole training set moves there
    interrupted = False
    if (trained := trained_per_epoch(len(x), args)) < len(x):
        log(f"note: {len(x):,} training images in batches of {args.batch_size} leave 1 over, which --batch-norm "
            f"cannot normalize alone: each epoch trains on {trained:,}")
    while p.epoch < args.epochs:
        lr = p.lr = trainer.lr if p.step == 0 or math.isnan(p.lr) else p.lr
        figures = train_epoch(trainer, x, y, args, p.epoch, p, stop)
        if figures is None:
            interrupted = True
            break
        record = {"epoch": p.epoch + 1, **figures}
        record["val_loss"], record["val_acc"] = evaluate(trainer, data.x_val, data.y_val, args.test_batch_size)
        if test_each_epoch:
            record["test_loss"], record["test_acc"] = evaluate(trainer, data.x_test, data.y_test, args.test_batch_size)
        record["lr"] = lr
        p.next_epoch(record)
        trainer.end_epoch()
        log(format_epoch(record))
        if after_epoch is not None:
            after_epoch(p)
    test_loss, test_acc = (math.nan, math.nan) if interrupted else \
        evaluate(trainer, data.x_test, data.y_test, args.test_batch_size)
    return {
        "implementation": trainer.name,
        "config": jsonable(vars(args)),
        "environment": environment(**trainer.describe()),
        "epochs": list(p.epochs),
        "test_loss": test_loss,
        "test_acc": test_acc,
        "train_seconds": sum(r["epoch_seconds"] for r in p.epochs) + p.seconds,
        "interrupted": interrupted,
    }


def format_epoch(r: dict) -> str:
    val = "" if math.isnan(r["val_loss"]) else \
        f"  val loss {r['val_loss']:.4f} acc {r['val_acc']:7.2%}"
    return (f"epoch {r['epoch']:3d}  train loss {r['train_loss']:.4f} acc {r['train_acc']:7.2%}{val}"
            f"  {r['epoch_seconds']:6.2f} s  lr {r['lr']:.3g}")
