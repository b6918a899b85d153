"""The fast kernels for numpy_nn/conv.py: the same Conv2d and MaxPool2d, the same numbers (tests/test_kernels.py
proves them equal to the reference layers, float64 to 1e-12), computed with the tricks that made the CNN fast.
Each trick, and what it bought as measured on 2 cores (cnn-fast: its network of then, "same"-padded, 28x28 maps):

- Channels-last inside: both layers work on (N, H, W, C) memory and hand on NCHW views of it. Copying an
  image's patches then moves rows of C contiguous numbers instead of single ones (8x faster here), and the
  convolution's matrix product yields channels-last directly, so nothing is transposed on the way out.
- im2col into a reused buffer, and for one input channel by kernel offset: k*k strided copies of whole images
  beat N*Ho*Wo copies of k*k pixels (conv1's forward); each offset's copy is one contiguous row of the matrix
  kept transposed in memory, which the products take as BLAS's transposed operand: conv1's forward of the
  cnn-fast network (24 channels of 5x5, batch 256) 24.0 -> 6.6 ms, its whole step 86 -> 68 ms (phases.py).
  Kept for the backward (21 MB there), where building it again cost more than its product: conv1 8.7 -> 7.3 ms.
- Blocks of images on a pool of threads (numpy_nn/threads.py): each worker builds a block's patch matrix in
  its own buffer and multiplies it while it is in cache, on one BLAS thread; the backward builds it again
  rather than keep the whole batch's. NumPy's copies and sums run on one core otherwise, and OpenBLAS
  parallelizes a skinny product (32 output channels) poorly: cnn-fast step 64 -> 53 ms, then 4 MiB blocks
  rather than 1 MiB (fewer calls into NumPy, larger products) -> 50 ms. Also a CNN's ReLUs and dense layers.
- The bias as a last column of ones in the patch matrix: the forward's product adds it, the backward's sums
  it, no pass of its own (which cost a third of conv1's product): conv1 4.7 + 6.0 -> 4.1 + 4.6 ms.
- dx gathered, not scattered: the correlation of dout (spread out by the stride, padded by k-1) with the kernel
  turned half a turn; each block builds dout's patches in its worker's buffer, one product gives dx, nothing
  to add up or zero. col2im before (k*k products dout @ W[:, :, i, j] added onto shifted pixels): cnn-fast's
  whole step 52.6 -> 50.3 ms (interleaved, Intel Xeon), the cnn preset's unchanged (78.2 / 78.8 ms).
- Separable max pooling: the maximum over each window's columns, then over its rows, with the first winner
  kept at each stage; its backward routes tap 0's share by one subtraction instead of a comparison and a
  product, and skips zero-filling when the windows tile the input.
- The ReLU after a pooling done in the pooling's blocks (FUSED; the model names the layer "pool1+conv1_relu"):
  no pass of its own, no hand-off: whole step 52.1 -> 50.3 ms (cnn-fast), 78.6 -> 75.7 ms (cnn preset).
"""
import numpy as np

from numpy_nn import conv
from numpy_nn.layers import array_module
from numpy_nn.threads import blocks, parallel, total


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


def reused(make, buf, shape, dtype):
    """buf when it has this shape and dtype (kept from the last step), else make(shape, dtype)."""
    return buf if buf is not None and buf.shape == shape and buf.dtype == dtype else make(shape, dtype)


def channels_last(x):
    """(N, C, H, W) -> the (N, H, W, C) view of the same memory (contiguous when the layers made it)."""
    return x.transpose(0, 2, 3, 1)


def nchw(x):
    """(N, H, W, C) -> the (N, C, H, W) view torch's layers hand on."""
    return x.transpose(0, 3, 1, 2)


class Conv2d(conv.Conv2d):
    """numpy_nn.conv.Conv2d, channels-last inside, block by block on the thread pool: each block's patch
    matrix built in its worker's buffer (by patch) and multiplied while in cache, and built again by the
    backward; for one input channel built by offset into one matrix for the batch, which the backward reads
    back. The backward's dx is one product on dout's patches, the kernel turned half a turn."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.padded, self.scratch, self.kept = None, {}, None  # padded input, workers' patches, one channel's
        self.spread = None  # dout spread out and padded, for dx

    def out_hw(self, h, w):
        return tuple((s + 2 * self.padding - self.k) // self.stride + 1 for s in (h, w))

    def matrix(self, W):
        """(C_out, C, k, k) -> (C_out, k*k*C): the kernel in the patches' channels-last order."""
        return W.transpose(0, 2, 3, 1).reshape(len(W), -1)

    def image_bytes(self, channels=None):
        """A block's working set per image: its patch matrix (of the input's channels, or dout's) and its output."""
        per_pixel = self.k * self.k * (channels or self.padded.shape[3]) + len(self.params["W"])
        return self.hw[0] * self.hw[1] * per_pixel * self.padded.itemsize

    def patches(self, key, x, stride, out_hw, ones):
        """(b * Ho*Wo, k*k*C [+ 1]): every k x k patch of x (b, H, W, C), k rows of k*C numbers each, in the
        worker's buffer `key` (kept from step to step, grown when too small); with ones, a last column of ones."""
        k, b, c = self.k, len(x), x.shape[3]
        rows, width = b * out_hw[0] * out_hw[1], k * k * c + ones
        if (buf := self.scratch.get(key)) is None or buf.size < rows * width or buf.dtype != x.dtype:
            buf = self.scratch[key] = self.xp.empty(rows * width, x.dtype)
        cols = buf[:rows * width].reshape(rows, width)
        cols[:, :k * k * c].reshape(b, *out_hw, k, k, c)[...] = window_view(self.xp, x, k, stride, out_hw)
        cols[:, k * k * c:] = 1
        return cols

    def im2col(self, worker, s, build=True):
        """(len(s) * Ho*Wo, k*k*C [+ 1]): the patches of images s, and with a bias a last column of ones (the
        product then adds the bias, and the backward's sums it). build=False: what the forward kept, if it did."""
        padded, (ho, wo), k, bias = self.padded[s], self.hw, self.k, "b" in self.params
        if padded.shape[3] == 1:  # by kernel offset: k*k copies of whole shifted images, each one contiguous row of
            # the matrix kept transposed in memory, (width, N*Ho*Wo), as BLAS takes it too; kept for the backward, where
            # building it again cost more than its product (conv1: 8.7 -> 7.3 ms forward and backward)
            cols_t = self.kept[:, s.start * ho * wo:s.stop * ho * wo]  # (the forward sized it, before the pool)
            if build:
                for i, j, r, cc in offsets(k, self.stride, self.hw):
                    cols_t[i * k + j].reshape(len(padded), ho, wo)[...] = padded[:, r, cc, 0]
                cols_t[k * k:] = 1
            return cols_t.T
        return self.patches(worker, padded, self.stride, self.hw, bias)

    def forward(self, x):
        xp, (n, c, h, w), W, p = self.xp, x.shape, self.params["W"], self.padding
        self.x_shape, self.hw = x.shape, self.out_hw(h, w)
        xt, w_t = channels_last(x), self.matrix(W).T                           # (k*k*C, C_out)
        shape = (n, h + 2 * p, w + 2 * p, c)  # kept for the backward (its border stays 0); unpadded, the input itself
        self.padded = reused(xp.zeros, self.padded, shape, x.dtype) if p else xt
        if "b" in self.params:
            w_t = xp.concatenate([w_t, self.params["b"][None]])               # the bias, as one more row
        out = xp.empty((n, *self.hw, len(W)), x.dtype)
        if c == 1:  # the whole batch's patch matrix, sized here: workers that each found it missing would each
            # make their own, and keep only the last one's
            self.kept = reused(xp.empty, self.kept, (len(w_t), n * self.hw[0] * self.hw[1]), x.dtype)

        def block(worker, s):
            if p:
                self.padded[s, p:p + h, p:p + w] = xt[s]
            xp.matmul(self.im2col(worker, s), w_t, out=out[s].reshape(-1, len(W)))
        parallel(block, blocks(n, self.image_bytes(), xp))
        return nchw(out)                                         # (N, C_out, Ho, Wo), channels-last inside

    def backward(self, dout, need_dx=True):
        """dout: (N, C_out, Ho, Wo) -> dx: (N, C, H, W); dW and db assigned."""
        xp, W, p, k, st = self.xp, self.params["W"], self.padding, self.k, self.stride
        (n, c, h, w), c_out, d4, (ho, wo) = self.x_shape, len(W), channels_last(dout), self.hw
        if need_dx:  # dout spread out by the stride and padded by k-1, in a buffer whose zeros stay: dx[y, x] is
            # the sum over (i, j) of spread[y + p + i, x + p + j] @ turned[i, j], turned[i, j] = W[:, :, k-1-i, k-1-j]
            spread_hw = [max(p + s + k - 1, (o - 1) * st + 2 * k - 1) for s, o in ((h, ho), (w, wo))]
            self.spread = reused(xp.zeros, self.spread, (n, *spread_hw, c_out), dout.dtype)
            turned = W[:, :, ::-1, ::-1].transpose(2, 3, 0, 1).reshape(k * k * c_out, c)  # rows (i, j, C_out)
            dx = xp.empty((n, h, w, c), dout.dtype)

        def block(worker, s):
            d = d4[s].reshape(-1, c_out)                          # (rows, C_out)
            if need_dx:
                spread = self.spread[s]
                spread[:, k - 1:k + (ho - 1) * st:st, k - 1:k + (wo - 1) * st:st] = d4[s]
                xp.matmul(self.patches((worker, "dx"), spread[:, p:, p:], 1, (h, w), False), turned,
                          out=dx[s].reshape(-1, c))
            # this block's dW (and db, its last row) as patches.T @ dout: OpenBLAS 8-30 % faster than dout.T @ patches
            return self.im2col(worker, s, build=False).T @ d
        sums = total(block, blocks(n, self.image_bytes(c_out if need_dx else None), xp))  # (k*k*C [+ 1], C_out)
        self.grads["W"][...] = nchw(sums[:k * k * c].T.reshape(c_out, k, k, c))
        if "b" in self.grads:
            self.grads["b"][...] = sums[-1]
        return nchw(dx) if need_dx else None


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


class MaxPool2d(conv.MaxPool2d):
    """numpy_nn.conv.MaxPool2d, separably: first the maximum over each window's k columns for every row, then
    over its k rows. The first maximum in row-major order lies in the first row that holds the maximum, at
    that row's first maximum, so tracking the first winner in each stage routes the gradient exactly as torch
    does. Channels-last inside, each stage reads rows of C contiguous numbers. relu: then a ReLU on each block
    while it is in cache (max(x, 0); its backward passes the gradient where the output is positive, as the
    reference ReLU's mask x > 0 does)."""

    def __init__(self, kernel_size, stride=None, relu=False):
        super().__init__(kernel_size, stride)
        self.relu = relu

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

        def block(worker, s):  # the row maxima still in cache for the second stage
            rows = xp.empty((len(xt[s]), h, wo, c), x.dtype)                             # (block, H, Wo, C)
            first_max(xp, [xt[s, :, t] for t in across], rows, self.cols_max[s])
            first_max(xp, [rows[:, t] for t in down], out[s], self.rows_max[s])
            if self.relu:
                xp.maximum(out[s], 0, out=out[s])
        parallel(block, blocks(n, 2 * xt[0].nbytes, xp))  # reads an image, writes half of one and a byte each
        self.out = out if self.relu else None  # (N, Ho, Wo, C): where it is positive, the ReLU's gradient passes
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

        def block(worker, s):
            drows = blank((len(dx[s]), h, dt.shape[2], c), dout.dtype)                   # (block, H, Wo, C)
            d = dt[s] * (self.out[s] > 0) if self.relu else dt[s]
            self.route(xp, d, self.rows_max[s], down, drows, overlapping)
            self.route(xp, drows, self.cols_max[s], across, dx[s], overlapping)
        parallel(block, blocks(len(dx), 2 * dx[0].nbytes, xp))
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


FUSED = {"relu": lambda k: MaxPool2d(k, relu=True)}  # activation -> the pooling that applies it too
