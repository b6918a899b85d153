"""numpy_nn's optimizers and schedules against torch.optim's, from the same parameters and gradients (float64)."""
import math

import numpy as np
import pytest
import torch

from numpy_nn.optim import SGD, Adadelta, Adam, AdamW, clip_grad_norm, lr_at, onecycle_lr

TOL = 1e-12
CASES = {
    "sgd": (lambda P, G: SGD(P, G, 0.1), lambda ps: torch.optim.SGD(ps, 0.1)),
    "sgd+wd": (lambda P, G: SGD(P, G, 0.1, weight_decay=0.01), lambda ps: torch.optim.SGD(ps, 0.1, weight_decay=0.01)),
    "momentum": (lambda P, G: SGD(P, G, 0.1, momentum=0.9),
                 lambda ps: torch.optim.SGD(ps, 0.1, momentum=0.9)),
    "momentum+wd": (lambda P, G: SGD(P, G, 0.1, momentum=0.9, weight_decay=0.01),
                    lambda ps: torch.optim.SGD(ps, 0.1, momentum=0.9, weight_decay=0.01)),
    "nesterov+wd": (lambda P, G: SGD(P, G, 0.1, momentum=0.8, nesterov=True, weight_decay=0.01),
                    lambda ps: torch.optim.SGD(ps, 0.1, momentum=0.8, nesterov=True, weight_decay=0.01)),
    "adam": (lambda P, G: Adam(P, G, 1e-2), lambda ps: torch.optim.Adam(ps, 1e-2)),
    "adam+l2": (lambda P, G: Adam(P, G, 1e-2, weight_decay=0.01), lambda ps: torch.optim.Adam(ps, 1e-2, weight_decay=0.01)),
    "adam betas eps": (lambda P, G: Adam(P, G, 1e-2, betas=(0.8, 0.99), eps=1e-6),
                       lambda ps: torch.optim.Adam(ps, 1e-2, betas=(0.8, 0.99), eps=1e-6)),
    "adamw": (lambda P, G: AdamW(P, G, 1e-2, weight_decay=0.1), lambda ps: torch.optim.AdamW(ps, 1e-2, weight_decay=0.1)),
    "adadelta": (lambda P, G: Adadelta(P, G, 1.0), lambda ps: torch.optim.Adadelta(ps, 1.0)),
    "adadelta+wd": (lambda P, G: Adadelta(P, G, 0.5, weight_decay=0.01),
                    lambda ps: torch.optim.Adadelta(ps, 0.5, weight_decay=0.01)),
}


@pytest.mark.parametrize("case", CASES)
def test_optimizer_matches_torch(case):
    make_np, make_torch = CASES[case]
    rng = np.random.default_rng(0)
    P = {"fc1.W": rng.standard_normal((5, 4)), "fc1.b": rng.standard_normal(4)}
    G = {k: np.zeros_like(v) for k, v in P.items()}
    tparams = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in P.items()}
    opt, topt = make_np(P, G), make_torch(list(tparams.values()))
    start = {k: v.copy() for k, v in P.items()}
    for step in range(30):
        if step == 15:  # a schedule changes lr between steps: both must read it afresh
            opt.lr = opt.lr / 3
            topt.param_groups[0]["lr"] = topt.param_groups[0]["lr"] / 3
        for k in P:
            g = rng.standard_normal(P[k].shape) * (1 + step)
            G[k][...] = g
            tparams[k].grad = torch.tensor(g.copy())
        opt.step()
        topt.step()
        for k in P:
            diff = np.max(np.abs(P[k] - tparams[k].detach().numpy()))
            assert diff <= TOL, f"{case}: {k} differs by {diff:.2e} after step {step + 1}"
    for k in P:  # they agree on steps that moved the parameters (an optimizer doing nothing would agree too)
        assert np.abs(P[k] - start[k]).max() > 0.01, f"{case}: {k} barely moved"


@pytest.mark.parametrize("schedule, kwargs, make", [
    ("constant", {}, lambda o, e: torch.optim.lr_scheduler.ConstantLR(o, factor=1.0, total_iters=0)),
    ("step", dict(step_size=3, gamma=0.5), lambda o, e: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
    ("step", dict(step_size=1, gamma=0.7), lambda o, e: torch.optim.lr_scheduler.StepLR(o, 1, 0.7)),
    ("cosine", {}, lambda o, e: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=e)),
])
def test_schedule_matches_torch(schedule, kwargs, make):
    epochs, base = 20, 0.05
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], base)
    sched = make(opt, epochs)
    for epoch in range(epochs):
        expected = opt.param_groups[0]["lr"]
        got = lr_at(epoch, base, schedule, epochs, **kwargs)
        assert math.isclose(got, expected, rel_tol=TOL, abs_tol=1e-18), f"epoch {epoch}: {got} vs {expected}"
        opt.step()
        sched.step()


def test_nesterov_without_momentum_is_refused():
    with pytest.raises(ValueError, match="nesterov"):
        SGD({}, {}, 0.1, nesterov=True)


@pytest.mark.parametrize("total, warmup, max_lr", [(100, 0.3, 0.01), (37, 0.25, 5e-3), (7, 0.5, 1.0)])
def test_onecycle_matches_torch_at_every_step(total, warmup, max_lr):
    """torch's OneCycleLR (cycle_momentum off, cosine, two phases), stepped once per batch: the same learning rate
    at every step, to the last bit."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], max_lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr, total_steps=total, pct_start=warmup, cycle_momentum=False)
    for step in range(total):
        assert onecycle_lr(step, total, max_lr, warmup) == opt.param_groups[0]["lr"], step
        opt.step()
        sched.step()
    assert onecycle_lr(0, total, max_lr, warmup) == pytest.approx(max_lr / 25, rel=1e-12)
    assert max(onecycle_lr(s, total, max_lr, warmup) for s in range(total)) <= max_lr


@pytest.mark.parametrize("scale", [0.01, 1.0, 100.0])
def test_clip_grad_norm_matches_torch(scale):
    """numpy_nn's clipping of the flat gradient buffer against torch.nn.utils.clip_grad_norm_ over separate tensors:
    the same norm, the same scaled gradients, below the threshold (untouched) and above it."""
    rng = np.random.default_rng(3)
    shapes = [(5, 4), (4,), (3, 5)]
    grads = [rng.standard_normal(s) * scale for s in shapes]
    flat = np.concatenate([g.ravel() for g in grads])
    tensors = [torch.tensor(g.copy(), requires_grad=True) for g in grads]
    for t, g in zip(tensors, grads):
        t.grad = torch.tensor(g.copy())
    norm, tnorm = clip_grad_norm(flat, 1.0), torch.nn.utils.clip_grad_norm_(tensors, 1.0)
    assert norm == pytest.approx(float(tnorm), rel=1e-14)
    np.testing.assert_allclose(flat, np.concatenate([t.grad.numpy().ravel() for t in tensors]), rtol=1e-14, atol=0)
    assert (np.linalg.norm(flat) < 1.0) == (norm > 1.0) or norm == pytest.approx(np.linalg.norm(flat))
