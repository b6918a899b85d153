"""Convolution and max pooling as the textbook derives them: NCHW in and out, as torch's nn.Conv2d and nn.MaxPool2d.

These are the reference layers, written to be read. numpy_nn/fast_conv.py computes the same numbers faster
(channels-last memory, blocks on a pool of threads, separable pooling) and is tested equal to them; --kernels picks one.
"""
import numpy as np

from common.init import init_weight
from numpy_nn.layers import array_module


def windows(x, k, stride):
    """(N, C, H, W) -> (N, C, Ho, Wo, k, k): every k x k window, a view of x by stride tricks (no copy).
    Window (y, x) starts at row stride*y, column stride*x; edges that do not fill a window are left out."""
    n, c, h, w = x.shape
    ho, wo = (h - k) // stride + 1, (w - k) // stride + 1
    sn, sc, sh, sw = x.strides
    return array_module(x).lib.stride_tricks.as_strided(
        x, (n, c, ho, wo, k, k), (sn, sc, sh * stride, sw * stride, sh, sw))


def offset_slices(i, j, stride, ho, wo):
    """The input pixels that kernel offset (i, j) of every output pixel reads: rows i, i+s, ...; cols j, j+s, ..."""
    return slice(i, i + stride * (ho - 1) + 1, stride), slice(j, j + stride * (wo - 1) + 1, stride)


class Conv2d:
    """out[n, o, y, x] = b[o] + sum over c, i, j of W[o, c, i, j] * x_pad[n, c, s*y + i, s*x + j]

    One matrix product: every output pixel's C x k x k window becomes a row of `cols` (im2col), so that
    out = cols @ W.reshape(C_out, C*k*k).T + b. bias=False leaves b out, for a convolution batch norm follows.
    """

    def __init__(self, c_in, c_out, kernel_size, rng=None, stride=1, padding=0, init="he", dtype=np.float32, xp=np,
                 bias=True):
        k = kernel_size
        W, b = init_weight(c_in * k * k, c_out, rng, init, dtype)  # fan-in C*k*k, as torch counts it
        self.xp, self.k, self.stride, self.padding = xp, k, stride, padding
        self.params = {"W": xp.asarray(np.ascontiguousarray(W.T).reshape(c_out, c_in, k, k)),  # torch's layout
                       **({"b": xp.asarray(b)} if bias else {})}
        self.grads = {name: xp.zeros_like(p) for name, p in self.params.items()}

    def forward(self, x):
        """x: (N, C, H, W) -> out: (N, C_out, Ho, Wo)."""
        xp, p, W = self.xp, self.padding, self.params["W"]
        self.x_shape = x.shape
        x_pad = xp.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))                  # (N, C, H+2p, W+2p)
        patches = windows(x_pad, self.k, self.stride)                        # (N, C, Ho, Wo, k, k), a view
        n, c, ho, wo = patches.shape[:4]
        self.cols = patches.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, -1)  # (N*Ho*Wo, C*k*k): the copy
        out = self.cols @ W.reshape(len(W), -1).T                            # (N*Ho*Wo, C_out)
        if "b" in self.params:
            out += self.params["b"]
        return out.reshape(n, ho, wo, -1).transpose(0, 3, 1, 2)              # (N, C_out, Ho, Wo)

    def backward(self, dout, need_dx=True):
        """dout: (N, C_out, Ho, Wo) -> dx: (N, C, H, W); dW and db assigned. need_dx=False skips dx."""
        xp, p, W = self.xp, self.padding, self.params["W"]
        n, c, h, w = self.x_shape
        c_out, ho, wo = dout.shape[1:]
        dout2 = dout.transpose(0, 2, 3, 1).reshape(-1, c_out)               # (N*Ho*Wo, C_out), rows as cols'
        self.grads["W"][...] = (dout2.T @ self.cols).reshape(W.shape)        # (C_out, C*k*k) -> (C_out, C, k, k)
        if "b" in self.grads:
            self.grads["b"][...] = dout2.sum(axis=0)                         # (C_out,)
        if not need_dx:
            return None
        dcols = (dout2 @ W.reshape(c_out, -1)).reshape(n, ho, wo, c, self.k, self.k)  # d loss / d cols
        dx_pad = xp.zeros((n, c, h + 2 * p, w + 2 * p), dout.dtype)
        for i in range(self.k):      # col2im: each window entry's gradient goes back to the pixel it was copied from
            for j in range(self.k):  # (windows overlap, so the contributions add up)
                rows, cols = offset_slices(i, j, self.stride, ho, wo)
                dx_pad[:, :, rows, cols] += dcols[..., i, j].transpose(0, 3, 1, 2)
        return dx_pad[:, :, p:p + h, p:p + w]

    def torch_layout(self, t):
        """nn.Conv2d's names; W already has its layout (C_out, C_in, k, k), so interchange is a copy."""
        return {"weight": t["W"], **({"bias": t["b"]} if "b" in t else {})}

    def state_dict(self):
        return self.torch_layout(self.params)

    def load_state_dict(self, d):
        self.params["W"][...] = self.xp.asarray(d["weight"])
        if "b" in self.params:
            self.params["b"][...] = self.xp.asarray(d["bias"])


class MaxPool2d:
    """out[n, c, y, x] = the largest value of window (y, x), k x k, stride s (default k; edges that do not fill
    a window are dropped, as torch floors). Backward sends each window's gradient to one element, its maximum;
    on a tie the first in row-major order, the one torch's CPU kernel keeps (argmax returns the first)."""

    def __init__(self, kernel_size, stride=None):
        self.k, self.stride = kernel_size, stride or kernel_size

    def forward(self, x):
        """x: (N, C, H, W) -> out: (N, C, Ho, Wo)."""
        patches = windows(x, self.k, self.stride)                 # (N, C, Ho, Wo, k, k), a view
        flat = patches.reshape(*patches.shape[:4], -1)            # (N, C, Ho, Wo, k*k), a copy
        self.x_shape, self.argmax = x.shape, flat.argmax(axis=-1)  # which tap won each window
        return flat.max(axis=-1)

    def backward(self, dout):
        """dout: (N, C, Ho, Wo) -> dx: (N, C, H, W), each window's gradient on its winner."""
        dx = array_module(dout).zeros(self.x_shape, dout.dtype)
        ho, wo = dout.shape[2:]
        for t in range(self.k * self.k):  # tap t = offset (i, j) of every window
            rows, cols = offset_slices(*divmod(t, self.k), self.stride, ho, wo)
            dx[:, :, rows, cols] += dout * (self.argmax == t)  # += : overlapping windows may share a winner
        return dx


FUSED = {}  # activation -> a pooling that applies it too: none here, each layer is its own (fast_pool.py fuses ReLU)
