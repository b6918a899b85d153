"""Train the from-scratch network on MNIST: `python numpy_nn/train.py --help`.

The epoch loop, flags and outputs are shared with pytorch_nn (common/); what is here is what PyTorch
automates: the forward pass, the loss gradient, backprop through every layer, and the update.
"""

import numpy as np
from threadpoolctl import threadpool_limits

from common import cli, resume
from common.errors import RunError
from common.flags import numpy_flags as add_flags
from numpy_nn import replicas
from numpy_nn.losses import softmax_cross_entropy
from numpy_nn.model import build
from numpy_nn.optim import clip_grad_norm, lr_at, make_optimizer, onecycle_lr
from numpy_nn.weight_files import read_weights


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


class Trainer:
    name = "numpy"

    def __init__(self, args):
        self.args = args
        self.xp = array_library(getattr(args, "backend", "numpy"))
        self.processes = replicas.count(args, self.xp)  # (--processes, or its default for this network)
        self.blas_threads = max(1, args.threads // self.processes)
        threadpool_limits(self.blas_threads, user_api="blas")
        self.model = build(args, self.xp)
        self.opt = make_optimizer(args, self.model)
        self.epoch, self.steps, self.per_batch = 0, 0, args.schedule == "onecycle"
        if self.per_batch:
            self.opt.lr = self.onecycle(0)
        self.replicas = None  # numpy_nn/replicas.py: each batch shared over processes, started at the first step
        self.sync_every_step = self.xp is np  # on a GPU, losses are read once per epoch (common/loop.py)
        self.to_host = np.asarray if self.xp is np else self.xp.asnumpy

    def place(self, x, y):
        """The training arrays where the trainer computes, once; with --processes, the replica processes started
        (before the first timed step: a spawned replica takes a second to import NumPy and build its model)."""
        if self.processes > 1 and self.replicas is None:
            self.replicas = replicas.Replicas(self.args, self.model, x.shape[1:], self.processes)
        return self.xp.asarray(x), self.xp.asarray(y)

    def train_step(self, x, y):
        if self.processes > 1 and self.replicas is None:  # (placed elsewhere: started at the first step)
            self.replicas = replicas.Replicas(self.args, self.model, x.shape[1:], self.processes)
        shared = self.replicas.forward_backward(x, y) if self.replicas else None  # a slice of it in each process
        if shared is None:
            logits = self.model.forward(x)                    # (N, 10)
            loss, dlogits = softmax_cross_entropy(logits, y, self.args.label_smoothing)
            self.model.backward(dlogits)                      # fills model.grads
            correct = (logits.argmax(axis=1) == y).sum()
        else:
            loss, correct = shared
        if self.args.clip_norm:
            clip_grad_norm(self.model.flat_grads, self.args.clip_norm)  # all of them as one vector, as torch's
        self.opt.step()                                       # updates model.params in place
        if self.per_batch:                                    # a schedule stepped per batch (onecycle)
            self.steps += 1
            self.opt.lr = self.onecycle(self.steps)
        return (float(loss), int(correct)) if self.sync_every_step else (loss, correct)

    def host(self, values):
        return self.to_host(self.xp.stack(values))

    def predict(self, x):
        self.model.train(False)
        with threadpool_limits(self.args.threads, user_api="blas"):  # (the replicas wait meanwhile)
            logits = self.model.forward(self.xp.asarray(x))
        self.model.train(True)
        return self.to_host(logits)

    def close(self):
        """Stop the replica processes, if any (also done when the trainer is collected, or at exit)."""
        if self.replicas is not None:
            self.replicas.close()
            self.replicas = None

    @property
    def lr(self):
        return self.opt.lr

    def end_epoch(self):
        self.at_epoch(self.epoch + 1)

    def at_epoch(self, epoch):
        """The schedule's position: the learning rate of 0-based epoch (per-batch schedules move in train_step)."""
        a = self.args
        self.epoch = epoch
        if not self.per_batch:
            self.opt.lr = lr_at(epoch, a.lr, a.schedule, a.epochs, a.step_size, a.gamma)

    def onecycle(self, step):
        a = self.args
        return onecycle_lr(step, a.epochs * a.steps_per_epoch, a.lr, a.warmup)

    def weights(self):
        """A snapshot of every tensor under torch's names and layouts, on the host."""
        return {k: np.array(self.to_host(v), order="C") for k, v in self.model.state_dict().items()}

    def load_weights(self, arrays):
        self.model.load_state_dict(arrays)

    def read_weights(self, path):
        return read_weights(path)

    def state(self):
        """Everything a resumed run needs besides the loop's progress: weights and buffers, the optimizer's
        state, the schedule's position and the dropout generator's (on the CPU; CuPy's cannot be saved)."""
        moments, numbers = self.opt.state_dict()
        arrays = {**{f"model.{k}": v for k, v in self.weights().items()},
                  **{f"optimizer.{k}": self.to_host(v) for k, v in moments.items()}}
        rng = self.model.mask_rng.bit_generator.state if self.xp is np else None
        return arrays, {"optimizer": numbers, "epoch": self.epoch, "steps": self.steps, "rng": rng}

    def load_state(self, arrays, meta):
        self.load_weights({k[6:]: v for k, v in arrays.items() if k.startswith("model.")})
        self.opt.load_state_dict({k[10:]: v for k, v in arrays.items() if k.startswith("optimizer.")}, meta["optimizer"])
        self.at_epoch(meta["epoch"])
        self.steps = resume.schedule_position(meta.get("steps", 0), self.args, "steps")
        if self.per_batch:
            self.opt.lr = self.onecycle(self.steps)
        if meta["rng"] is not None and self.xp is np:
            self.model.mask_rng.bit_generator.state = meta["rng"]

    def describe(self):
        kernels = getattr(self.args, "kernels", "fast")
        d = {"threads": self.args.threads, "processes": self.processes, "blas_threads": self.blas_threads,
             "backend": self.xp.__name__, "kernels": kernels,
             "runs_with": ", ".join([*([f"{kernels} kernels"] * bool(self.args.model != "mlp" or self.args.batch_norm)),
                                     "optimizer on one flat buffer",
                                     *([f"each batch shared over {self.processes} processes"] * (self.processes > 1))])}
        if self.xp is not np:
            d["gpu"] = self.xp.cuda.runtime.getDeviceProperties(0)["name"].decode()
        return d


if __name__ == "__main__":
    cli.run(Trainer, __doc__.splitlines()[0], add_flags)
