"""The fast kernels for numpy_nn/conv.py's MaxPool2d (its Conv2d's are in fast_conv.py): the same numbers
(tests/test_kernels.py proves them equal to the reference layer, and the ReLU fused into it equal to the reference
ReLU after it), computed with the tricks that made the CNN fast. Each trick, and what it bought as measured on 2
cores (Intel Xeon, interleaved):

- Separable max pooling: the maximum over each window's columns, then over its rows, with the first winner
  kept at each stage; its backward routes tap 0's share by one subtraction instead of a comparison and a
  product, and skips zero-filling when the windows tile the input.
- The ReLU after a pooling done in the pooling's blocks (FUSED; the model names the layer "pool1+conv1_relu"):
  no pass of its own, no hand-off: whole step 52.1 -> 50.3 ms (cnn-fast), 78.6 -> 75.7 ms (cnn preset).
- Slabs: from a fast Conv2d that hands its output on in pooling order (fast_conv.window_view), each of a 2 x 2
  window's four pixels is one slab of whole images, contiguous, so the maximum is one stage over four slabs
  instead of two over rows of C numbers; dx goes back the same way. cnn-fast per step, forward + backward:
  pool1 3.14 + 4.34 -> 2.76 + 3.21 ms (what the convolutions pay for it: fast_conv.py). Over the slabs, a
  tournament (pairs, then the pairs' winners: three comparisons kept as booleans) rather than first_max's
  running index: 6 passes forward and 6 backward instead of 10 and 9; pool1 2.42 + 3.12 -> 2.02 + 2.79 ms, the
  whole step 33.1 -> 32.3 and 31.4 -> 30.5 ms at batch 256 (two runs), 19.9 -> 19.6 at 128.
- Batch norm's scale and shift after the pooling (defer, when a fast BatchNorm2d comes before): the norm hands
  on its centered values, the pooling scales and shifts their maxima, a quarter of the values, and sums the
  norm's dgamma and dbeta over them. The norm's output pass and its backward's pass of sums over the whole map
  go. cnn preset, whole step (shuffled A/B, median): 90.1 -> 83.6, 96.5 -> 91.6 ms at batch 128, 56.3 -> 50.6 at 64.
"""
import numpy as np

from numpy_nn import conv
from numpy_nn.fast_conv import channels_last, nchw
from numpy_nn.layers import array_module
from numpy_nn.threads import blocks, parallel, total


def first_max(xp, views, out, idx):
    """out = the elementwise maximum of equally shaped arrays, idx = the index of the first one holding it:
    on a tie the earlier keeps it, as torch's CPU kernel, scanning in order, keeps the first maximum it finds."""
    if len(views) == 1:
        out[...], idx[...] = views[0], 0
        return
    xp.greater(views[1], views[0], out=idx.view(bool))  # bool is 0/1 as a byte
    xp.maximum(views[0], views[1], out=out)
    for t, v in enumerate(views[2:], start=2):  # idx < t so far: where v is better, max(idx, t) = t
        xp.maximum(idx, (v > out).view(np.uint8) * np.uint8(t), out=idx)  # (10x idx[v > out] = t here)
        xp.maximum(out, v, out=out)


def tournament(xp, taps, out, won, bottom):
    """out = the maximum of a 2 x 2 window's four taps (top left, top right, bottom left, bottom right): the top
    pair's, the bottom pair's, then the greater of the two. won[0]: the top right beat the top left; won[1]: the
    same below; won[2]: the bottom pair beat the top. Each strictly, so that a tie keeps the earlier tap in
    row-major order, the first maximum torch's kernel finds. bottom: a scratch array shaped like out."""
    xp.greater(taps[1], taps[0], out=won[0])
    xp.maximum(taps[0], taps[1], out=out)
    xp.greater(taps[3], taps[2], out=won[1])
    xp.maximum(taps[2], taps[3], out=bottom)
    xp.greater(bottom, out, out=won[2])
    xp.maximum(out, bottom, out=out)


class MaxPool2d(conv.MaxPool2d):
    """numpy_nn.conv.MaxPool2d, separably: first the maximum over each window's k columns for every row, then
    over its k rows. The first maximum in row-major order lies in the first row that holds the maximum, at
    that row's first maximum, so tracking the first winner in each stage routes the gradient exactly as torch
    does. Channels-last inside, each stage reads rows of C contiguous numbers. From a Conv2d that hands its
    output on in pooling order (6-D, 2 x 2 windows; dx handed back the same way): one tournament over the four
    taps, each a slab of whole contiguous images rather than rows of C. relu: then a ReLU on each block while it is
    in cache (max(x, 0); its backward passes the gradient where the output is positive, as the reference
    ReLU's mask x > 0 does)."""

    def __init__(self, kernel_size, stride=None, relu=False):
        super().__init__(kernel_size, stride)
        self.relu, self.norm = relu, None  # norm: the batch norm before, whose scale and shift come here (defer)

    @property
    def shifted(self):
        """Whether this step's batch norm left its scale and shift to this pooling (defer)."""
        return self.norm is not None and self.norm.shifted_later

    def n_out(self, size):
        return (size - self.k) // self.stride + 1

    def taps(self, size):
        """The k strided slices along an axis of `size`: slice t picks offset t of every window."""
        return [slice(t, t + self.stride * (self.n_out(size) - 1) + 1, self.stride) for t in range(self.k)]

    def forward(self, x):
        xp, slabs = array_module(x), x.ndim == 6  # slabs: (N, 2, 2, Ho, Wo, C) in pooling order
        assert not slabs or self.k == self.stride == 2, "pooling order is for 2 x 2 windows"
        assert slabs or not self.shifted, "a batch norm defers its scale and shift only on slabs"
        xt = x if slabs else channels_last(x)                                         # (N, H, W, C)
        self.x_shape, n, c = xt.shape, len(xt), xt.shape[-1]
        self.in_hw = h, w = (2 * xt.shape[3], 2 * xt.shape[4]) if slabs else xt.shape[1:3]  # the image's sides
        ho, wo = self.n_out(h), self.n_out(w)
        # the winners, for the backward: among a window's rows (rows_max) and within each row (cols_max); from
        # slabs, the tournament's three (won)
        out = xp.empty((n, ho, wo, c), x.dtype)
        self.rows_max, self.cols_max = (None, None) if slabs else (xp.empty((n, ho, wo, c), np.uint8),
                                                                   xp.empty((n, h, wo, c), np.uint8))
        self.won = xp.empty((n, 3, ho, wo, c), bool) if slabs else None
        across, down = self.taps(w), self.taps(h)
        norm = self.norm if self.shifted else None
        if norm is not None:  # the maxima of centered values kept, then scaled and shifted (defer)
            self.peaks = xp.empty_like(out)
            scale_t, beta_t = xp.tile(norm.scale, wo), xp.tile(norm.params["beta"], wo)   # rows of Wo pixels

        def block(worker, s):
            if slabs:  # tap (i, j) of every window is the slab xt[:, i, j]
                tournament(xp, [xt[s, i, j] for i, j in np.ndindex(2, 2)], out[s] if norm is None else self.peaks[s],
                           self.won[s].transpose(1, 0, 2, 3, 4), xp.empty_like(out[s]))
                if norm is not None:
                    rows = out[s].reshape(-1, wo * c)
                    xp.multiply(self.peaks[s].reshape(rows.shape), scale_t, out=rows)
                    rows += beta_t
            else:  # the row maxima still in cache for the second stage
                rows = xp.empty((len(xt[s]), h, wo, c), x.dtype)                         # (block, H, Wo, C)
                first_max(xp, [xt[s, :, t] for t in across], rows, self.cols_max[s])
                first_max(xp, [rows[:, t] for t in down], out[s], self.rows_max[s])
            if self.relu:
                xp.maximum(out[s], 0, out=out[s])
        parallel(block, blocks(n, 2 * xt[0].nbytes, xp))  # reads an image, writes half of one and a byte each
        self.out = out if self.relu else None  # (N, Ho, Wo, C): where it is positive, the ReLU's gradient passes
        return nchw(out)

    def backward(self, dout):
        xp, dt, slabs = array_module(dout), channels_last(dout), len(self.x_shape) == 6
        (h, w), c = self.in_hw, self.x_shape[-1]
        overlapping = self.stride < self.k  # then windows share elements and their gradients add up
        # windows that tile the input exactly write every element below: no zero-filling pass needed
        tiles = self.stride == self.k and h % self.k == 0 and w % self.k == 0
        blank = xp.empty if tiles else xp.zeros
        dx = blank(self.x_shape, dout.dtype)
        down = [(slice(None), t) for t in self.taps(h)]
        across = [(slice(None), slice(None), t) for t in self.taps(w)]

        def block(worker, s):
            d = dt[s] * (self.out[s] > 0) if self.relu else dt[s]
            if slabs:  # the four taps are dx's slabs: d to the pair that won, then within the pair to the tap that won
                won, dxs = self.won[s], dx[s]
                below = d * won[:, 2]
                for i, pair in ((0, d - below), (1, below)):
                    xp.multiply(pair, won[:, i], out=dxs[:, i, 1])
                    xp.subtract(pair, dxs[:, i, 1], out=dxs[:, i, 0])
                if self.shifted:  # the batch norm's two sums, over the maxima: dout is 0 everywhere else
                    rows = d.reshape(-1, c)
                    return xp.einsum("ij,ij->j", rows, self.peaks[s].reshape(rows.shape)), xp.einsum("ij->j", rows)
                return None
            drows = blank((len(dx[s]), h, dt.shape[2], c), dout.dtype)                   # (block, H, Wo, C)
            self.route(xp, d, self.rows_max[s], down, drows, overlapping)
            self.route(xp, drows, self.cols_max[s], across, dx[s], overlapping)
        sums = (total if self.shifted else parallel)(block, blocks(len(dx), 2 * dx[0].nbytes, xp))
        if self.shifted:
            self.norm.handed = sums
        return dx if slabs else nchw(dx)

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


def defer(norm, pool):
    """Batch norm's scale and shift after the 2 x 2 pooling that follows it, on a quarter of the values: the
    norm hands on its centered values, the pooling takes their maxima and scales and shifts those. Exact where
    every channel's scale (gamma / std) is positive: x -> x * scale + beta rounds monotonically, so the maximum
    scaled is the maximum of the scaled, to the bit; else that step the usual order. The gradient goes to the
    window's first maximum of the centered values, the reference's to that of the normalized ones: the same tap
    unless rounding made two different values equal (an equally valid subgradient). Its backward sums dgamma's
    and dbeta's terms over the maxima (the pooled dout is zero elsewhere) and hands them to the norm."""
    norm.deferred, pool.norm = True, norm


FUSED = {"relu": lambda k: MaxPool2d(k, relu=True)}  # activation -> the pooling that applies it too
