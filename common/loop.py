"""The epoch loop both twins run: the same batches, the same timing, the same records."""
from __future__ import annotations

import math
import time

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


def train_epoch(trainer, x, y, args, epoch) -> dict:
    """One pass over (x, y), as placed by trainer.place, in the (seed, epoch) order; times the updates only.

    A step's loss comes back as a float (CPU: checked at once, training stops at the first non-finite one)
    or as a device array (GPU: reading it would stall the pipeline, so the epoch's losses are read together
    at its end, which also waits for the device before the clock stops).
    """
    n, loss_sum, correct, deferred = len(x), 0.0, 0, []
    progress = tqdm(total=n, desc=f"epoch {epoch + 1}/{args.epochs}", unit="img", unit_scale=True,
                    leave=False, disable=args.quiet, mininterval=0.5)
    start = time.perf_counter()
    # numpy's overflow warnings would only precede the one-line divergence error raised below
    with progress, np.errstate(over="ignore", invalid="ignore"):
        for step, (xb, yb) in enumerate(data_loader.batches(x, y, args.batch_size, args.seed, epoch)):
            loss, n_correct = trainer.train_step(xb, yb)
            if isinstance(loss, float):
                if not math.isfinite(loss):
                    raise _diverged(trainer, epoch, step, loss)
                loss_sum += loss * len(yb)
            else:
                deferred.append((loss, len(yb)))
            correct += n_correct
            progress.update(len(yb))
        if deferred:
            losses = trainer.host([loss for loss, _ in deferred])
            bad = np.flatnonzero(~np.isfinite(losses))
            if bad.size:
                raise _diverged(trainer, epoch, int(bad[0]), losses[bad[0]])
            loss_sum = sum(float(loss) * size for loss, (_, size) in zip(losses, deferred))
    seconds = time.perf_counter() - start
    return {"train_loss": loss_sum / n, "train_acc": int(correct) / n, "epoch_seconds": seconds}


def _diverged(trainer, epoch, step, loss) -> Diverged:
    return Diverged(f"training loss is {float(loss)} at epoch {epoch + 1}, step {step + 1} (lr {trainer.lr:g}); "
                    f"try a smaller --lr, e.g. {trainer.lr / 10:g}")


def fit(trainer, data, args, log=print, test_each_epoch=False) -> dict:
    """Train for args.epochs; returns the history record (config, environment, epochs, test figures).
    test_each_epoch adds test_loss/test_acc to every epoch's record (compare.py's time-to-accuracy)."""
    epochs = []
    x, y = trainer.place(data.x_train, data.y_train)  # once: on a GPU the whole training set moves there
    for epoch in range(args.epochs):
        lr = trainer.lr
        record = {"epoch": epoch + 1, **train_epoch(trainer, x, y, args, epoch)}
        record["val_loss"], record["val_acc"] = evaluate(trainer, data.x_val, data.y_val, args.test_batch_size)
        if test_each_epoch:
            record["test_loss"], record["test_acc"] = evaluate(trainer, data.x_test, data.y_test, args.test_batch_size)
        record["lr"] = lr
        epochs.append(record)
        trainer.end_epoch()
        log(format_epoch(record))
    test_loss, test_acc = evaluate(trainer, data.x_test, data.y_test, args.test_batch_size)
    return {
        "implementation": trainer.name,
        "config": jsonable(vars(args)),
        "environment": environment(**trainer.describe()),
        "epochs": epochs,
        "test_loss": test_loss,
        "test_acc": test_acc,
        "train_seconds": sum(r["epoch_seconds"] for r in epochs),
    }


def format_epoch(r: dict) -> str:
    val = "" if math.isnan(r["val_loss"]) else \
        f"  val loss {r['val_loss']:.4f} acc {r['val_acc']:7.2%}"
    return (f"epoch {r['epoch']:3d}  train loss {r['train_loss']:.4f} acc {r['train_acc']:7.2%}{val}"
            f"  {r['epoch_seconds']:6.2f} s  lr {r['lr']:.3g}")
