"""Train the PyTorch network on MNIST: `python pytorch_nn/train.py --help`.

Same flags, loop, batches and outputs as numpy_nn/train.py (common/); here autograd does the backward
pass (loss.backward()) and torch.optim the update, so the step is four lines.
"""

import torch

from common import cli, resume
from common.errors import RunError
from common.flags import pytorch_flags as add_flags
from common.weights import check_match
from pytorch_nn.fast_conv import channels_last
from pytorch_nn.losses import cross_entropy
from pytorch_nn.model import build, tensors
from pytorch_nn.optim import fused, make_optimizer, make_scheduler
from pytorch_nn.weight_files import read_weights


def host(t):
    """A tensor as a C-ordered NumPy array of its own (a copy), whatever its device and memory format."""
    return t.detach().to("cpu", memory_format=torch.contiguous_format, copy=True).numpy()


def objective(model, x, y, smoothing=0.0):
    """The forward pass and the loss: what --compile hands to torch.compile; autograd differentiates either."""
    logits = model(x)
    return cross_entropy(logits, y, label_smoothing=smoothing), logits


def pick_device(name):
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RunError("--device cuda: torch finds no CUDA device here; use --device cpu")
    return torch.device(name)


class Trainer:
    name = "pytorch"

    def __init__(self, args):
        torch.set_num_threads(args.threads)  # torch's own pool of threads runs every operation (pytorch_nn/replicas.py)
        torch.manual_seed(args.seed)  # dropout masks; the weights come from numpy_nn's initializer
        self.args = args
        self.device = pick_device(getattr(args, "device", "cpu"))
        self.model = build(args).to(self.device)
        if args.model == "cnn":  # NHWC inside, as numpy_nn's fast kernels keep it: oneDNN's fast path
            self.model = channels_last(self.model)
        self.opt = make_optimizer(args, self.model)
        self.objective = torch.compile(objective) if getattr(args, "compile", False) else objective
        self.sched, self.per_batch = make_scheduler(args, self.opt), args.schedule == "onecycle"
        self.sync_every_step = self.device.type == "cpu"  # on a GPU, .item() per step would stall it

    def place(self, x, y):
        """The arrays as tensors: shared memory on the CPU (no copy), one upload to a GPU."""
        return torch.from_numpy(x).to(self.device), torch.from_numpy(y).to(self.device)

    def train_step(self, x, y):
        loss, logits = self.objective(self.model, x, y, self.args.label_smoothing)
        self.opt.zero_grad(set_to_none=True)   # autograd accumulates into .grad, so clear it first
        loss.backward()                        # all of numpy_nn's backward methods, derived
        if self.args.clip_norm:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.args.clip_norm, foreach=True)
        self.opt.step()
        if self.per_batch:                     # a schedule stepped per batch (onecycle)
            self.sched.step()
        correct = (logits.argmax(dim=1) == y).sum()
        if self.sync_every_step:
            return loss.item(), int(correct)
        return loss.detach(), correct          # read later, all at once, by host()

    def host(self, values):
        return torch.stack(values).cpu().numpy()

    @torch.inference_mode()
    def predict(self, x):
        self.model.eval()
        logits = self.model(torch.from_numpy(x).to(self.device)).cpu().numpy()
        self.model.train()
        return logits

    @property
    def lr(self):
        return self.opt.param_groups[0]["lr"]

    def end_epoch(self):
        if not self.per_batch:
            self.sched.step()

    def weights(self):
        """A snapshot of the state_dict as C-ordered NumPy arrays (the format both twins exchange), whatever
        the memory format the tensors keep."""
        return {k: host(v) for k, v in self.model.state_dict().items()}

    def load_weights(self, arrays):
        check_match(arrays, self.model.state_dict())
        self.model.load_state_dict(tensors(arrays))

    def read_weights(self, path):
        return read_weights(path)

    def state(self):
        """Everything a resumed run needs besides the loop's progress: the state_dicts of the model, the
        optimizer and the scheduler, and the generators' states (the dropout masks)."""
        opt = self.opt.state_dict()
        arrays = {f"model.{k}": v for k, v in self.weights().items()}
        for index, state in opt["state"].items():
            arrays.update({f"optimizer.{index}.{k}": host(v) for k, v in state.items()})
        arrays["rng.cpu"] = torch.get_rng_state().numpy()
        if self.device.type == "cuda":
            arrays["rng.cuda"] = torch.cuda.get_rng_state(self.device).numpy()
        return arrays, {"param_groups": opt["param_groups"], "scheduler": self.sched.state_dict()}

    def load_state(self, arrays, meta):
        self.load_weights({k[6:]: v for k, v in arrays.items() if k.startswith("model.")})
        state = {}
        for k, v in arrays.items():
            if k.startswith("optimizer."):
                _, index, name = k.split(".", 2)
                state.setdefault(int(index), {})[name] = torch.from_numpy(v)
        # a run that has taken steps has the optimizer's state of every parameter: refuse one that lacks some
        # (torch would quietly start those from zeros)
        needed = {"sgd": {"momentum_buffer"} if self.args.momentum else set(),
                  "adadelta": {"step", "square_avg", "acc_delta"}}.get(self.args.optimizer,
                                                                       {"step", "exp_avg", "exp_avg_sq"})
        n = sum(len(group["params"]) for group in self.opt.param_groups)
        lacking = sorted({f"{k} of parameter {i}" for i in range(n) for k in needed - set(state.get(i, {}))})
        if lacking and (meta.get("started") or state):
            raise ValueError(f"the optimizer's state lacks {', '.join(lacking[:3])}" + (" ..." if len(lacking) > 3 else ""))
        self.opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        for param, moments in self.opt.state.items():  # each moment in its parameter's memory format: the fused
            for k, v in moments.items():                # kernel pairs elements by memory order, not by index
                if v.shape == param.shape:
                    moments[k] = torch.empty_like(param).copy_(v)
        resume.schedule_position(meta["scheduler"].get("last_epoch"), self.args, "the scheduler's last_epoch")
        self.sched.load_state_dict(meta["scheduler"])
        torch.set_rng_state(torch.from_numpy(arrays["rng.cpu"]))
        if "rng.cuda" in arrays and self.device.type == "cuda":
            torch.cuda.set_rng_state(torch.from_numpy(arrays["rng.cuda"]), self.device)

    def close(self):
        """Nothing to stop: torch's threads are torch's (numpy_nn's trainer stops its replica processes here)."""

    def describe(self):
        fused_, compiled = fused(self.args), getattr(self.args, "compile", False)
        d = {"threads": torch.get_num_threads(), "device": str(self.device), "fused": fused_, "compiled": compiled,
             "runs_with": ("fused optimizer" if fused_ else "for-each optimizer") + (", compiled" if compiled else "")}
        if self.device.type == "cuda":
            d["gpu"] = torch.cuda.get_device_name(self.device)
        return d


if __name__ == "__main__":
    cli.run(Trainer, __doc__.splitlines()[0], add_flags)
