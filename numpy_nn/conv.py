"""Convolution and max pooling, written out: NCHW in and out, as torch's nn.Conv2d and nn.MaxPool2d.

Inside, a convolution is one matrix product over unrolled patches (im2col, as Caffe and CS231n do it):
the patches are a stride-tricks view of the padded input, copied once into a reused buffer, and the
product's result is channels-last (N, Ho, Wo, C_out) in memory, handed on as an NCHW view of it, so
nothing is transposed on the way out; the next layer's elementwise work keeps that layout.
"""
import numpy as np

from numpy_nn.layers import array_module, init_weight


def window_view(xp, x, k, stride, out_hw):
    """(N, C, H, W) -> (N, Ho, Wo, C, k, k): every k x k patch, as a view (no copy)."""
    n, c = x.shape[:2]
    sn, sc, sh, sw = x.strides
    return xp.lib.stride_tricks.as_strided(x, (n, *out_hw, c, k, k), (sn, sh * stride, sw * stride, sc, sh, sw))


def offsets(k, stride, out_hw):
    """The k x k kernel offsets as slices: (i, j, rows, cols), rows/cols selecting what offset (i, j)
    of every output pixel's window reads from the input."""
    ho, wo = out_hw
    for i in range(k):
        for j in range(k):
            yield i, j, slice(i, i + stride * (ho - 1) + 1, stride), slice(j, j + stride * (wo - 1) + 1, stride)


class Conv2d:
    """out[n, o] = b[o] + sum over c, i, j of W[o, c, i, j] * x_padded[n, c, s*y + i, s*x + j].
    bias=False leaves b out, for a convolution that batch norm follows."""

    def __init__(self, c_in, c_out, kernel_size, rng, stride=1, padding=0, init="he", dtype=np.float32, xp=np,
                 bias=True):
        k = kernel_size
        W, b = init_weight(c_in * k * k, c_out, rng, init, dtype)  # fan-in c_in*k*k, as torch counts it
        self.xp, self.k, self.stride, self.padding = xp, k, stride, padding
        self.params = {"W": xp.asarray(np.ascontiguousarray(W.T).reshape(c_out, c_in, k, k)),
                       **({"b": xp.asarray(b)} if bias else {})}
        self.grads = {name: xp.zeros_like(p) for name, p in self.params.items()}
        self.cols = self.padded = None  # buffers reused from step to step

    def out_hw(self, h, w):
        return tuple((s + 2 * self.padding - self.k) // self.stride + 1 for s in (h, w))

    def _pad(self, x):
        """x inside a zero border of `padding` pixels, in a buffer whose border stays zero."""
        if not self.padding:
            return x
        p, (n, c, h, w) = self.padding, x.shape
        if self.padded is None or self.padded.shape != (n, c, h + 2 * p, w + 2 * p) or self.padded.dtype != x.dtype:
            self.padded = self.xp.zeros((n, c, h + 2 * p, w + 2 * p), x.dtype)
        self.padded[:, :, p:p + h, p:p + w] = x
        return self.padded

    def forward(self, x):
        xp, (n, c, h, w) = self.xp, x.shape
        out_hw = self.out_hw(h, w)
        m, ckk = n * out_hw[0] * out_hw[1], c * self.k * self.k
        if self.cols is None or self.cols.shape != (m, ckk) or self.cols.dtype != x.dtype:
            self.cols = xp.empty((m, ckk), x.dtype)
        self.cols.reshape(n, *out_hw, c, self.k, self.k)[...] = window_view(xp, self._pad(x), self.k, self.stride, out_hw)
        self.x_shape = x.shape
        W = self.params["W"]
        out = self.cols @ W.reshape(len(W), ckk).T               # (N*Ho*Wo, C_out)
        if "b" in self.params:
            out += self.params["b"]
        return out.reshape(n, *out_hw, len(W)).transpose(0, 3, 1, 2)  # (N, C_out, Ho, Wo), channels-last inside

    def backward(self, dout, need_dx=True):
        """dout: (N, C_out, Ho, Wo) -> dx: (N, C, H, W); dW and db assigned."""
        xp, W = self.xp, self.params["W"]
        n, c, h, w = self.x_shape
        c_out, ho, wo = dout.shape[1:]
        dout2 = dout.transpose(0, 2, 3, 1).reshape(n * ho * wo, c_out)  # a view when dout is channels-last
        xp.matmul(dout2.T, self.cols, out=self.grads["W"].reshape(c_out, -1))  # (C_out, C*k*k)
        if "b" in self.grads:
            xp.sum(dout2, axis=0, out=self.grads["b"])
        if not need_dx:
            return None
        dcols = (dout2 @ W.reshape(c_out, -1)).reshape(n, ho, wo, c, self.k, self.k)
        p = self.padding
        dx = xp.zeros((n, c, h + 2 * p, w + 2 * p), dout.dtype)
        for i, j, rows, cols in offsets(self.k, self.stride, (ho, wo)):  # col2im: scatter-add each offset
            dx[:, :, rows, cols] += dcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
        return dx[:, :, p:p + h, p:p + w] if p else dx

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
    """The largest value of each k x k window (stride defaults to k; edges that do not fill a window are
    dropped, as torch floors). Backward sends each window's gradient to one element: the first maximum in
    row-major order, the one torch's CPU kernel picks when a window holds equal values."""

    def __init__(self, kernel_size, stride=None):
        self.k, self.stride = kernel_size, stride or kernel_size

    def forward(self, x):
        xp, (n, c, h, w) = array_module(x), x.shape
        self.x_shape = x.shape
        self.out_hw = ((h - self.k) // self.stride + 1, (w - self.k) // self.stride + 1)
        out, self.argmax = None, None
        for o, (i, j, rows, cols) in enumerate(offsets(self.k, self.stride, self.out_hw)):
            window = x[:, :, rows, cols]
            if out is None:
                out, self.argmax = window.copy(), xp.zeros(window.shape, np.uint8)
            else:
                better = window > out  # strictly: on a tie the earlier offset keeps it
                xp.copyto(out, window, where=better)
                xp.copyto(self.argmax, o, where=better)
        return out

    def backward(self, dout):
        xp = array_module(dout)
        dx = xp.zeros(self.x_shape, dout.dtype)
        overlapping = self.stride < self.k
        for o, (i, j, rows, cols) in enumerate(offsets(self.k, self.stride, self.out_hw)):
            routed = dout * (self.argmax == o)
            if overlapping:
                dx[:, :, rows, cols] += routed
            else:
                dx[:, :, rows, cols] = routed
        return dx
