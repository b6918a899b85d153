"""The fast kernels for numpy_nn/norm.py: the same BatchNorm1d and BatchNorm2d, the same numbers
(tests/test_kernels.py proves them equal to the reference layers, float64 to 1e-12), computed with the tricks
that made the CNN fast. Each trick, and what it bought as measured on 2 cores:

- Tiled rows: both kinds work on a 2-D view whose columns cycle through the channels: (N, C) for
  BatchNorm1d, and for BatchNorm2d (N*H, W*C), a view of Conv2d's channels-last output. NumPy pays a fixed
  cost per row of an elementwise operation; rows W pixels long rather than one halved the layer's time on
  32-channel maps. The per-channel vectors are tiled W times to match. A convolution's output in pooling
  order (fast_conv.py) comes as rows of a whole slab, (N*4, H/2*W/2*C): the cnn preset's conv1_bn forward
  4.71 -> 4.48 ms per step (rows of W/2 pixels took 4.83 against 4.32 in the usual order).
- Column sums as a product with a vector of ones (BLAS): 10x NumPy's reduction here.
- Blocks on the pool (numpy_nn/threads.py): each pass goes block by block, the blocks shared out to the
  threads, the sums (mean, variance, dgamma, dbeta) gathered per block in a fixed order.
- Fewer passes: out = centered * (gamma * inv_std) + beta, never xhat itself; backward folds the two
  correction terms into per-channel vectors before it touches the whole map.
- Before a 2 x 2 pooling, the scale and shift (and the backward's sums) left to the pooling, on its maxima
  (fast_pool.defer): the norm's forward is its statistics and centered values, its backward one pass.
"""
from numpy_nn import norm
from numpy_nn.threads import blocks, parallel, total


class BatchNorm1d(norm.BatchNorm1d):
    """numpy_nn.norm.BatchNorm1d on (N, C) rows, block by block."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ones = None  # reused vector of ones for column sums
        self.deferred = False  # set by fast_pool.defer: a 2 x 2 pooling next applies the scale and shift
        self.shifted_later = False  # this step's forward left them to the pooling (every scale positive)
        self.handed = None  # (sum of dout * centered, sum of dout) per channel, from that pooling's backward

    def blocks(self, rows):
        """Blocks of rows, each a pass's working set of about threads.BLOCK_BYTES: in, out and one more."""
        return blocks(len(rows), 3 * rows[0].nbytes, self.xp)

    def to_rows(self, x):
        """x as rows of channels: (N, C)."""
        return x

    def from_rows(self, rows, shape):
        return rows

    def per_channel(self, row):
        """(r*C,) -> (C,): a row's entries summed channel by channel."""
        return row.reshape(-1, len(self.running_mean)).sum(axis=0)

    def column_sums(self, a):
        """(M, r*C) -> (r*C,), by one matrix-vector product (10x numpy's reduction here)."""
        ones = self.ones  # (one read: another worker may replace it meanwhile)
        if ones is None or len(ones) < len(a) or ones.dtype != a.dtype:
            ones = self.ones = self.xp.ones(len(a), a.dtype)
        return ones[:len(a)] @ a

    def across(self, sums, m):
        """Per-channel sums and the values per channel over this process's images -> over the whole batch: the
        same here; a replica process (numpy_nn/replicas.py) adds the other processes' to them."""
        return sums, m

    def tiled(self, v, a):
        """(C,) -> (r*C,): a per-channel vector laid out as a row of a."""
        return self.xp.tile(v, a.shape[1] // len(v))

    def forward(self, x):
        xp, rows = self.xp, self.to_rows(x)                     # (M/r, r*C)
        m = rows.size // len(self.running_mean)                 # values per channel
        if self.training:
            sums = self.per_channel(total(lambda worker, s: self.column_sums(rows[s]), self.blocks(rows)))
            sums, m = self.across(sums, m)
            mean = sums / m
        else:
            mean = self.running_mean
        mean_t, self.centered = self.tiled(mean, rows), xp.empty_like(rows)

        def center(worker, s):  # block by block: each block still in cache for the pass after
            c = xp.subtract(rows[s], mean_t, out=self.centered[s])
            return xp.einsum("ij,ij->j", c, c) if self.training else 0
        squares = total(center, self.blocks(rows))
        if self.training:
            var = self.across(self.per_channel(squares), m)[0] / m
            self.running_mean *= 1 - self.momentum
            self.running_mean += self.momentum * mean
            self.running_var *= 1 - self.momentum
            self.running_var += self.momentum * var * (m / max(m - 1, 1))  # the unbiased one is remembered
            self.num_batches_tracked += 1
        else:
            var = self.running_var
        self.inv_std = 1 / xp.sqrt(var + self.eps)               # (C,)
        self.scale = self.params["gamma"] * self.inv_std         # out = centered * scale + beta = gamma * xhat + beta
        self.used_batch, self.handed = self.training, None
        self.shifted_later = self.deferred and x.ndim == 6 and bool(xp.all(self.scale > 0))
        if self.shifted_later:  # the pooling next scales and shifts its maxima instead (fast_pool.defer)
            return self.from_rows(self.centered, x.shape)
        scale_t, beta_t, out = self.tiled(self.scale, rows), self.tiled(self.params["beta"], rows), xp.empty_like(rows)

        def scale_shift(worker, s):
            xp.multiply(self.centered[s], scale_t, out=out[s])
            out[s] += beta_t
        parallel(scale_shift, self.blocks(rows))
        return self.from_rows(out, x.shape)

    def backward(self, dout):
        """dx, with dgamma and dbeta assigned. In training mode the batch mean and variance depend on every
        value, which gives the two correction terms; in evaluation mode the statistics are constants.
        With xhat = centered * inv_std: dgamma = sum(dout * xhat), dbeta = sum(dout),
        dx = gamma * inv_std * (dout - dbeta / M - xhat * dgamma / M) (the last two in training only)."""
        xp, d = self.xp, self.to_rows(dout)                      # (M/r, r*C)
        m = d.size // len(self.running_mean)
        dgamma, dbeta = self.grads["gamma"], self.grads["beta"]
        if self.handed is not None:  # the pooling summed them over its maxima, where all of dout is (defer)
            products, sums = self.handed
        else:
            products, sums = (self.per_channel(v) for v in total(
                lambda worker, s: (xp.einsum("ij,ij->j", d[s], self.centered[s]), self.column_sums(d[s])), self.blocks(d)))
        dgamma[...] = products * self.inv_std                   # (this process's share, in a replica)
        dbeta[...] = sums
        scale_t, dx = self.tiled(self.scale, d), xp.empty_like(d)
        if self.used_batch:
            (products, sums), m = self.across(xp.stack([products, sums]), m)  # (over the whole batch)
            xhat_t = self.tiled(self.scale * self.inv_std * (products * self.inv_std) / m, d)
            shift_t = self.tiled(self.scale * sums / m, d)

        def gradient(worker, s):
            xp.multiply(d[s], scale_t, out=dx[s])
            if self.used_batch:
                dx[s] -= self.centered[s] * xhat_t
                dx[s] -= shift_t
        parallel(gradient, self.blocks(d))
        return self.from_rows(dx, dout.shape)


class BatchNorm2d(BatchNorm1d):
    """numpy_nn.norm.BatchNorm2d on (N*H, W*C) rows, block by block."""

    def to_rows(self, x):
        if x.ndim == 6:  # a convolution's output in pooling order (fast_conv.window_view) on its way to the pooling:
            n, _, _, h, w, c = x.shape  # channels last too, the pixels in another order; (N*4, H/2*W/2*C)
            return x.reshape(n * 4, h * w * c)
        n, c, h, w = x.shape
        return x.transpose(0, 2, 3, 1).reshape(n * h, w * c)  # (N*H, W*C); a copy only if x is NCHW in memory

    def from_rows(self, rows, shape):
        if len(shape) == 6:
            return rows.reshape(shape)
        n, c, h, w = shape
        return rows.reshape(n, h, w, c).transpose(0, 3, 1, 2)
