"""Convolution and max pooling, written out: NCHW in and out, as torch's nn.Conv2d and nn.MaxPool2d.

Inside, both layers work channels-last, (N, H, W, C) in memory, and hand on NCHW views of it: copying an
image's patches then moves rows of C contiguous numbers instead of single ones (8x faster here), and the
convolution's matrix product yields channels-last directly, so nothing is transposed on the way out. A
convolution is one matrix product over unrolled patches (im2col, as Caffe and CS231n do it): the patches
are a stride-tricks view of the padded input, copied once into a reused buffer.
"""
import numpy as np

from numpy_nn.layers import array_module, blocks, init_weight


def window_view(xp, x, k, stride, out_hw):
    """(N, H, W, C) -> (N, Ho, Wo, k, k, C): every k x k patch, as a view (no copy)."""
    sn, sh, sw, sc = x.strides
    return xp.lib.stride_tricks.as_strided(x, (len(x), *out_hw, k, k, x.shape[3]), (sn, sh * stride, sw * stride, sh, sw, sc))


def offsets(k, stride, out_hw):
    """The k x k kernel offsets as slices: (i, j, rows, cols), rows/cols selecting what offset (i, j)
    of every output pixel's window reads from the input."""
    ho, wo = out_hw
    for i in range(k):
        for j in range(k):
            yield i, j, slice(i, i + stride * (ho - 1) + 1, stride), slice(j, j + stride * (wo - 1) + 1, stride)


def channels_last(x):
    """(N, C, H, W) -> the (N, H, W, C) view of the same memory (contiguous when the layers made it)."""
    return x.transpose(0, 2, 3, 1)


def nchw(x):
    """(N, H, W, C) -> the (N, C, H, W) view torch's layers hand on."""
    return x.transpose(0, 3, 1, 2)


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
        """(N, H, W, C) inside a zero border of `padding` pixels, in a buffer whose border stays zero."""
        if not self.padding:
            return x
        p, (n, h, w, c) = self.padding, x.shape
        if self.padded is None or self.padded.shape != (n, h + 2 * p, w + 2 * p, c) or self.padded.dtype != x.dtype:
            self.padded = self.xp.zeros((n, h + 2 * p, w + 2 * p, c), x.dtype)
        self.padded[:, p:p + h, p:p + w] = x
        return self.padded

    def matrix(self, W):
        """(C_out, C, k, k) -> (C_out, k*k*C): the kernel in the patches' channels-last order."""
        return W.transpose(0, 2, 3, 1).reshape(len(W), -1)

    def forward(self, x):
        xp, (n, c, h, w) = self.xp, x.shape
        out_hw = self.out_hw(h, w)
        shape = (n * out_hw[0] * out_hw[1], self.k * self.k * c)
        if self.cols is None or self.cols.shape != shape or self.cols.dtype != x.dtype:
            self.cols = xp.empty(shape, x.dtype)
        padded = self._pad(channels_last(x))
        if c == 1:  # im2col by kernel offset: k*k strided copies of whole images beat N*Ho*Wo copies of k*k pixels
            patches = self.cols.reshape(n, *out_hw, self.k, self.k, 1)
            for i, j, rows, cols in offsets(self.k, self.stride, out_hw):
                patches[:, :, :, i, j] = padded[:, rows, cols]
        else:       # im2col by patch: each copies k rows of k*C contiguous numbers
            patches = window_view(xp, padded, self.k, self.stride, out_hw)
            self.cols.reshape(patches.shape)[...] = patches       # im2col: the one copy, (N*Ho*Wo, k*k*C)
        self.x_shape = x.shape
        out = self.cols @ self.matrix(self.params["W"]).T        # (N*Ho*Wo, C_out)
        if "b" in self.params:
            out += self.params["b"]
        return nchw(out.reshape(n, *out_hw, -1))                 # (N, C_out, Ho, Wo), channels-last inside

    def backward(self, dout, need_dx=True):
        """dout: (N, C_out, Ho, Wo) -> dx: (N, C, H, W); dW and db assigned."""
        xp, W = self.xp, self.params["W"]
        n, c, h, w = self.x_shape
        c_out, ho, wo = dout.shape[1:]
        dout2 = channels_last(dout).reshape(-1, c_out)           # (N*Ho*Wo, C_out): a view when channels-last
        dW = dout2.T @ self.cols                                 # (C_out, k*k*C)
        self.grads["W"][...] = nchw(dW.reshape(c_out, self.k, self.k, c))
        if "b" in self.grads:
            self.grads["b"][...] = xp.ones(len(dout2), dout2.dtype) @ dout2  # column sums, by BLAS
        if not need_dx:
            return None
        p, dout4 = self.padding, dout2.reshape(n, ho, wo, c_out)
        dx = xp.zeros((n, h + 2 * p, w + 2 * p, c), dout.dtype)
        taps = [(rows, cols, xp.ascontiguousarray(W[:, :, i, j]))
                for i, j, rows, cols in offsets(self.k, self.stride, (ho, wo))]
        for s in blocks(dout4):  # a block of images at a time: its products still in cache when added
            d = dout4[s].reshape(-1, c_out)
            for rows, cols, w_ij in taps:
                # col2im, one kernel offset at a time: the patches' gradient at offset (i, j), dout @ W[:, :, i, j],
                # lands on the input pixels that offset read (never the whole (N*Ho*Wo, k*k*C) matrix at once)
                dx[s, rows, cols] += (d @ w_ij).reshape(-1, ho, wo, c)
        return nchw(dx[:, p:p + h, p:p + w])

    def torch_layout(self, t):
        """nn.Conv2d's names; W already has its layout (C_out, C_in, k, k), so interchange is a copy."""
        return {"weight": t["W"], **({"bias": t["b"]} if "b" in t else {})}

    def state_dict(self):
        return self.torch_layout(self.params)

    def load_state_dict(self, d):
        self.params["W"][...] = self.xp.asarray(d["weight"])
        if "b" in self.params:
            self.params["b"][...] = self.xp.asarray(d["bias"])


def first_max(xp, views, out, idx):
    """out = the elementwise maximum of equally shaped arrays, idx = the index of the first one holding it:
    on a tie the earlier keeps it, as torch's CPU kernel, scanning in order, keeps the first maximum it finds."""
    if len(views) == 1:
        out[...], idx[...] = views[0], 0
        return
    xp.greater(views[1], views[0], out=idx.view(bool))  # bool is 0/1 as a byte
    xp.maximum(views[0], views[1], out=out)
    for t, v in enumerate(views[2:], start=2):
        better = v > out
        idx[better] = t
        xp.maximum(out, v, out=out)


class MaxPool2d:
    """The largest value of each k x k window (stride defaults to k; edges that do not fill a window are
    dropped, as torch floors). Backward sends each window's gradient to one element: the first maximum in
    row-major order, the one torch's CPU kernel picks when a window holds equal values.

    Separably: first the maximum over each window's k columns for every row, then over its k rows. The first
    maximum in row-major order lies in the first row that holds the maximum, at that row's first maximum,
    so tracking the first winner in each stage routes the gradient exactly as torch does. Channels-last
    inside, each stage reads rows of C contiguous numbers.
    """

    def __init__(self, kernel_size, stride=None):
        self.k, self.stride = kernel_size, stride or kernel_size

    def n_out(self, size):
        return (size - self.k) // self.stride + 1

    def taps(self, size):
        """The k strided slices along an axis of `size`: slice t picks offset t of every window."""
        return [slice(t, t + self.stride * (self.n_out(size) - 1) + 1, self.stride) for t in range(self.k)]

    def forward(self, x):
        xp, xt = array_module(x), channels_last(x)                                    # (N, H, W, C)
        self.x_shape = (n, h, w, c) = xt.shape
        ho, wo = self.n_out(h), self.n_out(w)
        out = xp.empty((n, ho, wo, c), x.dtype)
        self.cols_max, self.rows_max = xp.empty((n, h, wo, c), np.uint8), xp.empty((n, ho, wo, c), np.uint8)
        across, down = self.taps(w), self.taps(h)
        for s in blocks(xt):  # a block of images at a time: the row maxima still in cache for the second stage
            rows = xp.empty((len(xt[s]), h, wo, c), x.dtype)                             # (block, H, Wo, C)
            first_max(xp, [xt[s, :, t] for t in across], rows, self.cols_max[s])
            first_max(xp, [rows[:, t] for t in down], out[s], self.rows_max[s])
        return nchw(out)

    def backward(self, dout):
        xp, dt = array_module(dout), channels_last(dout)
        _, h, w, c = self.x_shape
        overlapping = self.stride < self.k  # then windows share elements and their gradients add up
        # windows that tile the input exactly write every element below: no zero-filling pass needed
        tiles = self.stride == self.k and h % self.k == 0 and w % self.k == 0
        blank = xp.empty if tiles else xp.zeros
        dx = blank(self.x_shape, dout.dtype)
        down = [(slice(None), t) for t in self.taps(h)]
        across = [(slice(None), slice(None), t) for t in self.taps(w)]
        for s in blocks(dx):
            drows = blank((len(dx[s]), h, dt.shape[2], c), dout.dtype)                   # (block, H, Wo, C)
            self.route(xp, dt[s], self.rows_max[s], down, drows, overlapping)
            self.route(xp, drows, self.cols_max[s], across, dx[s], overlapping)
        return nchw(dx)

    @staticmethod
    def route(xp, d, winner, taps, out, overlapping):
        """out[taps[t]] gets d where tap t won. Without overlap, tap 0's share is d minus the others' (each
        element of d goes to exactly one tap): one subtraction instead of a comparison and a product."""
        if overlapping:
            for t, where in enumerate(taps):
                out[where] += d * (winner == t)
            return
        first = out[taps[0]]
        if len(taps) == 1:
            first[...] = d
        for t, where in enumerate(taps[1:], start=1):
            xp.multiply(d, winner == t, out=out[where])
            xp.subtract(d if t == 1 else first, out[where], out=first)
