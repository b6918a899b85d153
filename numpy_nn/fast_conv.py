"""The fast kernels for numpy_nn/conv.py: the same Conv2d and MaxPool2d, the same numbers (tests/test_kernels.py
proves them equal to the reference layers, float64 to 1e-12), computed with the tricks that made the CNN fast.
Each trick, and what it bought as measured on 2 cores (the commit that made it says where):

- Channels-last inside: both layers work on (N, H, W, C) memory and hand on NCHW views of it. Copying an
  image's patches then moves rows of C contiguous numbers instead of single ones (8x faster here), and the
  convolution's matrix product yields channels-last directly, so nothing is transposed on the way out.
- im2col into a reused buffer, and for one input channel by kernel offset: k*k strided copies of whole images
  beat N*Ho*Wo copies of k*k pixels (conv1's forward); each offset's copy is one contiguous row of the matrix
  kept transposed in memory, which the products take as BLAS's transposed operand: conv1's forward of the
  cnn-fast network (24 channels of 5x5, batch 256) 24.0 -> 6.6 ms, its whole step 86 -> 68 ms (phases.py).
- col2im by kernel offset: dx is k*k products dout @ W[:, :, i, j] added onto the shifted input pixels, never
  the whole (N*Ho*Wo, k*k*C) patch-gradient matrix.
- Cache blocks (blocks()): layers that pass over an activation several times do it about 1 MiB of images at a
  time, so each pass finds its block still in cache: numpy_nn's CNN epoch went from 0.86x to 0.78x the bare
  NumPy loop's at batch 128.
- Separable max pooling: the maximum over each window's columns, then over its rows, with the first winner
  kept at each stage; its backward routes tap 0's share by one subtraction instead of a comparison and a
  product, and skips zero-filling when the windows tile the input.
"""
import numpy as np

from numpy_nn import conv
from numpy_nn.layers import array_module

BLOCK_BYTES = 1 << 20


def blocks(x):
    """Consecutive slices of x's first axis, each about BLOCK_BYTES of x (at least one entry).
    At batch 128 one of conv1's 32x28x28 maps is 12.8 MB, more than the caches hold beside the rest; a 1 MiB
    block stays. On a GPU there is no such cache to fit: one block."""
    n = len(x)
    step = max(1, BLOCK_BYTES // max(1, x[0].nbytes)) if array_module(x) is np else n
    return [slice(a, min(a + step, n)) for a in range(0, n, step)]


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


class Conv2d(conv.Conv2d):
    """numpy_nn.conv.Conv2d, channels-last inside: im2col by patch (or by offset for one channel) into a reused
    buffer, col2im by kernel offset, block by block."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
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
            # one input channel: the matrix is kept transposed in memory, (k*k, N*Ho*Wo), a column-major view
            self.cols = xp.empty(shape[::-1], x.dtype).T if c == 1 else xp.empty(shape, x.dtype)
        padded = self._pad(channels_last(x))
        if c == 1:  # im2col by kernel offset, each offset's shifted images one contiguous row of the transposed
            # matrix (the products take it transposed, as BLAS can): k*k copies of whole images, written in order
            rows_t = self.cols.T.reshape(self.k, self.k, n, *out_hw)
            for i, j, rows, cols in offsets(self.k, self.stride, out_hw):
                rows_t[i, j] = padded[:, rows, cols, 0]
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


class MaxPool2d(conv.MaxPool2d):
    """numpy_nn.conv.MaxPool2d, separably: first the maximum over each window's k columns for every row, then
    over its k rows. The first maximum in row-major order lies in the first row that holds the maximum, at
    that row's first maximum, so tracking the first winner in each stage routes the gradient exactly as torch
    does. Channels-last inside, each stage reads rows of C contiguous numbers."""

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
