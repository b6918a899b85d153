"""Batch normalization, written out, as torch's nn.BatchNorm1d and nn.BatchNorm2d compute it.

Training: normalize with the batch's mean and biased variance, then scale by gamma and shift by beta; the
running statistics move towards the batch's by `momentum`, the variance's with the unbiased estimate, as
torch does. Evaluation: normalize with the running statistics.

Both kinds work on a 2-D view whose columns cycle through the channels: (N, C) for BatchNorm1d, and for
BatchNorm2d (N*H, W*C), which is a view when the input is channels-last in memory, as Conv2d's output is.
Its rows are W pixels long rather than one: NumPy pays a fixed cost per row of an elementwise operation,
which for rows of 32 channels doubled the layer's time; the per-channel vectors are tiled W times to match.
"""
import numpy as np

from numpy_nn.layers import blocks


class BatchNorm1d:
    """(N, C) -> (N, C), statistics over N for each of the C features."""

    def __init__(self, channels, momentum=0.1, eps=1e-5, dtype=np.float32, xp=np):
        self.xp, self.momentum, self.eps, self.training = xp, momentum, eps, True
        self.params = {"gamma": xp.ones(channels, dtype), "beta": xp.zeros(channels, dtype)}
        self.grads = {name: xp.zeros_like(p) for name, p in self.params.items()}
        self.running_mean, self.running_var = xp.zeros(channels, dtype), xp.ones(channels, dtype)
        self.num_batches_tracked = np.zeros((), np.int64)  # torch keeps the count; it travels with the weights
        self.ones = None  # reused vector of ones for column sums

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
        if self.ones is None or len(self.ones) < len(a) or self.ones.dtype != a.dtype:
            self.ones = self.xp.ones(len(a), a.dtype)
        return self.ones[:len(a)] @ a

    def tiled(self, v, a):
        """(C,) -> (r*C,): a per-channel vector laid out as a row of a."""
        return self.xp.tile(v, a.shape[1] // len(v))

    def forward(self, x):
        xp, rows = self.xp, self.to_rows(x)                     # (M/r, r*C)
        m = rows.size // len(self.running_mean)                 # values per channel
        mean = self.per_channel(self.column_sums(rows)) / m if self.training else self.running_mean
        mean_t, self.centered, squares = self.tiled(mean, rows), xp.empty_like(rows), 0
        for s in blocks(rows):  # block by block: each block still in cache for the pass after
            c = xp.subtract(rows[s], mean_t, out=self.centered[s])
            if self.training:
                squares = squares + xp.einsum("ij,ij->j", c, c)
        if self.training:
            var = self.per_channel(squares) / m
            self.running_mean *= 1 - self.momentum
            self.running_mean += self.momentum * mean
            self.running_var *= 1 - self.momentum
            self.running_var += self.momentum * var * (m / max(m - 1, 1))  # the unbiased one is remembered
            self.num_batches_tracked += 1
        else:
            var = self.running_var
        self.inv_std = 1 / xp.sqrt(var + self.eps)               # (C,)
        self.scale = self.params["gamma"] * self.inv_std         # out = centered * scale + beta = gamma * xhat + beta
        scale_t, beta_t, out = self.tiled(self.scale, rows), self.tiled(self.params["beta"], rows), xp.empty_like(rows)
        for s in blocks(rows):
            xp.multiply(self.centered[s], scale_t, out=out[s])
            out[s] += beta_t
        self.used_batch = self.training
        return self.from_rows(out, x.shape)

    def backward(self, dout):
        """dx, with dgamma and dbeta assigned. In training mode the batch mean and variance depend on every
        value, which gives the two correction terms; in evaluation mode the statistics are constants.
        With xhat = centered * inv_std: dgamma = sum(dout * xhat), dbeta = sum(dout),
        dx = gamma * inv_std * (dout - dbeta / M - xhat * dgamma / M) (the last two in training only)."""
        xp, d = self.xp, self.to_rows(dout)                      # (M/r, r*C)
        m = d.size // len(self.running_mean)
        dgamma, dbeta, products, sums = self.grads["gamma"], self.grads["beta"], 0, 0
        for s in blocks(d):
            products = products + xp.einsum("ij,ij->j", d[s], self.centered[s])
            sums = sums + self.column_sums(d[s])
        dgamma[...] = self.per_channel(products) * self.inv_std
        dbeta[...] = self.per_channel(sums)
        scale_t, dx = self.tiled(self.scale, d), xp.empty_like(d)
        if self.used_batch:
            xhat_t = self.tiled(self.scale * self.inv_std * dgamma / m, d)
            shift_t = self.tiled(self.scale * dbeta / m, d)
        for s in blocks(d):
            xp.multiply(d[s], scale_t, out=dx[s])
            if self.used_batch:
                dx[s] -= self.centered[s] * xhat_t
                dx[s] -= shift_t
        return self.from_rows(dx, dout.shape)

    def torch_layout(self, t):
        return {"weight": t["gamma"], "bias": t["beta"]}

    def state_dict(self):
        return {**self.torch_layout(self.params), "running_mean": self.running_mean,
                "running_var": self.running_var, "num_batches_tracked": self.num_batches_tracked}

    def load_state_dict(self, d):
        xp = self.xp
        self.params["gamma"][...] = xp.asarray(d["weight"])
        self.params["beta"][...] = xp.asarray(d["bias"])
        self.running_mean[...] = xp.asarray(d["running_mean"])
        self.running_var[...] = xp.asarray(d["running_var"])
        self.num_batches_tracked[...] = np.asarray(d["num_batches_tracked"])


class BatchNorm2d(BatchNorm1d):
    """(N, C, H, W) -> (N, C, H, W), statistics over N, H and W for each of the C channels."""

    def to_rows(self, x):
        n, c, h, w = x.shape
        return x.transpose(0, 2, 3, 1).reshape(n * h, w * c)  # (N*H, W*C); a copy only if x is NCHW in memory

    def from_rows(self, rows, shape):
        n, c, h, w = shape
        return rows.reshape(n, h, w, c).transpose(0, 3, 1, 2)
