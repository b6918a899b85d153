"""The twins are one network, shown in the run that compares them (the test suite proves it; this shows it).

Three lockstep runs from the same initial weights on the same batches: float64 without dropout (the twins
agree to float64 rounding), float32 without dropout (to float32 rounding, drifting as training amplifies it)
and float32 with dropout (the masks come from different generators: the runs part at once). A CNN's float64 run
has a control beside it: numpy_nn's reference kernels in the same lockstep, two correct implementations of one
network that differ only in the order of their sums, to show how far training carries rounding alone. Then one float64
batch, every gradient numpy_nn's backward computes against torch autograd's, and the weight interchange:
each twin's trained model evaluated by the other.
"""
from __future__ import annotations

import argparse
import itertools

import numpy as np
import pandas as pd

import data_loader
from common import cli, loop
from comparison.plots import figure, save
from comparison.runs import parse_run_args, trainer_module
from comparison.tables import markdown_table, write_csv

STEPS, SUBSET = 120, 2048  # >= 100 steps on a 2,048-image training subset: a few seconds for the MLP
CONTROL = "control: float64, numpy_nn's reference kernels against its fast kernels"
EPS = {"float64": float(np.finfo(np.float64).eps), "float32": float(np.finfo(np.float32).eps)}


def cases(args) -> dict[str, dict]:
    p = args.dropout or 0.1
    return {"float64, dropout off": dict(dtype="float64", dropout=0.0, input_dropout=0.0),
            "float32, dropout off": dict(dtype="float32", dropout=0.0, input_dropout=0.0),
            f"float32, dropout {p:g}": dict(dtype="float32", dropout=p, input_dropout=args.input_dropout)}


def twins(argv, **override):
    """(args, numpy_nn trainer, pytorch_nn trainer, data) on the CPU, with flags overridden; the learning rate held
    (a constant schedule), as the lockstep runs more steps than a short run's schedule may have."""
    args = parse_run_args(None, "cpu", [*argv, "--seed", "1"])
    vars(args).update(override, limit_train=SUBSET, schedule="constant")
    cli.threadpool_limits(args.threads)
    data = cli.load_data(args)  # first: a schedule stepped per batch counts its steps from it
    return args, trainer_module("numpy").Trainer(args), trainer_module("pytorch").Trainer(args), data


def lockstep(trainers, data, args, steps=STEPS) -> np.ndarray:
    """(len(trainers), steps) training losses, each step on the same batch; the learning rate is held."""
    placed = [t.place(data.x_train, data.y_train) for t in trainers]
    losses = np.empty((len(trainers), steps))
    step = 0
    for epoch in itertools.count():
        for batch in zip(*(data_loader.batches(x, y, args.batch_size, args.seed, epoch,
                                               min_last=loop.min_last_batch(args)) for x, y in placed)):
            for i, (trainer, (xb, yb)) in enumerate(zip(trainers, batch)):
                losses[i, step] = trainer.train_step(xb, yb)[0]
            step += 1
            if step == steps:
                return losses


def gradients(np_trainer, pt_trainer, x, y) -> pd.DataFrame:
    """One batch through both: logits, loss and every parameter's gradient, numpy_nn's backward against
    autograd's, as the largest difference relative to the tensor's largest entry."""
    import torch

    from numpy_nn.losses import softmax_cross_entropy
    model = np_trainer.model
    logits = model.forward(x)
    loss, dlogits = softmax_cross_entropy(logits, y)
    model.backward(dlogits)
    t_logits = pt_trainer.model(torch.from_numpy(x))
    t_loss = torch.nn.functional.cross_entropy(t_logits, torch.from_numpy(y))
    t_loss.backward()
    pairs = {"logits": (logits, t_logits.detach().numpy()), "loss": (np.float64(loss), t_loss.detach().numpy())}
    reference = {name: p.grad.numpy() for name, p in pt_trainer.model.named_parameters()}
    pairs.update({f"d {name}": (g, reference[name]) for name, g in model.torch_grads().items()})
    rows = []
    for name, (a, b) in pairs.items():
        diff, scale = float(np.max(np.abs(a - b))), float(np.max(np.abs(b)))
        rows.append({"tensor": name, "shape": "x".join(map(str, np.shape(b))) or "scalar",
                     "max_abs_diff": diff, "max_abs_value": scale, "relative": diff / scale if scale else 0.0})
    return pd.DataFrame(rows)


def control(args, trainer):
    """numpy_nn with its reference kernels, from the trainer's weights: the float64 run's control (a CNN's or a
    recurrent network's: an MLP's two kernel sets compute the same sums). Summed in another order, float64 numbers part in their last
    digits, and training amplifies that step by step, batch norm and a high learning rate most: its statistics sum
    each channel over N*H*W values (147,456 for conv1 at batch 256 of cnn-fast's network with batch norm everywhere,
    where the twins' conv1 outputs were equal to the bit and conv1_bn's 8e-13 apart)."""
    if args.model == "mlp":
        return []
    reference = trainer_module("numpy").Trainer(argparse.Namespace(**{**vars(args), "kernels": "reference"}))
    reference.load_weights(trainer.weights())
    return [reference]


def proof_job(argv: list[str], steps_per_case: int = STEPS) -> dict:
    """Everything the section shows, computed in a worker process with both twins on the CPU."""
    base = parse_run_args(None, "cpu", argv)
    steps = []
    for case, override in cases(base).items():
        args, a, b, data = twins(argv, **override)
        extra = control(args, a) if args.dtype == "float64" else []
        losses = lockstep([a, b, *extra], data, args, steps_per_case)
        a.close()
        steps += [{"case": case, "step": i + 1, "loss_numpy": la, "loss_pytorch": lb, "rel_diff": abs(la - lb) / lb,
                   **({"loss_numpy_reference": lr[0], "rel_diff_kernels": abs(la - lr[0]) / lr[0]} if extra else {})}
                  for i, (la, lb, *lr) in enumerate(losses.T)]
    args, a, b, data = twins(argv, dtype="float64", dropout=0.0, input_dropout=0.0)
    xb, yb = next(data_loader.batches(data.x_train, data.y_train, args.batch_size, args.seed, 0))
    return {"steps": pd.DataFrame(steps), "gradients": gradients(a, b, xb, yb),
            "batch_size": args.batch_size, "optimizer": args.optimizer, "lr": args.lr}


def interchange_job(argv: list[str], weights: dict, predictions: dict) -> pd.DataFrame:
    """Each trained model (weights by label) evaluated by each twin on the test set; `differ` counts the
    test images whose predicted digit is not the one the model's own twin predicted."""
    rows = []
    for impl in ("numpy", "pytorch"):
        args = parse_run_args(None, "cpu", argv)  # the flags of both twins (the proof's)
        cli.threadpool_limits(args.threads)
        data, trainer = cli.load_data(args), trainer_module(impl).Trainer(args)
        for source, w in weights.items():
            trainer.load_weights(w)
            pred = loop.predict_all(trainer, data.x_test, args.test_batch_size).argmax(axis=1)
            rows.append({"weights_from": source, "evaluated_by": f"{impl}_nn", "test_acc": float(np.mean(pred == data.y_test)),
                         "differ": int(np.sum(pred != predictions[source]))})
    return pd.DataFrame(rows)


def controlled(steps: pd.DataFrame) -> pd.DataFrame | None:
    """The lockstep's steps that ran the control beside the twins (a CNN's float64 run), or None."""
    return steps.dropna(subset=["rel_diff_kernels"]) if "rel_diff_kernels" in steps else None


def plot_parity(steps: pd.DataFrame, path):
    """parity.png: |loss_numpy - loss_torch| / loss per step, log scale, with machine epsilons drawn."""
    fig, (ax,) = figure(1, width=7.5, height=4.4)
    for (case, g), c in zip(steps.groupby("case", sort=False), ["tab:blue", "tab:orange", "tab:red"]):
        exact = int((g["rel_diff"] == 0).sum())
        ax.plot(g["step"], g["rel_diff"].where(g["rel_diff"] > 0), ".-", color=c, markersize=3, linewidth=0.8,
                label=case + (f" ({exact} step{'s' * (exact > 1)} exactly equal, not drawn)" if exact else ""))
    if (control := controlled(steps)) is not None:
        ax.plot(control["step"], control["rel_diff_kernels"].where(control["rel_diff_kernels"] > 0), "--",
                color="gray", linewidth=0.8, label=CONTROL)
    for name, eps in EPS.items():
        ax.axhline(eps, color="gray", linestyle=":", linewidth=1)
        ax.text(steps["step"].max(), eps * 0.45, f"{name} machine epsilon {eps:.1e}", fontsize=7, color="gray",
                ha="right", va="top")
    ax.set_yscale("log")
    ax.set_xlabel("training step (same batch in both twins)")
    ax.set_ylabel("|loss numpy_nn - loss pytorch_nn| / loss")
    ax.set_title("The twins step by step, from the same initial weights")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center", bbox_to_anchor=(0.5, 0.37))
    save(fig, path)


def section(result: dict, interchange: pd.DataFrame | None, out) -> list[str]:
    """Write parity.csv, gradients.csv, parity.png (and interchange.csv); return the report's Markdown."""
    steps = result["steps"]
    write_csv(steps, out / "parity.csv")
    write_csv(result["gradients"], out / "gradients.csv")
    plot_parity(steps, out / "parity.png")
    summary = steps.groupby("case", sort=False)["rel_diff"].agg(["median", "max"]).reset_index()
    if (control := controlled(steps)) is not None:
        summary.loc[len(summary)] = [CONTROL, control["rel_diff_kernels"].median(), control["rel_diff_kernels"].max()]
    summary.columns = ["case", "median relative loss difference", "max relative loss difference"]
    lines = ["## The twins are one network\n",
             f"Measured in this run: both twins from the same initial weights (seed 1), {steps['step'].max()} steps of "
             f"{result['optimizer']} (lr {result['lr']:g}, held) on the same batches of {result['batch_size']} from "
             f"a {SUBSET:,}-image training subset. Per-step numbers: parity.csv.\n",
             markdown_table(summary), "",
             "Why the float32 rows part: a float32 sum differs from another order's in its 7th digit, and each step "
             "of training carries the difference on and amplifies it, the more the higher the held learning rate "
             "(and the more batch norm renormalizes); with dropout the twins also draw their masks from different "
             "generators (NumPy's and torch's), so they train different subnetworks from the first step and part at "
             "once, whatever the precision. Only the float64 row, with dropout off, is a test of the math.\n",
             *(["The control: numpy_nn against itself in the float64 lockstep, its reference kernels against its fast "
                "ones (the same math, its sums in another order). It measures how far this network and learning rate "
                "carry rounding alone, step by step: twins that drift about as far differ by rounding, not by "
                "math.\n"] if control is not None else []),
             "![parity](parity.png)\n",
             "One float64 batch, numpy_nn's hand-written backward against torch autograd (relative = largest "
             "difference / largest entry of the tensor):\n", markdown_table(result["gradients"]), ""]
    if interchange is not None:
        write_csv(interchange, out / "interchange.csv")
        grid = interchange.assign(cell=[f"{100 * r.test_acc:.2f} % ({r.differ} differ)" for r in interchange.itertuples()])
        grid = grid.pivot(index="weights_from", columns="evaluated_by", values="cell").reset_index()
        lines += ["Weight interchange: each twin's seed-1 model evaluated by both twins on the 10,000 test images "
                  "(in parentheses, the test images whose predicted digit differs from the model's own twin's):\n",
                  markdown_table(grid.rename(columns={"weights_from": "weights from \\ evaluated by"})), "",
                  "![weights](weights.png)\n"]
    return lines
