"""numpy_nn/conv.py's Conv2d, computed faster: the same numbers (tests/test_kernels.py proves them equal to the
reference layer, float64 to 1e-12), NCHW in and out as the reference. Its tricks, and why each is exact:

- Channels-last inside: the input is read as (N, H, W, C) memory (a view when the layer before made it so) and the
  output handed on as an NCHW view of the (N, Ho, Wo, C_out) memory the matrix product yields. A patch then copies
  rows of C contiguous numbers instead of single ones, and nothing is transposed on the way out.
- Cache blocks: the batch goes through in blocks of about BLOCK_BYTES of working set, each block's patch matrix
  built into a buffer kept from step to step and multiplied while it is still in cache.
- One input channel: the patch matrix filled kernel offset by kernel offset (k*k copies of shifted images instead
  of N*Ho*Wo copies of k*k pixels), each offset one contiguous row of its transpose, which BLAS takes as it is;
  kept for the backward's dW.
- The bias as a last column of ones in the patch matrix: the forward's product adds it, the backward's sums it.
- dx gathered: the correlation of dout (spread out by the stride, padded by k - 1) with the kernel turned half a
  turn, one product on dout's patches. dW is x's patches.T @ dout, the patches built again block by block: its
  product is C_out wide where one on dout's patches would be C wide, the narrower when channels grow.
- Pooling order (pooled, for fast_block.ConvBlock): the output's pixels ordered (window row, window column, Ho/2,
  Wo/2), so that each pixel of the 2 x 2 pooling windows is one contiguous slab; only the patch copy's strides
  change.
"""
import numpy as np

from numpy_nn import conv

BLOCK_BYTES = 2 << 20  # a block's working set


def blocks(n, bytes_per_image, xp=np):
    """range(n) in slices of at most about BLOCK_BYTES of working set each (at least one image); on a GPU, one."""
    count = 1 if xp is not np else max(1, min(n, -(-n * bytes_per_image // BLOCK_BYTES)))
    edges = [n * i // count for i in range(count + 1)]
    return [slice(a, b) for a, b in zip(edges, edges[1:])]


def channels_last(x):
    """(N, C, H, W) -> the (N, H, W, C) view of the same memory (contiguous when the layers made it)."""
    return x.transpose(0, 2, 3, 1)


def nchw(x):
    """(N, H, W, C) -> the (N, C, H, W) view torch's layers hand on."""
    return x.transpose(0, 3, 1, 2)


def grid(out_hw, pooled):
    """The output pixels' axes: (Ho, Wo), or in pooling order (2, 2, Ho/2, Wo/2): [y, z, r, t] is pixel (2r + y, 2t + z)."""
    return (2, 2, out_hw[0] // 2, out_hw[1] // 2) if pooled else tuple(out_hw)


def window_view(xp, x, k, stride, out_hw, pooled=False):
    """(N, H, W, C) -> (N, *grid, k, k, C): every output pixel's k x k patch, as a view (no copy)."""
    sn, sh, sw, sc = x.strides
    steps = (sh * stride, sw * stride, 2 * sh * stride, 2 * sw * stride) if pooled else (sh * stride, sw * stride)
    return xp.lib.stride_tricks.as_strided(x, (len(x), *grid(out_hw, pooled), k, k, x.shape[3]),
                                           (sn, *steps, sh, sw, sc))


class Conv2d(conv.Conv2d):
    """numpy_nn.conv.Conv2d on channels-last memory, block by block."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.kept = {}  # arrays reused from step to step: the padded input, patch matrices, dout spread out

    def buffer(self, key, shape, dtype, make=None):
        """The array kept under key, made anew (xp.empty, or make) when this step needs another shape or dtype."""
        a = self.kept.get(key)
        if a is None or a.shape != tuple(shape) or a.dtype != dtype:
            a = self.kept[key] = (make or self.xp.empty)(tuple(shape), dtype)
        return a

    def matrix(self, W):
        """(C_out, C, k, k) -> (C_out, k*k*C): the kernel in the patches' channels-last order."""
        return W.transpose(0, 2, 3, 1).reshape(len(W), -1)

    def unmatrix(self, m):
        """(C_out, k*k*C) -> (C_out, C, k, k): matrix() undone."""
        return nchw(m.reshape(len(m), self.k, self.k, -1))

    def moments(self):
        """One input channel (whose patch matrix the forward keeps): (M, P.T @ 1, P.T @ P) in float64, P the last
        forward's patch matrix (M rows of k*k pixels), whose moments give the output's (fast_block.ConvBlock)."""
        p = self.kept["by offset"][:self.k * self.k].astype(self.xp.float64)  # (k*k, M): P.T
        return p.shape[1], p.sum(axis=1), p @ p.T

    def patches(self, key, x, stride, out_hw, ones, pooled=False):
        """(b*Ho*Wo, k*k*C [+ 1]): every k x k patch of x (b, H, W, C) as a row, in the buffer under key; with
        ones, a last column of ones."""
        k, c = self.k, x.shape[3]
        rows = self.buffer(key, (len(x) * out_hw[0] * out_hw[1], k * k * c + ones), x.dtype)
        rows[:, :k * k * c].reshape(len(x), *grid(out_hw, pooled), k, k, c)[...] = \
            window_view(self.xp, x, k, stride, out_hw, pooled)
        rows[:, k * k * c:] = 1
        return rows

    def by_offset(self, image):
        """One channel, image (N, H, W) padded: the transposed patch matrix (k*k [+ 1], N*Ho*Wo), row i*k + j what
        kernel offset (i, j) of every output pixel reads (and a row of ones with a bias). In pooling order an
        offset reads every other column: from the image's even and odd columns, copied apart first, it reads rows
        of contiguous pixels instead, both window rows at once."""
        (ho, wo), k, n, bias = self.hw, self.k, len(image), "b" in self.params
        cols_t = self.buffer("by offset", (k * k + bias, n * ho * wo), image.dtype)
        halves = [image[..., q::2].copy() for q in (0, 1)] if self.pooled else None
        for i in range(k):
            for j in range(k):
                if not self.pooled:
                    rows, cols = conv.offset_slices(i, j, self.stride, ho, wo)
                    cols_t[i * k + j].reshape(n, ho, wo)[...] = image[:, rows, cols]
                    continue
                into = cols_t[i * k + j].reshape(n, 2, 2, ho // 2, wo // 2)
                for z in (0, 1):  # pixel (2r + y, 2t + z) reads (2r + y + i, 2t + z + j): y and r from rows i...i+Ho-1
                    a = (z + j) // 2
                    read = halves[(z + j) % 2][:, i:i + ho, a:a + wo // 2]                # (N, Ho, Wo/2)
                    into[:, :, z] = read.reshape(n, ho // 2, 2, wo // 2).transpose(0, 2, 1, 3)
        cols_t[k * k:] = 1
        return cols_t

    def forward(self, x, pooled=False):
        """x: (N, C, H, W) -> (N, C_out, Ho, Wo), an NCHW view of channels-last memory; pooled (where the stride
        is 1 and Ho and Wo are even): channels-last in pooling order, (N, 2, 2, Ho/2, Wo/2, C_out)."""
        xp, p, W = self.xp, self.padding, self.params["W"]
        n, c, h, w = self.x_shape = x.shape
        self.hw = ho, wo = [(s + 2 * p - self.k) // self.stride + 1 for s in (h, w)]
        self.pooled = pooled = pooled and self.stride == 1 and ho % 2 == 0 == wo % 2
        xt = channels_last(x)                                                    # (N, H, W, C)
        x_pad = self.buffer("padded", (n, h + 2 * p, w + 2 * p, c), x.dtype, xp.zeros) if p else xt  # border stays 0
        w_t = self.matrix(W).T                                                   # (k*k*C, C_out)
        if "b" in self.params:
            w_t = xp.concatenate([w_t, self.params["b"][None]])                 # the bias, as one more row
        out = xp.empty((n, *grid(self.hw, pooled), len(W)), x.dtype)
        per_image = ho * wo * (len(w_t) + len(W)) * x.itemsize
        for s in blocks(n, per_image, xp):
            if p:
                x_pad[s, p:p + h, p:p + w] = xt[s]
            if c > 1:
                rows = self.patches("patches", x_pad[s], self.stride, self.hw, "b" in self.params, pooled)
                xp.matmul(rows, w_t, out=out[s].reshape(-1, len(W)))
        if c == 1:  # (one product: the transposed matrix is built for the whole batch and kept)
            xp.matmul(self.by_offset(x_pad[..., 0]).T, w_t, out=out.reshape(-1, len(W)))
        self.x_pad = x_pad
        return out if pooled else nchw(out)

    def backward(self, dout, need_dx=True):
        """dout: shaped as the forward's output -> dx: (N, C, H, W); dW and db assigned. need_dx=False skips dx."""
        xp, W, p, k, st = self.xp, self.params["W"], self.padding, self.k, self.stride
        (n, c, h, w), c_out, (ho, wo) = self.x_shape, len(W), self.hw
        d4 = dout if self.pooled else channels_last(dout)                       # channels-last
        kept = self.kept["by offset"].T if c == 1 else None
        sums = 0  # dW and db (its last row) as patches.T @ dout: x's patches, kept or built again block by block
        for s in blocks(n, ho * wo * (k * k * c + c_out) * dout.itemsize, xp):
            rows = kept[s.start * ho * wo:s.stop * ho * wo] if c == 1 else \
                self.patches("patches", self.x_pad[s], st, self.hw, "b" in self.params, self.pooled)
            sums = sums + rows.T @ d4[s].reshape(-1, c_out)
        self.grads["W"][...] = self.unmatrix(sums[:k * k * c].T)
        if "b" in self.grads:
            self.grads["b"][...] = sums[k * k * c]
        if not need_dx:
            return None
        # dx[y, x] = the sum over (i, j) of spread[y + p + i, x + p + j] @ turned[i, j], turned[i, j] = W[:, :, k-1-i,
        # k-1-j]: spread is dout spread out by the stride and padded by k - 1, in a buffer whose zeros stay
        spread_hw = [max(p + s + k - 1, (o - 1) * st + 2 * k - 1) for s, o in ((h, ho), (w, wo))]
        spread = self.buffer("spread", (n, *spread_hw, c_out), dout.dtype, xp.zeros)
        turned = W[:, :, ::-1, ::-1].transpose(2, 3, 0, 1).reshape(k * k * c_out, c)  # rows (i, j, C_out)
        dx = xp.empty((n, h, w, c), dout.dtype)
        for s in blocks(n, h * w * (k * k * c_out + c) * dout.itemsize, xp):
            window_view(xp, spread[s, k - 1:, k - 1:], 1, st, self.hw, self.pooled)[..., 0, 0, :] = d4[s]
            rows = self.patches("dout patches", spread[s, p:, p:], 1, (h, w), False)  # a row per input pixel
            xp.matmul(rows, turned, out=dx[s].reshape(-1, c))
        return nchw(dx)
