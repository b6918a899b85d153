"""Train the from-scratch MLP on MNIST: `python numpy_nn/train.py --help`.

The epoch loop, flags and outputs are shared with pytorch_nn (common.py); what is here is what PyTorch
automates: the forward pass, the loss gradient, backprop through every layer, and the update.
"""
import sys

import numpy as np

import common
from numpy_nn.losses import softmax_cross_entropy
from numpy_nn.model import MLP
from numpy_nn.optim import SGD, Adam, AdamW, lr_at


def make_optimizer(args, model):
    if args.optimizer == "sgd":
        return SGD(model.params, model.grads, args.lr, args.momentum, args.nesterov, args.weight_decay)
    if args.optimizer == "adam":
        return Adam(model.params, model.grads, args.lr, weight_decay=args.weight_decay)
    return AdamW(model.params, model.grads, args.lr, weight_decay=args.weight_decay)


class Trainer:
    name, suffix = "numpy", ".npz"

    def __init__(self, args):
        self.args = args
        self.model = MLP(args.hidden, args.activation, args.dropout, args.init, args.seed, np.dtype(args.dtype))
        self.opt = make_optimizer(args, self.model)
        self.epoch = 0

    def train_step(self, x, y):
        logits = self.model.forward(x)                        # (N, 10)
        loss, dlogits = softmax_cross_entropy(logits, y)
        self.model.backward(dlogits)                          # fills model.grads
        self.opt.step()                                       # updates model.params in place
        return loss, int(np.count_nonzero(logits.argmax(axis=1) == y))

    def predict(self, x):
        self.model.train(False)
        logits = self.model.forward(x)
        self.model.train(True)
        return logits

    @property
    def lr(self):
        return self.opt.lr

    def end_epoch(self):
        self.epoch += 1
        a = self.args
        self.opt.lr = lr_at(self.epoch, a.lr, a.schedule, a.epochs, a.step_size, a.gamma)

    def save(self, path):
        with common.atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **self.model.params)

    def load(self, path):
        if path.suffix != ".npz":
            raise common.RunError(f"{path}: not a numpy_nn checkpoint (.npz); a .pt file is pytorch_nn's, "
                                         f"evaluate it with pytorch_nn/train.py")
        try:
            with np.load(path, allow_pickle=False) as f:
                self.model.load({k: f[k] for k in f.files})
        except (OSError, ValueError) as e:
            raise common.RunError(f"{path}: {e}; pass the model flags it was trained with") from None

    def describe(self):
        from threadpoolctl import threadpool_info
        return {"threads": self.args.threads,
                "blas": sorted({f"{i['internal_api']} {i['version']}" for i in threadpool_info()})}


if __name__ == "__main__":
    sys.exit(common.main(Trainer, sys.argv[1:], description=__doc__.splitlines()[0]))
