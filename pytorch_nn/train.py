"""Train the PyTorch network on MNIST: `python pytorch_nn/train.py --help`.

Same flags, loop, batches and outputs as numpy_nn/train.py (common/); here autograd does the backward
pass (loss.backward()) and torch.optim the update, so the step is four lines.
"""
import sys

import torch

from common import cli
from common.errors import RunError
from common.files import atomic_path
from common.weights import check_match
from pytorch_nn.losses import softmax_cross_entropy
from pytorch_nn.model import build, tensors
from pytorch_nn.optim import make_optimizer, make_scheduler


def add_flags(parser):
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="where to train; auto picks CUDA when present (default: %(default)s)")


def pick_device(name):
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RunError("--device cuda: torch finds no CUDA device here; use --device cpu")
    return torch.device(name)


class Trainer:
    name, suffix = "pytorch", ".pt"

    def __init__(self, args):
        torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed)  # dropout masks; the weights come from numpy_nn's initializer
        self.args = args
        self.device = pick_device(getattr(args, "device", "cpu"))
        self.model = build(args).to(self.device)
        self.opt = make_optimizer(args, self.model.parameters())
        self.sched = make_scheduler(args, self.opt)
        self.sync_every_step = self.device.type == "cpu"  # on a GPU, .item() per step would stall it

    def place(self, x, y):
        """The arrays as tensors: shared memory on the CPU (no copy), one upload to a GPU."""
        return torch.from_numpy(x).to(self.device), torch.from_numpy(y).to(self.device)

    def train_step(self, x, y):
        logits = self.model(x)
        loss = softmax_cross_entropy(logits, y)
        self.opt.zero_grad(set_to_none=True)   # autograd accumulates into .grad, so clear it first
        loss.backward()                        # all of numpy_nn's backward methods, derived
        self.opt.step()
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
        self.sched.step()

    def weights(self):
        """A snapshot of the state_dict as NumPy arrays: the format both twins exchange."""
        return {k: v.detach().to("cpu", copy=True).numpy() for k, v in self.model.state_dict().items()}

    def load_weights(self, arrays):
        check_match(arrays, self.model.state_dict())
        self.model.load_state_dict(tensors(arrays))

    def save(self, path):
        with atomic_path(path) as tmp:
            torch.save(self.model.state_dict(), tmp)

    def load(self, path):
        if path.suffix == ".npz":
            raise RunError(f"{path}: a numpy_nn checkpoint (.npz); evaluate it with numpy_nn/train.py")
        try:
            sd = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as e:  # missing, truncated, not a torch file, or unsafe pickle content
            raise RunError(f"{path}: cannot load ({type(e).__name__}: {' '.join(str(e).split())[:120]})") from None
        if not isinstance(sd, dict):
            raise RunError(f"{path}: holds a {type(sd).__name__}, not a state_dict")
        try:
            self.load_weights({k: v.cpu().numpy() for k, v in sd.items()})
        except ValueError as e:
            raise RunError(f"{path}: {e}; pass the model flags it was trained with") from None

    def describe(self):
        d = {"threads": torch.get_num_threads(), "device": str(self.device)}
        if self.device.type == "cuda":
            d["gpu"] = torch.cuda.get_device_name(self.device)
        return d


if __name__ == "__main__":
    sys.exit(cli.main(Trainer, sys.argv[1:], description=__doc__.splitlines()[0], add_flags=add_flags))
