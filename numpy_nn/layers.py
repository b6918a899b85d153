"""Layers as forward/backward pairs. forward(x) keeps only what backward needs; backward(dout) returns dx.

Gradients are *assigned* (overwritten) by backward, not accumulated as torch does; hence no zero_grad here.
Each layer with weights holds `params` and `grads`, dicts of arrays under the same names.
"""
import numpy as np

from common.init import init_weight

try:  # the same math on a GPU: CuPy arrays bring their own module, everything else is NumPy
    from cupy import get_array_module as array_module
except ImportError:
    def array_module(*arrays):
        return np


class Linear:
    """out = x @ W + b, with W of shape (n_in, n_out): the transpose of torch's nn.Linear.weight.
    bias=False leaves b out, for a layer that batch norm follows (its shift would be normalized away)."""

    def __init__(self, n_in, n_out, rng=None, init="he", dtype=np.float32, xp=np, bias=True):
        W, b = init_weight(n_in, n_out, rng, init, dtype)  # drawn on the host: the same weights on any device
        self.xp = xp
        self.params = {"W": xp.asarray(W), **({"b": xp.asarray(b)} if bias else {})}
        self.grads = {name: xp.zeros_like(p) for name, p in self.params.items()}
        self.x = None

    def forward(self, x):
        self.x = x                   # (N, n_in)
        out = x @ self.params["W"]   # (N, n_out)
        if "b" in self.params:
            out += self.params["b"]
        return out

    def backward(self, dout, need_dx=True):
        """dout: (N, n_out) -> dx: (N, n_in). need_dx=False skips dx for the first layer (nothing uses it)."""
        self.xp.matmul(self.x.T, dout, out=self.grads["W"])  # (n_in, n_out)
        if "b" in self.grads:
            self.xp.sum(dout, axis=0, out=self.grads["b"])   # (n_out,)
        return dout @ self.params["W"].T if need_dx else None

    def torch_layout(self, t):
        """params or grads as nn.Linear names them: weight is (n_out, n_in), the transpose of W (x @ W here,
        x @ weight.T there)."""
        return {"weight": t["W"].T, **({"bias": t["b"]} if "b" in t else {})}

    def state_dict(self):
        return self.torch_layout(self.params)

    def load_state_dict(self, d):
        self.params["W"][...] = self.xp.asarray(d["weight"]).T
        if "b" in self.params:
            self.params["b"][...] = self.xp.asarray(d["bias"])


class ReLU:
    def forward(self, x):
        self.mask = x > 0
        return x * self.mask

    def backward(self, dout):
        return dout * self.mask


class Tanh:
    def forward(self, x):
        self.out = array_module(x).tanh(x)
        return self.out

    def backward(self, dout):
        return dout * (1 - self.out * self.out)


class Sigmoid:
    def forward(self, x):
        self.out = 0.5 * (1 + array_module(x).tanh(0.5 * x))  # = 1 / (1 + exp(-x)), no overflow for large -x
        return self.out

    def backward(self, dout):
        return dout * self.out * (1 - self.out)


class Dropout:
    """Inverted dropout: zero each unit with probability p and scale the rest by 1/(1-p) while training,
    so that evaluation needs no rescaling. The mask comes from the rng given (a NumPy or CuPy Generator,
    on the arrays' device), never a global one."""

    def __init__(self, p, rng):
        self.p, self.rng, self.training = p, rng, True  # training: what Sequential.train switches

    def forward(self, x):
        if not self.training or self.p == 0:
            self.mask = None
            return x
        keep = self.rng.random(x.shape, dtype=x.dtype) >= self.p
        self.mask = keep * x.dtype.type(1 / (1 - self.p))  # (N, H), 0 or 1/(1-p)
        return x * self.mask

    def backward(self, dout):
        return dout if self.mask is None else dout * self.mask


class Flatten:
    """(N, C, H, W) -> (N, C*H*W) in torch's order (channel-major), whatever the layout in memory."""

    def forward(self, x):
        self.shape = x.shape
        return x.reshape(len(x), -1)

    def backward(self, dout):
        return dout.reshape(self.shape)


ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid}
