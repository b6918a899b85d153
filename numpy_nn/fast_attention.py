"""A fast self-attention beside numpy_nn/attention.py's reference: the same contract (x (N, T, d) in and out, the
same params and grads under torch's names), the same math, in fewer passes over memory:

- the projections as one 2-D matrix product over all N * T tokens (NumPy runs a 3-D @ 2-D product as N products);
- q, k and v as strided views of that product, and dq, dk, dv written into one (N, T, 3, heads, d_head) buffer,
  so that neither the heads' split nor their merge copies;
- the softmax and its backward in place on the scores, the sum over keys of dA * A as one einsum (no temporary).

Proven equal to the reference in tests/test_attention.py (float64 1e-12, float32 to its rounding); --kernels picks."""
import math

from numpy_nn import attention


class SelfAttention(attention.SelfAttention):
    def forward(self, x):
        p, xp, (n, t, d), heads = self.params, self.xp, x.shape, self.heads
        qkv = x.reshape(n * t, d) @ p["in_proj_weight"].T
        qkv += p["in_proj_bias"]
        q, k, v = qkv.reshape(n, t, 3, heads, d // heads).transpose(2, 0, 3, 1, 4)  # each (N, heads, T, d_head)
        A = q @ k.transpose(0, 1, 3, 2)
        A *= 1 / math.sqrt(d // heads)
        A -= A.max(axis=-1, keepdims=True)
        xp.exp(A, out=A)
        A /= A.sum(axis=-1, keepdims=True)
        o = (A @ v).transpose(0, 2, 1, 3).reshape(n * t, d)
        self.x, self.q, self.k, self.v, self.A, self.o = x, q, k, v, A, o
        out = o @ p["out_proj.weight"].T
        out += p["out_proj.bias"]
        return out.reshape(n, t, d)

    def backward(self, dout, need_dx=True):
        p, g, xp, (n, t, d), heads = self.params, self.grads, self.xp, dout.shape, self.heads
        rows = dout.reshape(n * t, d)
        g["out_proj.weight"][...] = rows.T @ self.o
        g["out_proj.bias"][...] = rows.sum(axis=0)
        do = (rows @ p["out_proj.weight"]).reshape(n, t, heads, d // heads).transpose(0, 2, 1, 3)
        dqkv = xp.empty((n, t, 3, heads, d // heads), dout.dtype)
        dq, dk, dv = dqkv.transpose(2, 0, 3, 1, 4)
        dv[...] = self.A.transpose(0, 1, 3, 2) @ do
        dscores = do @ self.v.transpose(0, 1, 3, 2)  # dA, then in place: A * (dA - sum(dA * A)) / sqrt(d_head)
        dscores -= xp.einsum("...i,...i->...", dscores, self.A)[..., None]
        dscores *= self.A
        dscores *= 1 / math.sqrt(d // heads)
        dq[...] = dscores @ self.k
        dk[...] = dscores.transpose(0, 1, 3, 2) @ self.q
        dqkv = dqkv.reshape(n * t, 3 * d)
        g["in_proj_weight"][...] = dqkv.T @ self.x.reshape(n * t, d)
        g["in_proj_bias"][...] = dqkv.sum(axis=0)
        return (dqkv @ p["in_proj_weight"]).reshape(n, t, d) if need_dx else None
