"""numpy_nn/optim.py, built in: torch.optim's optimizers and torch.optim.lr_scheduler's schedules.

fused=True runs each optimizer as one kernel over all parameters (CPU and CUDA), as numpy_nn's flat buffers
do by hand; the default (for-each) path launches a few kernels per parameter tensor. Same formulas, same
numbers to float64 rounding."""
import torch

from common.architecture import decayed


def fused(args) -> bool:
    """Whether pytorch_nn runs the fused optimizer: unless --no-fused, and for all but Adadelta, which torch has
    only in for-each form."""
    return getattr(args, "fused", True) and args.optimizer != "adadelta"


def groups(args, model):
    """The model's parameters, or with --decay matrices two parameter groups: the weight matrices decayed, the rest
    (biases, norms, a ViT's class token and position embeddings) at weight_decay 0."""
    if getattr(args, "decay", "all") == "all" or not args.weight_decay:
        return model.parameters()
    named = list(model.named_parameters())
    return [{"params": [p for n, p in named if decayed(n, p.ndim)]},
            {"params": [p for n, p in named if not decayed(n, p.ndim)], "weight_decay": 0.0}]


def make_optimizer(args, model):
    params = groups(args, model)
    if args.optimizer == "adadelta":
        return torch.optim.Adadelta(params, args.lr, weight_decay=args.weight_decay)
    fused = {"fused": True} if getattr(args, "fused", True) else {}
    if args.optimizer == "sgd":
        return torch.optim.SGD(params, args.lr, momentum=args.momentum, nesterov=args.nesterov,
                               weight_decay=args.weight_decay, **fused)
    if args.optimizer == "adam":
        return torch.optim.Adam(params, args.lr, args.betas, weight_decay=args.weight_decay, **fused)
    return torch.optim.AdamW(params, args.lr, args.betas, weight_decay=args.weight_decay, **fused)


def make_scheduler(args, optimizer):
    """Stepped once per epoch, like numpy_nn.optim.lr_at; onecycle once per batch, like numpy_nn.optim.onecycle_lr."""
    if args.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr, total_steps=args.epochs * args.steps_per_epoch,
                                                   pct_start=args.warmup, cycle_momentum=False)
    if args.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, args.step_size, args.gamma)
    if args.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(args.epochs, 1))
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
