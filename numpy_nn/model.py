"""The networks as ordered lists of named layers: forward in order, backward in reverse."""
import numpy as np

from common.weights import check_match
from numpy_nn.layers import ACTIVATIONS, Dropout, Linear


class Sequential:
    """Named layers run in order. Parameter names ("fc1.W") follow the layer names, which are pytorch_nn's,
    and state_dict() gives every tensor under torch's own name and layout ("fc1.weight", (out, in))."""

    def __init__(self, layers: dict):
        self.layers = layers
        self.params = self._named("params")  # name -> array: the layers' own arrays, not copies
        self.grads = self._named("grads")
        self.first = next(layer for layer in layers.values() if getattr(layer, "params", None))

    def _named(self, attr):
        return {f"{name}.{k}": v for name, layer in self.layers.items() for k, v in getattr(layer, attr, {}).items()}

    def train(self, mode=True):
        """Training mode (dropout masks, batch statistics) or evaluation mode, like nn.Module.train."""
        for layer in self.layers.values():
            if hasattr(layer, "training"):
                layer.training = mode

    def forward(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def backward(self, dlogits):
        """Fill every layer's grads from dlogits (N, 10). Backprop stops at the first layer with parameters:
        nothing before it has any, so the gradient with respect to the input is never computed."""
        dout = dlogits
        for name, layer in reversed(self.layers.items()):
            if layer is self.first:
                layer.backward(dout, need_dx=False)
                return
            dout = layer.backward(dout)

    def state_dict(self) -> dict:
        """Every tensor the model keeps (parameters and buffers) as torch names it, as views, not copies."""
        return {f"{name}.{k}": v for name, layer in self.layers.items() if hasattr(layer, "state_dict")
                for k, v in layer.state_dict().items()}

    def torch_grads(self) -> dict:
        """The gradients under the names and layouts of the torch parameters they belong to."""
        return {f"{name}.{k}": v for name, layer in self.layers.items() if hasattr(layer, "torch_layout")
                for k, v in layer.torch_layout(layer.grads).items()}

    def load_state_dict(self, arrays: dict):
        """Copy arrays in, under torch's names and layouts; names and shapes must match this model's."""
        check_match(arrays, self.state_dict())
        for name, layer in self.layers.items():
            if hasattr(layer, "load_state_dict"):
                prefix = f"{name}."
                layer.load_state_dict({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})


class MLP(Sequential):
    """784 -> hidden... -> 10, named fc1, relu1, drop1, fc2, ... as pytorch_nn's MLP."""

    def __init__(self, hidden=(128, 64), activation="relu", dropout=0.0, init="he", seed=0,
                 dtype=np.float32, n_in=784, n_out=10, xp=np, input_dropout=0.0):
        rng = np.random.default_rng(seed)  # weights first, then dropout masks from the same stream
        mask_rng = rng if xp is np else xp.random.default_rng(seed)
        sizes = [n_in, *hidden, n_out]
        layers = {}
        if input_dropout > 0:
            layers["drop0"] = Dropout(input_dropout, mask_rng)
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            layers[f"fc{i}"] = Linear(a, b, rng, init, dtype, xp)
            if i < len(sizes) - 1:
                layers[f"{activation}{i}"] = ACTIVATIONS[activation]()
                if dropout > 0:
                    layers[f"drop{i}"] = Dropout(dropout, mask_rng)
        super().__init__(layers)


def build(args, xp=np):
    """The network these flags describe, its initial weights drawn from --seed."""
    return MLP(args.hidden, args.activation, args.dropout, args.init, args.seed, np.dtype(args.dtype),
               xp=xp, input_dropout=args.input_dropout)
