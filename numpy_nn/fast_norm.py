"""numpy_nn/norm.py's BatchNorm1d and BatchNorm2d, computed faster: the same numbers (tests/test_kernels.py proves
them equal to the reference layers, float64 to 1e-12), the same shapes in and out. Its tricks:

- Tiled rows: both work on a 2-D view whose columns cycle through the channels, (N, C), or for BatchNorm2d
  (N*H, W*C), a view of a convolution's channels-last output; the per-channel vectors are tiled W times to match.
  NumPy pays a fixed cost per row of an elementwise operation, and a row of W pixels holds W times as many numbers.
- Cache blocks (fast_conv.blocks): the passes that follow one another (centre, then square and sum; the backward's
  two corrections) go block by block, each block still in cache for the next pass.
- Fewer passes: out = centered * (gamma * inv_std) + beta, never xhat itself; the backward folds its two correction
  terms into per-channel vectors before it touches the whole map.
- group: the processes that share each batch (numpy_nn/replicas.py), over which the statistics and the backward's
  sums are added, so that every process normalizes with the whole batch's, as torch's SyncBatchNorm does.
"""
from numpy_nn import norm
from numpy_nn.fast_conv import blocks, channels_last


class BatchNorm1d(norm.BatchNorm1d):
    """numpy_nn.norm.BatchNorm1d on (N, C) rows."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.group = None  # numpy_nn/replicas.py's Group while this layer is one replica's: its sums are added there

    def to_rows(self, x):
        """x as rows whose columns cycle through the channels: (N, C)."""
        return x

    def from_rows(self, rows, shape):
        return rows

    def forward(self, x):
        return self.from_rows(self.normalize(self.to_rows(x)), x.shape)

    def backward(self, dout):
        return self.from_rows(self.gradient(self.to_rows(dout)), dout.shape)

    def channels(self, row):
        """(r*C,) -> (C,): a row of per-column sums, summed channel by channel."""
        return row.reshape(-1, len(self.running_mean)).sum(axis=0)

    def whole_batch(self, sums, m):
        """Per-channel sums and the values per channel over this process's rows -> over the whole batch."""
        return self.group.sum(sums, m) if self.group is not None and self.group.sharing else (sums, m)

    def tiled(self, v, rows):
        """(C,) -> (r*C,): a per-channel vector laid out as a row of rows."""
        return self.xp.tile(v, rows.shape[1] // len(v))

    def normalize(self, rows, shift=True):
        """rows (M, r*C) -> out, the same shape. shift=False: the centered values, the scale (self.scale) and
        shift (beta) left to the caller (fast_block.ConvBlock, which applies them after its pooling)."""
        xp, m = self.xp, rows.size // len(self.running_mean)     # values per channel
        sums, m = self.whole_batch(self.channels(rows.sum(axis=0)), m) if self.training else (None, m)
        mean = sums / m if self.training else self.running_mean
        mean_t, self.centered, squares = self.tiled(mean, rows), xp.empty_like(rows), 0
        for s in blocks(len(rows), 2 * rows[0].nbytes, xp):
            c = xp.subtract(rows[s], mean_t, out=self.centered[s])
            squares = squares + (xp.einsum("ij,ij->j", c, c) if self.training else 0)
        self.fit(mean, self.whole_batch(self.channels(squares), m)[0] / m if self.training else self.running_var, m)
        if not shift:
            return self.centered
        out = self.centered * self.tiled(self.scale, rows)
        out += self.tiled(self.params["beta"], rows)
        return out

    def fit(self, mean, var, m):
        """The per-channel mean and biased variance to normalize with -> the mean; inv_std and scale set. In training
        the batch's, over m values each, towards which the running statistics move; in evaluation the running ones."""
        if self.training:
            self.running_mean *= 1 - self.momentum
            self.running_mean += self.momentum * mean
            self.running_var *= 1 - self.momentum
            self.running_var += self.momentum * var * (m / max(m - 1, 1))  # the unbiased one is remembered
            self.num_batches_tracked += 1
        self.inv_std = 1 / self.xp.sqrt(var + self.eps)          # (C,)
        self.scale = self.params["gamma"] * self.inv_std         # out = centered * scale + beta = gamma * xhat + beta
        self.used_batch = self.training
        return mean

    def sums(self, d, centered):
        """Rows d and centered (M, r*C) -> sum(d * centered) and sum(d) per channel: what coefficients() takes."""
        return self.channels(self.xp.einsum("ij,ij->j", d, centered)), self.channels(d.sum(axis=0))

    def coefficients(self, products, sums, m):
        """sum(d * centered) and sum(d) per channel over this process's m values per channel -> (a, b), dx =
        d * scale - centered * a - b (a and b None in evaluation); dgamma and dbeta assigned. With xhat = centered *
        inv_std: dgamma = sum(d * xhat), dbeta = sum(d), dx = gamma * inv_std * (d - dbeta / m - xhat * dgamma / m)
        (the last two terms in training only, where the batch's statistics depend on every value)."""
        self.grads["gamma"][...] = products * self.inv_std       # (this process's share, in a replica)
        self.grads["beta"][...] = sums
        if not self.used_batch:
            return None, None
        both, m = self.whole_batch(self.xp.concatenate([products, sums]), m)
        products, sums = both[:len(sums)], both[len(sums):]
        return self.scale * self.inv_std ** 2 * products / m, self.scale * sums / m

    def gradient(self, d, sums=None, centered=None):
        """d (M, r*C) -> dx, dgamma and dbeta assigned (coefficients()). sums: (sum(d * centered), sum(d)) per channel
        and centered: where the caller has them (fast_block.ConvBlock: its pooling's maxima, where all of d is)."""
        xp, m, centered = self.xp, d.size // len(self.running_mean), self.centered if centered is None else centered
        a, b = self.coefficients(*(sums if sums is not None else self.sums(d, centered)), m)
        scale_t, dx = self.tiled(self.scale, d), xp.empty_like(d)
        a_t, b_t = (None, None) if a is None else (self.tiled(a, d), self.tiled(b, d))
        for s in blocks(len(d), 3 * d[0].nbytes, xp):
            xp.multiply(d[s], scale_t, out=dx[s])
            if a is not None:
                dx[s] -= centered[s] * a_t
                dx[s] -= b_t
        return dx


class BatchNorm2d(BatchNorm1d):
    """numpy_nn.norm.BatchNorm2d on (N*H, W*C) rows: the (N, H, W, C) memory the fast convolution hands on."""

    def to_rows(self, x):
        n, c, h, w = x.shape
        return channels_last(x).reshape(n * h, w * c)  # a copy only if x is NCHW in memory

    def from_rows(self, rows, shape):
        n, c, h, w = shape
        return rows.reshape(n, h, w, c).transpose(0, 3, 1, 2)
