"""The fast kernels for numpy_nn/conv.py: the same Conv2d (MaxPool2d's are in fast_pool.py), the same numbers
(tests/test_kernels.py proves them equal to the reference layers, float64 to 1e-12), computed with the tricks that
made the CNN fast.
Each trick, and what it bought as measured on 2 cores (cnn-fast: its network of then, "same"-padded, 28x28 maps):

- Channels-last inside: Conv2d and fast_pool's MaxPool2d work on (N, H, W, C) memory and hand on NCHW views of
  it. Copying an image's patches then moves rows of C contiguous numbers instead of single ones (8x faster
  here), and the convolution's matrix product yields channels-last directly, so nothing is transposed on the
  way out.
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
- dW from dx's patches: those of dout, a row per input pixel, times x's channels give dW turned half a turn,
  so x's patches are not built again (the same products in float64, the zeros aside). Whole step, shuffled
  A/B on an AMD EPYC (AVX-512, 1 MiB L2 per core): cnn preset 74.6 -> 70.2 ms (batch 128), 42.1 -> 39.8 (64);
  cnn-fast 37.9 -> 36.8 (256), where the unpadded dout's patches have 144 rows per image to x's 100.
- dx scattered after all where the convolution is unpadded (stride 1): there dout's patches have a row per input
  pixel, more than x has patches (cnn-fast's conv2: 144 an image to 100), so the gathered dx multiplies 1.44x
  what dout @ W and k*k adds onto dx do, and dW comes from x's patches, built again (scattered). Whole cnn-fast
  step, one thread, batch 128 (what each replica runs), shuffled A/B on an AMD EPYC: 25.6 -> 24.6 ms; blocks a
  third the size: 3.5 % slower.
- Pooling order, when a 2 x 2 max pooling comes next (the model sets pooled; batch norm between passes it
  on; stride 1, odd k, even output sides): the product's rows ordered (image, window row, window column,
  Ho/2, Wo/2), so that its output is four slabs, one per window pixel, which fast_pool.MaxPool2d reads whole;
  the backward takes dout the same way. Only the patch copy changes (one as_strided view either way), and for
  one channel the even and odd columns are copied apart first. cnn-fast, Intel Xeon, ms per step forward +
  backward (interleaved, 2 threads): pool1 3.14 + 4.34 -> 2.76 + 3.21, pool2 1.10 + 1.21 -> 1.02 + 1.16, conv1
  4.28 + 2.87 -> 4.57 + 2.72; yet the whole step only 37.3 -> 36.7 ms (batch 256), 21.2 -> 20.9 (128), medians
  of 150 steps in two runs each. The cnn preset's whole step 88.2 -> 85.5 ms (batch 128).
"""
import numpy as np

from numpy_nn import conv
from numpy_nn.threads import blocks, parallel, total


def grid(out_hw, pooled):
    """The output pixels' axes: (Ho, Wo), or in pooling order (2, 2, Ho/2, Wo/2), [i, j] the pixels at (i, j) of
    a 2 x 2 pooling window."""
    return (2, 2, out_hw[0] // 2, out_hw[1] // 2) if pooled else tuple(out_hw)


def window_view(xp, x, k, stride, out_hw, pooled=False):
    """(N, H, W, C) -> (N, Ho, Wo, k, k, C): every k x k patch, as a view (no copy). pooled: the output pixels in
    pooling order, (N, 2, 2, Ho/2, Wo/2, k, k, C) (grid)."""
    sn, sh, sw, sc = (s * f for s, f in zip(x.strides, (1, stride, stride, 1)))
    steps = (sh, sw, 2 * sh, 2 * sw) if pooled else (sh, sw)
    return xp.lib.stride_tricks.as_strided(x, (len(x), *grid(out_hw, pooled), k, k, x.shape[3]),
                                           (sn, *steps, *x.strides[1:]))


def channels_last(x):
    """(N, C, H, W) -> the (N, H, W, C) view of the same memory (contiguous when the layers made it)."""
    return x.transpose(0, 2, 3, 1)


def nchw(x):
    """(N, H, W, C) -> the (N, C, H, W) view torch's layers hand on."""
    return x.transpose(0, 3, 1, 2)


def reused(make, buf, shape, dtype):
    """buf when it has this shape and dtype (kept from the last step), else make(shape, dtype)."""
    return buf if buf is not None and buf.shape == shape and buf.dtype == dtype else make(shape, dtype)


class Conv2d(conv.Conv2d):
    """numpy_nn.conv.Conv2d, channels-last inside, block by block on the thread pool: each block's patch
    matrix built in its worker's buffer (by patch) and multiplied while in cache; for one input channel built
    by offset into one matrix for the batch. The backward's dx is one product on dout's patches, the kernel
    turned half a turn, and dW another on the same patches; without dx (the first layer), dW is x's patches
    times dout, built again or read back. Into a 2 x 2 pooling, the output in pooling order (pooled)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.padded, self.scratch, self.kept = None, {}, None  # padded input, workers' patches, one channel's
        self.spread = None  # dout spread out and padded, for dx
        self.pooled = False  # set by the model when fast_pool's 2 x 2 MaxPool2d takes the output: then it is handed
        # on in pooling order (window_view) where the shapes allow (self.pool_order), and dout taken back so

    def out_hw(self, h, w):
        return tuple((s + 2 * self.padding - self.k) // self.stride + 1 for s in (h, w))

    def matrix(self, W):
        """(C_out, C, k, k) -> (C_out, k*k*C): the kernel in the patches' channels-last order."""
        return W.transpose(0, 2, 3, 1).reshape(len(W), -1)

    def image_bytes(self, channels=None):
        """A block's working set per image: its patch matrix (of the input's channels, or dout's) and its output."""
        per_pixel = self.k * self.k * (channels or self.padded.shape[3]) + len(self.params["W"])
        return self.hw[0] * self.hw[1] * per_pixel * self.padded.itemsize

    def patches(self, key, x, stride, out_hw, ones, pooled=False):
        """(b * Ho*Wo, k*k*C [+ 1]): every k x k patch of x (b, H, W, C), k rows of k*C numbers each, in the
        worker's buffer `key` (kept from step to step, grown when too small); with ones, a last column of ones;
        pooled: the rows in pooling order (window_view)."""
        k, b, c = self.k, len(x), x.shape[3]
        cols = self.buffer(key, (b * out_hw[0] * out_hw[1], k * k * c + ones), x.dtype)
        view = window_view(self.xp, x, k, stride, out_hw, pooled)
        cols[:, :k * k * c].reshape(view.shape)[...] = view
        cols[:, k * k * c:] = 1
        return cols

    def buffer(self, key, shape, dtype):
        """An array of this shape in the worker's buffer `key`, kept from step to step and grown when too small."""
        size = int(np.prod(shape))
        if (buf := self.scratch.get(key)) is None or buf.size < size or buf.dtype != dtype:
            buf = self.scratch[key] = self.xp.empty(size, dtype)
        return buf[:size].reshape(shape)

    def by_offset(self, worker, x):
        """x (b, H, W), one channel, as kernel offset (i, j) of every output pixel reads it: [(which offsets, a view
        (k, k or some of them, b, Ho, Wo))], or in pooling order (..., b, 2, 2, Ho/2, Wo/2). Views by stride tricks,
        not a slice per offset (25 NumPy calls for conv1). In pooling order a window's two columns read x's even
        and odd columns, or odd and next even: three copies of them apart let each offset read rows of Wo/2
        contiguous pixels, not every other one (conv1's copies in cnn-fast took 2.4x as long that way)."""
        (ho, wo), k, (b, h, w), st = self.hw, self.k, x.shape, self.stride
        as_strided = self.xp.lib.stride_tricks.as_strided
        if not self.pool_order:
            sn, sh, sw = x.strides
            return [((), as_strided(x, (k, k, b, ho, wo), (sh, sw, sn, sh * st, sw * st)))]
        flat, half, e = x.reshape(-1), x.size // 2, x.itemsize  # (w is even: Wo is, and k odd)
        q = self.buffer((worker, "columns"), (3, half), x.dtype)
        q[0], q[1], q[2, :-1] = flat[0::2], flat[1::2], flat[2::2]  # (q[2]'s last is never read)
        # offset (i, j = 2m + parity), image n, window pixel (y, z), output (r, t) reads q[parity + z][n, 2r + y + i,
        # t + m]: the strides of (i, m, n, y, z, r, t)
        strides = (w // 2 * e, e, h * w // 2 * e, w // 2 * e, half * e, w * e, e)
        return [(np.s_[:, parity::2], as_strided(q[parity], (k, (k + 1 - parity) // 2, b, *grid(self.hw, True)),
                                                 strides)) for parity in (0, 1)]

    def im2col(self, worker, s, build=True):
        """(len(s) * Ho*Wo, k*k*C [+ 1]): the patches of images s, and with a bias a last column of ones (the
        product then adds the bias, and the backward's sums it). build=False: what the forward kept, if it did."""
        padded, (ho, wo), k, bias = self.padded[s], self.hw, self.k, "b" in self.params
        if padded.shape[3] == 1:  # by kernel offset: k*k copies of whole shifted images, each one contiguous row of
            # the matrix kept transposed in memory, (width, N*Ho*Wo), as BLAS takes it too; kept for the backward, where
            # building it again cost more than its product (conv1: 8.7 -> 7.3 ms forward and backward)
            cols_t = self.kept[:, s.start * ho * wo:s.stop * ho * wo]  # (the forward sized it, before the pool)
            if build:
                for which, view in self.by_offset(worker, padded[..., 0]):
                    cols_t[:k * k].reshape(k, k, *view.shape[2:])[which] = view
                cols_t[k * k:] = 1
            return cols_t.T
        return self.patches(worker, padded, self.stride, self.hw, bias, self.pool_order)

    def forward(self, x):
        xp, (n, c, h, w), W, p = self.xp, x.shape, self.params["W"], self.padding
        self.x_shape, self.hw = x.shape, self.out_hw(h, w)
        self.pool_order = self.pooled and self.stride == 1 and self.k % 2 == 1 and self.hw[0] % 2 == 0 == self.hw[1] % 2
        xt, w_t = channels_last(x), self.matrix(W).T                           # (k*k*C, C_out)
        self.x = xt  # for dW, when the backward computes dx
        shape = (n, h + 2 * p, w + 2 * p, c)  # kept for the backward (its border stays 0); unpadded, the input itself
        self.padded = reused(xp.zeros, self.padded, shape, x.dtype) if p else xt
        if "b" in self.params:
            w_t = xp.concatenate([w_t, self.params["b"][None]])               # the bias, as one more row
        out = xp.empty((n, *grid(self.hw, self.pool_order), len(W)), x.dtype)
        if c == 1:  # the whole batch's patch matrix, sized here: workers that each found it missing would each
            # make their own, and keep only the last one's
            self.kept = reused(xp.empty, self.kept, (len(w_t), n * self.hw[0] * self.hw[1]), x.dtype)

        def block(worker, s):
            if p:
                self.padded[s, p:p + h, p:p + w] = xt[s]
            xp.matmul(self.im2col(worker, s), w_t, out=out[s].reshape(-1, len(W)))
        parallel(block, blocks(n, self.image_bytes(), xp))
        return out if self.pool_order else nchw(out)        # (N, C_out, Ho, Wo), channels-last inside

    def backward(self, dout, need_dx=True):
        """dout: (N, C_out, Ho, Wo), or in pooling order as the forward handed it on -> dx: (N, C, H, W); dW and
        db assigned."""
        xp, W, p, k, st = self.xp, self.params["W"], self.padding, self.k, self.stride
        (n, c, h, w), c_out, (ho, wo) = self.x_shape, len(W), self.hw
        d4 = dout if self.pool_order else channels_last(dout)
        if need_dx and p == 0 and st == 1 and k > 1:  # unpadded: dout's patches outnumber x's (h*w > ho*wo)
            return self.scattered(d4)
        if need_dx:  # dout spread out by the stride and padded by k-1, in a buffer whose zeros stay: dx[y, x] is
            # the sum over (i, j) of spread[y + p + i, x + p + j] @ turned[i, j], turned[i, j] = W[:, :, k-1-i, k-1-j]
            spread_hw = [max(p + s + k - 1, (o - 1) * st + 2 * k - 1) for s, o in ((h, ho), (w, wo))]
            self.spread = reused(xp.zeros, self.spread, (n, *spread_hw, c_out), dout.dtype)
            turned = W[:, :, ::-1, ::-1].transpose(2, 3, 0, 1).reshape(k * k * c_out, c)  # rows (i, j, C_out)
            dx = xp.empty((n, h, w, c), dout.dtype)

        def block(worker, s):
            d = d4[s].reshape(-1, c_out)                          # (rows, C_out)
            if not need_dx:  # dW (and db, its last row) as patches.T @ dout: OpenBLAS 8-30 % faster than dout.T @ patches
                return self.im2col(worker, s, build=False).T @ d
            spread = self.spread[s]
            window_view(xp, spread[:, k - 1:, k - 1:], 1, st, (ho, wo), self.pool_order)[..., 0, 0, :] = d4[s]
            cols = self.patches((worker, "dx"), spread[:, p:, p:], 1, (h, w), False)  # a row per input pixel
            xp.matmul(cols, turned, out=dx[s].reshape(-1, c))
            # dW from the same patches: W[o, c, i, j] meets x[y, x, c] where dout[y + p - i, x + p - j, o] sits,
            # spread[y + p + (k-1-i), x + p + (k-1-j), o], so cols.T @ x gives dW turned, no patches of x to build
            return cols.T @ self.x[s].reshape(-1, c), d.sum(0) if "b" in self.grads else 0
        sums = total(block, blocks(n, self.image_bytes(c_out if need_dx else None), xp))
        if need_dx:  # dW turned, ((k, k, C_out), C), and db
            dw, db = sums
            self.grads["W"][...] = dw.reshape(k, k, c_out, c)[::-1, ::-1].transpose(2, 3, 0, 1)
        else:  # (k*k*C [+ 1], C_out): dW's rows, then db's
            dw, db = sums[:k * k * c], sums[k * k * c:]
            self.grads["W"][...] = nchw(dw.T.reshape(c_out, k, k, c))
        if "b" in self.grads:
            self.grads["b"][...] = db.reshape(-1)
        return nchw(dx) if need_dx else None

    def scattered(self, d4):
        """The backward of an unpadded convolution, whose gathered dx would multiply more rows (one per input
        pixel, 144 an image for cnn-fast's conv2) than x has patches (100): per block, dout @ W gives each output
        pixel's k x k patch of dx, added onto dx at the k*k offsets (window_view, so that the pooling order needs
        nothing else); dW (and db) from x's patches (built again; one channel's, kept by the forward) times dout."""
        xp, W, k = self.xp, self.params["W"], self.k
        (n, c, h, w), c_out = self.x_shape, len(W)
        w_mat, dx = self.matrix(W), xp.zeros((n, h, w, c), d4.dtype)

        def block(worker, s):
            d = d4[s].reshape(-1, c_out)                                          # (rows, C_out)
            patches = self.buffer((worker, "dx"), (len(d), k * k * c), d4.dtype)  # each pixel's dx patch
            xp.matmul(d, w_mat, out=patches)
            shaped = patches.reshape(-1, *grid(self.hw, self.pool_order), k, k, c)
            onto = window_view(xp, dx[s], k, 1, self.hw, self.pool_order)         # (images, pixels, k, k, C)
            for i in range(k):
                for j in range(k):
                    onto[..., i, j, :] += shaped[..., i, j, :]
            return self.im2col(worker, s, build=False).T @ d
        sums = total(block, blocks(n, self.image_bytes(2 * c), xp))  # (k*k*C [+ 1], C_out): dW's rows, then db's
        self.grads["W"][...] = nchw(sums[:k * k * c].T.reshape(c_out, k, k, c))
        if "b" in self.grads:
            self.grads["b"][...] = sums[k * k * c:].reshape(-1)
        return nchw(dx)
