"""A Vision Transformer's layers as the math writes them, each a forward/backward pair (layers.py's contract: forward
keeps what backward needs, backward assigns the grads and returns dx). Weights in torch's names and layouts
(nn.LayerNorm, nn.MultiheadAttention with batch_first), so that interchange is a copy.

    LayerNorm      y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias, over the last axis
    GELU           y = x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), torch's approximate="tanh"
    SelfAttention  q, k, v = split(x W_in^T + b_in); per head A = softmax(q k^T / sqrt(d_head));
                   y = (A v) W_out^T + b_out, the heads merged
"""
import math

import numpy as np

from numpy_nn.layers import array_module


class TorchNamed:
    """A layer whose params already carry torch's names and layouts: its state_dict is its params."""

    def torch_layout(self, t):
        return dict(t)

    def state_dict(self):
        return dict(self.params)

    def load_state_dict(self, d):
        for name, p in self.params.items():
            p[...] = self.xp.asarray(d[name])


class LayerNorm(TorchNamed):
    """nn.LayerNorm(d): each row normalized by its own mean and (biased) variance, then scaled and shifted.
    Backward, with xhat and 1/sigma kept: dxhat = dy * weight;
    dx = (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / sigma."""

    def __init__(self, d, eps=1e-5, dtype=np.float32, xp=np):
        self.eps, self.xp = eps, xp
        self.params = {"weight": xp.ones(d, dtype), "bias": xp.zeros(d, dtype)}
        self.grads = {name: xp.zeros_like(p) for name, p in self.params.items()}

    def forward(self, x):
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        self.rstd = 1 / self.xp.sqrt(var + self.eps)
        self.xhat = (x - mean) * self.rstd
        return self.xhat * self.params["weight"] + self.params["bias"]

    def backward(self, dout, need_dx=True):
        d = dout.shape[-1]
        self.grads["weight"][...] = (dout * self.xhat).reshape(-1, d).sum(axis=0)
        self.grads["bias"][...] = dout.reshape(-1, d).sum(axis=0)
        if not need_dx:
            return None
        dxhat = dout * self.params["weight"]
        return self.rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True)
                            - self.xhat * (dxhat * self.xhat).mean(axis=-1, keepdims=True))


class GELU:
    """nn.GELU(approximate="tanh"): y = x/2 (1 + t), t = tanh(u), u = sqrt(2/pi) (x + 0.044715 x^3);
    dy/dx = (1 + t)/2 + x/2 (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2). The tanh form, not the exact erf one: NumPy
    has no erf, and torch computes the tanh form when asked, so both twins compute the same function."""

    C = math.sqrt(2 / math.pi)  # (a Python float: it keeps float32 arrays float32)

    def forward(self, x):
        self.x, self.t = x, np.tanh(self.C * (x + 0.044715 * x * x * x))  # (x ** 3 is NumPy's slow pow)
        return 0.5 * x * (1 + self.t)

    def backward(self, dout, need_dx=True):
        x, t = self.x, self.t
        return dout * (0.5 * (1 + t) + 0.5 * x * (1 - t ** 2) * self.C * (1 + 3 * 0.044715 * x ** 2))


class SelfAttention(TorchNamed):
    """nn.MultiheadAttention(d, heads, batch_first=True) with the sequence attending to itself, no mask, no dropout.
    x: (N, T, d). The heads are reshapes: (N, T, d) -> (N, heads, T, d / heads) and back. Backward through the softmax
    in one line: dscores = A * (dA - sum(dA * A, over the keys))."""

    def __init__(self, d, heads, dtype=np.float32, xp=np):
        if d % heads:
            raise ValueError(f"a width of {d} does not split into {heads} heads")
        self.heads, self.xp = heads, xp
        self.params = {"in_proj_weight": xp.zeros((3 * d, d), dtype), "in_proj_bias": xp.zeros(3 * d, dtype),
                       "out_proj.weight": xp.zeros((d, d), dtype), "out_proj.bias": xp.zeros(d, dtype)}
        self.grads = {name: xp.zeros_like(p) for name, p in self.params.items()}

    def split(self, a):  # (N, T, d) -> (N, heads, T, d_head)
        n, t, d = a.shape
        return a.reshape(n, t, self.heads, d // self.heads).transpose(0, 2, 1, 3)

    def merge(self, a):  # (N, heads, T, d_head) -> (N, T, d)
        n, h, t, dh = a.shape
        return a.transpose(0, 2, 1, 3).reshape(n, t, h * dh)

    def forward(self, x):
        p, xp = self.params, self.xp
        q, k, v = (self.split(a) for a in xp.split(x @ p["in_proj_weight"].T + p["in_proj_bias"], 3, axis=-1))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(q.shape[-1])     # (N, heads, T, T)
        A = xp.exp(scores - scores.max(axis=-1, keepdims=True))
        A /= A.sum(axis=-1, keepdims=True)
        o = self.merge(A @ v)
        self.x, self.q, self.k, self.v, self.A, self.o = x, q, k, v, A, o
        return o @ p["out_proj.weight"].T + p["out_proj.bias"]

    def backward(self, dout, need_dx=True):
        p, g, xp = self.params, self.grads, self.xp
        d = dout.shape[-1]
        g["out_proj.weight"][...] = dout.reshape(-1, d).T @ self.o.reshape(-1, d)
        g["out_proj.bias"][...] = dout.reshape(-1, d).sum(axis=0)
        do = self.split(dout @ p["out_proj.weight"])
        dA = do @ self.v.transpose(0, 1, 3, 2)
        dv = self.A.transpose(0, 1, 3, 2) @ do
        dscores = self.A * (dA - (dA * self.A).sum(axis=-1, keepdims=True)) / math.sqrt(self.q.shape[-1])
        dq, dk = dscores @ self.k, dscores.transpose(0, 1, 3, 2) @ self.q
        dqkv = xp.concatenate([self.merge(a) for a in (dq, dk, dv)], axis=-1)  # (N, T, 3d)
        g["in_proj_weight"][...] = dqkv.reshape(-1, 3 * d).T @ self.x.reshape(-1, d)
        g["in_proj_bias"][...] = dqkv.reshape(-1, 3 * d).sum(axis=0)
        return dqkv @ p["in_proj_weight"] if need_dx else None


class Dense(TorchNamed):
    """nn.Linear over the last axis of any shape: y = x weight^T + bias, weight (out, in) as torch keeps it."""

    def __init__(self, n_in, n_out, dtype=np.float32, xp=np):
        self.xp = xp
        self.params = {"weight": xp.zeros((n_out, n_in), dtype), "bias": xp.zeros(n_out, dtype)}
        self.grads = {name: xp.zeros_like(p) for name, p in self.params.items()}

    def forward(self, x):
        self.x = x
        return x @ self.params["weight"].T + self.params["bias"]

    def backward(self, dout, need_dx=True):
        rows = dout.reshape(-1, dout.shape[-1])
        self.grads["weight"][...] = rows.T @ self.x.reshape(len(rows), -1)
        self.grads["bias"][...] = rows.sum(axis=0)
        return dout @ self.params["weight"] if need_dx else None


class Tokens(TorchNamed):
    """(N, 784) image -> (N, 1 + T, d) tokens: cut into T = (28 / patch)^2 patches of patch x patch pixels (row by row),
    each embedded by one linear map (proj: patches proj.weight^T + proj.bias), a learned class token put first,
    learned position embeddings added to every token."""

    def __init__(self, patch, d, dtype=np.float32, xp=np):
        self.patch, self.side, self.xp = patch, 28 // patch, xp
        tokens = 1 + self.side ** 2
        self.params = {"proj.weight": xp.zeros((d, patch * patch), dtype), "proj.bias": xp.zeros(d, dtype),
                       "cls_token": xp.zeros((1, 1, d), dtype), "pos_embed": xp.zeros((1, tokens, d), dtype)}
        self.grads = {name: xp.zeros_like(p) for name, p in self.params.items()}

    def forward(self, x):
        n, s, p, w = len(x), self.side, self.patch, self.params
        self.patches = x.reshape(n, s, p, s, p).transpose(0, 1, 3, 2, 4).reshape(n, s * s, p * p)
        embedded = self.patches @ w["proj.weight"].T + w["proj.bias"]
        cls = self.xp.broadcast_to(w["cls_token"], (n, 1, embedded.shape[-1]))
        return self.xp.concatenate([cls, embedded], axis=1) + w["pos_embed"]

    def backward(self, dout, need_dx=True):
        g, n, s, p = self.grads, len(dout), self.side, self.patch
        g["pos_embed"][...] = dout.sum(axis=0, keepdims=True)
        g["cls_token"][...] = dout[:, :1].sum(axis=0, keepdims=True)
        rows = dout[:, 1:].reshape(-1, dout.shape[-1])
        g["proj.weight"][...] = rows.T @ self.patches.reshape(len(rows), -1)
        g["proj.bias"][...] = rows.sum(axis=0)
        if not need_dx:
            return None
        dpatches = dout[:, 1:] @ self.params["proj.weight"]
        return dpatches.reshape(n, s, s, p, p).transpose(0, 1, 3, 2, 4).reshape(n, 784)


class ClassToken:
    """(N, 1 + T, d) -> (N, d): the class token's features, what the dense head reads; the others' gradient is 0."""

    def forward(self, x):
        self.shape = x.shape
        return x[:, 0]

    def backward(self, dout, need_dx=True):
        dx = array_module(dout).zeros(self.shape, dout.dtype)
        dx[:, 0] = dout
        return dx


class EncoderBlock:
    """nn.TransformerEncoderLayer(d, heads, mlp * d, dropout=0, GELU, batch_first=True, norm_first=True), pre-norm:
    h = x + SelfAttention(norm1(x)); y = h + linear2(GELU(linear1(norm2(h)))). Backward, the residuals' gradients
    add: dh = dy + the MLP branch's dx; dx = dh + the attention branch's dx. Its layers are its `parts`, under torch's
    names (block1.self_attn, block1.linear1, ...)."""

    def __init__(self, name, d, heads, mlp=2, dtype=np.float32, xp=np, attention=SelfAttention):
        self.norm1, self.attn = LayerNorm(d, dtype=dtype, xp=xp), attention(d, heads, dtype, xp)
        self.norm2, self.gelu = LayerNorm(d, dtype=dtype, xp=xp), GELU()
        self.linear1, self.linear2 = Dense(d, mlp * d, dtype, xp), Dense(mlp * d, d, dtype, xp)
        self.parts = {f"{name}.norm1": self.norm1, f"{name}.self_attn": self.attn, f"{name}.norm2": self.norm2,
                      f"{name}.linear1": self.linear1, f"{name}.linear2": self.linear2}

    def forward(self, x):
        h = x + self.attn.forward(self.norm1.forward(x))
        return h + self.linear2.forward(self.gelu.forward(self.linear1.forward(self.norm2.forward(h))))

    def backward(self, dout, need_dx=True):
        dh = dout + self.norm2.backward(self.linear1.backward(self.gelu.backward(self.linear2.backward(dout))))
        dx = dh + self.norm1.backward(self.attn.backward(dh))
        return dx if need_dx else None


def class_attention(model, x):
    """The last encoder block's attention from the class token to each patch, per head, for images x (N, 784):
    (N, heads, patches), each row a softmax over the class token and the patches. Its SelfAttention keeps A."""
    model.train(False)
    model.forward(x)
    last = [layer for layer in model.parts.values() if isinstance(layer, SelfAttention)][-1]
    return last.A[:, :, 0, 1:]
