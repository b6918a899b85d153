"""The fast kernels for numpy_nn/layers.py that a CNN uses: the same Linear and ReLU, the same numbers
(tests/test_kernels.py), shared out over the pool of threads (numpy_nn/threads.py). A CNN keeps BLAS on one
thread, so that OpenBLAS's idle threads do not spin on the pool's cores; its dense layers' products would
then run on one core, and its ReLUs' passes do anyway. Here each worker takes its share of the batch:
cnn-fast, batch 256 (Intel Xeon, 2 cores): fc1 1.7 + 3.2 -> 1.1 + 2.1 ms, the two ReLUs 2.8 -> 2.2 ms.
An MLP keeps numpy_nn/layers.py: there BLAS has the threads and splits each product itself.
"""
import numpy as np

from numpy_nn import layers, threads
from numpy_nn.layers import array_module
from numpy_nn.threads import blocks, parallel, total

SHARED = 1 << 16  # weights from which a product is shared out: fc2's 256 x 10 is done before the pool wakes


class Linear(layers.Linear):
    """numpy_nn.layers.Linear, the batch shared out: each worker multiplies its rows; dW and db are the sums
    of the workers' shares."""

    def shares(self, n):
        return threads.split(n, threads.WORKERS if self.params["W"].size >= SHARED and self.xp is np else 1)

    def forward(self, x):
        xp, W = self.xp, self.params["W"]
        self.x, out = x, xp.empty((len(x), W.shape[1]), x.dtype)

        def share(worker, s):
            xp.matmul(x[s], W, out=out[s])
            if "b" in self.params:
                out[s] += self.params["b"]
        parallel(share, self.shares(len(x)))
        return out

    def backward(self, dout, need_dx=True):
        xp, W = self.xp, self.params["W"]
        dx = xp.empty_like(self.x) if need_dx else None

        def share(worker, s):
            if need_dx:
                xp.matmul(dout[s], W.T, out=dx[s])
            return self.x[s].T @ dout[s], dout[s].sum(axis=0)
        self.grads["W"][...], db = total(share, self.shares(len(dout)))
        if "b" in self.grads:
            self.grads["b"][...] = db
        return dx


class ReLU(layers.ReLU):
    """numpy_nn.layers.ReLU, block by block: its two passes (the mask, the product) shared out."""

    def forward(self, x):
        xp = array_module(x)
        self.mask, out = xp.empty_like(x, bool), xp.empty_like(x)

        def block(worker, s):
            xp.greater(x[s], 0, out=self.mask[s])
            xp.multiply(x[s], self.mask[s], out=out[s])
        parallel(block, blocks(len(x), 2 * x[0].nbytes, xp))
        return out

    def backward(self, dout):
        xp = array_module(dout)
        dx = xp.empty_like(dout)
        parallel(lambda worker, s: xp.multiply(dout[s], self.mask[s], out=dx[s]),
                 blocks(len(dout), 2 * dout[0].nbytes, xp))
        return dx


ACTIVATIONS = {**layers.ACTIVATIONS, "relu": ReLU}
