"""The MLP as an ordered list of named layers: forward in order, backward in reverse."""
import numpy as np

from numpy_nn.layers import ACTIVATIONS, Dropout, Linear


class MLP:
    """784 -> hidden... -> 10. Layers are named fc1, relu1, drop1, fc2, ... so that parameter names
    ("fc1.W") map one-to-one onto pytorch_nn's state_dict ("fc1.weight")."""

    def __init__(self, hidden=(128, 64), activation="relu", dropout=0.0, init="he", seed=0,
                 dtype=np.float32, n_in=784, n_out=10, xp=np, input_dropout=0.0):
        rng = np.random.default_rng(seed)  # weights first, then dropout masks from the same stream
        mask_rng = rng if xp is np else xp.random.default_rng(seed)
        sizes = [n_in, *hidden, n_out]
        self.layers = {}
        if input_dropout > 0:
            self.layers["drop0"] = Dropout(input_dropout, mask_rng)
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            self.layers[f"fc{i}"] = Linear(a, b, rng, init, dtype, xp)
            if i < len(sizes) - 1:
                self.layers[f"{activation}{i}"] = ACTIVATIONS[activation]()
                if dropout > 0:
                    self.layers[f"drop{i}"] = Dropout(dropout, mask_rng)
        self.params = self._named("params")  # name -> array: the layers' own arrays, not copies
        self.grads = self._named("grads")

    def _named(self, attr):
        return {f"{name}.{k}": v for name, layer in self.layers.items() for k, v in getattr(layer, attr, {}).items()}

    def train(self, mode=True):
        for layer in self.layers.values():
            if isinstance(layer, Dropout):
                layer.training = mode

    def forward(self, x):
        """x: (N, 784) -> logits (N, 10)."""
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def backward(self, dlogits):
        """Fill every layer's grads from dlogits (N, 10). Backprop stops at fc1: nothing before it has
        parameters, so the gradient with respect to the input is never computed."""
        dout = dlogits
        for name, layer in reversed(self.layers.items()):
            if name == "fc1":
                layer.backward(dout, need_dx=False)
                return
            dout = layer.backward(dout)

    def load(self, arrays):
        """Copy arrays (name -> array) into the parameters, checking names and shapes."""
        if set(arrays) != set(self.params):
            raise ValueError(f"parameters {sorted(arrays)} do not match this model's {sorted(self.params)}")
        for name, p in self.params.items():
            if arrays[name].shape != p.shape:
                raise ValueError(f"{name} has shape {arrays[name].shape}, this model's is {p.shape}")
            p[...] = arrays[name]
