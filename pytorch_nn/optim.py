"""numpy_nn/optim.py, built in: torch.optim's optimizers and torch.optim.lr_scheduler's schedules."""
import torch


def make_optimizer(args, params):
    if args.optimizer == "sgd":
        return torch.optim.SGD(params, args.lr, momentum=args.momentum, nesterov=args.nesterov,
                               weight_decay=args.weight_decay)
    if args.optimizer == "adam":
        return torch.optim.Adam(params, args.lr, weight_decay=args.weight_decay)
    return torch.optim.AdamW(params, args.lr, weight_decay=args.weight_decay)


def make_scheduler(args, optimizer):
    """Stepped once per epoch, like numpy_nn.optim.lr_at."""
    if args.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, args.step_size, args.gamma)
    if args.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(args.epochs, 1))
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
