"""Batch normalization as the textbook derives it, computing what torch's nn.BatchNorm1d and nn.BatchNorm2d do.

Training: each channel is normalized with the batch's mean and biased variance, xhat = (x - mean) / sqrt(var
+ eps), then scaled and shifted, out = gamma * xhat + beta; the running statistics move towards the batch's by
`momentum`, the variance's with the unbiased estimate (m / (m - 1) times the biased one), as torch does.
Evaluation: the running statistics normalize instead, as constants.

These are the reference layers, written to be read. numpy_nn/fast_norm.py computes the same numbers faster
(tiled rows, cache blocks) and is tested equal to them; --kernels picks one.
"""
import numpy as np


class BatchNorm1d:
    """(N, C) -> (N, C), statistics over N for each of the C features."""
    axes = (0,)  # the axes one channel's statistics run over

    def __init__(self, channels, momentum=0.1, eps=1e-5, dtype=np.float32, xp=np):
        self.xp, self.momentum, self.eps, self.training = xp, momentum, eps, True
        self.params = {"gamma": xp.ones(channels, dtype), "beta": xp.zeros(channels, dtype)}
        self.grads = {name: xp.zeros_like(p) for name, p in self.params.items()}
        self.running_mean, self.running_var = xp.zeros(channels, dtype), xp.ones(channels, dtype)
        self.num_batches_tracked = np.zeros((), np.int64)  # torch keeps the count; it travels with the weights

    def channel(self, v):
        """A per-channel vector (C,), shaped to broadcast against the input: (C,) or (1, C, 1, 1)."""
        return v.reshape([-1 if axis == 1 else 1 for axis in range(len(self.axes) + 1)])

    def forward(self, x):
        if self.training:
            mean, var = x.mean(axis=self.axes), x.var(axis=self.axes)  # (C,); var is the biased one
            m = x.size // len(mean)                                     # values per channel
            self.running_mean[...] = (1 - self.momentum) * self.running_mean + self.momentum * mean
            self.running_var[...] = (1 - self.momentum) * self.running_var + self.momentum * var * m / max(m - 1, 1)
            self.num_batches_tracked += 1
        else:
            mean, var = self.running_mean, self.running_var
        self.inv_std = 1 / self.xp.sqrt(var + self.eps)                 # (C,)
        self.xhat = (x - self.channel(mean)) * self.channel(self.inv_std)
        self.used_batch = self.training
        return self.channel(self.params["gamma"]) * self.xhat + self.channel(self.params["beta"])

    def backward(self, dout):
        """dx, with dgamma and dbeta assigned; m values per channel, sums over them:
            dbeta = sum(dout),  dgamma = sum(dout * xhat)
            dx = gamma * inv_std * (dout - dbeta / m - xhat * dgamma / m)   in training
            dx = gamma * inv_std * dout                                     in evaluation
        The two correction terms are the paths through the batch mean and variance, which depend on every value;
        in evaluation the running statistics are constants and the layer is an affine map."""
        dbeta, dgamma = dout.sum(axis=self.axes), (dout * self.xhat).sum(axis=self.axes)  # (C,)
        self.grads["beta"][...], self.grads["gamma"][...] = dbeta, dgamma
        if self.used_batch:
            m = dout.size // len(dbeta)
            dout = dout - self.channel(dbeta) / m - self.xhat * self.channel(dgamma) / m
        return self.channel(self.params["gamma"] * self.inv_std) * dout

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
    axes = (0, 2, 3)
