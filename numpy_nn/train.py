"""Train the from-scratch network on MNIST: `python numpy_nn/train.py --help`.

The epoch loop, flags and outputs are shared with pytorch_nn (common/); what is here is what PyTorch
automates: the forward pass, the loss gradient, backprop through every layer, and the update.
"""
import sys

import numpy as np

from common import cli
from common.errors import RunError
from common.files import atomic_path
from common.weights import check_match
from numpy_nn.losses import softmax_cross_entropy
from numpy_nn.model import build
from numpy_nn.optim import SGD, Adam, AdamW, lr_at


def add_flags(parser):
    parser.add_argument("--backend", choices=["numpy", "cupy"], default="numpy",
                        help="array library: NumPy on the CPU, or CuPy on a CUDA GPU; the math is the same "
                             "code (default: %(default)s)")


def array_library(name):
    """numpy, or cupy when asked for and usable; otherwise one line saying why not."""
    if name == "numpy":
        return np
    try:
        import cupy
        cupy.cuda.runtime.getDeviceCount()
    except ImportError:
        raise RunError("--backend cupy: CuPy is not installed; on a machine with a CUDA GPU, "
                       "pip install -r requirements-gpu.txt") from None
    except Exception as e:  # CUDA driver or runtime errors: no usable GPU
        raise RunError(f"--backend cupy: no usable CUDA device ({type(e).__name__}: "
                       f"{' '.join(str(e).split())[:100]}); use --backend numpy") from None
    return cupy


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
        self.xp = array_library(getattr(args, "backend", "numpy"))
        self.model = build(args, self.xp)
        self.opt = make_optimizer(args, self.model)
        self.epoch = 0
        self.sync_every_step = self.xp is np  # on a GPU, losses are read once per epoch (common/loop.py)

    def place(self, x, y):
        return self.xp.asarray(x), self.xp.asarray(y)

    def train_step(self, x, y):
        logits = self.model.forward(x)                        # (N, 10)
        loss, dlogits = softmax_cross_entropy(logits, y)
        self.model.backward(dlogits)                          # fills model.grads
        self.opt.step()                                       # updates model.params in place
        correct = (logits.argmax(axis=1) == y).sum()
        return (float(loss), int(correct)) if self.sync_every_step else (loss, correct)

    def host(self, values):
        values = self.xp.stack(values)
        return values if self.xp is np else self.xp.asnumpy(values)

    def predict(self, x):
        self.model.train(False)
        logits = self.model.forward(self.xp.asarray(x))
        self.model.train(True)
        return logits if self.xp is np else self.xp.asnumpy(logits)

    @property
    def lr(self):
        return self.opt.lr

    def end_epoch(self):
        self.epoch += 1
        a = self.args
        self.opt.lr = lr_at(self.epoch, a.lr, a.schedule, a.epochs, a.step_size, a.gamma)

    def weights(self):
        """A snapshot of every tensor under torch's names and layouts, on the host."""
        host = np.asarray if self.xp is np else self.xp.asnumpy
        return {k: np.array(host(v), order="C") for k, v in self.model.state_dict().items()}

    def load_weights(self, arrays):
        self.model.load_state_dict(arrays)

    def save(self, path):
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **{k: v if self.xp is np else self.xp.asnumpy(v) for k, v in self.model.params.items()})

    def load(self, path):
        if path.suffix != ".npz":
            raise RunError(f"{path}: not a numpy_nn checkpoint (.npz); a .pt file is pytorch_nn's, "
                           f"evaluate it with pytorch_nn/train.py")
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
            check_match(arrays, self.model.params)
            for name, p in self.model.params.items():
                p[...] = arrays[name]
        except (OSError, ValueError) as e:
            raise RunError(f"{path}: {e}; pass the model flags it was trained with") from None

    def describe(self):
        from threadpoolctl import threadpool_info
        d = {"threads": self.args.threads, "backend": self.xp.__name__,
             "blas": sorted({f"{i['internal_api']} {i['version']}" for i in threadpool_info()})}
        if self.xp is not np:
            d["gpu"] = self.xp.cuda.runtime.getDeviceProperties(0)["name"].decode()
        return d


if __name__ == "__main__":
    sys.exit(cli.main(Trainer, sys.argv[1:], description=__doc__.splitlines()[0], add_flags=add_flags))
