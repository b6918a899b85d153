"""numpy_nn/recurrent.py's Recurrent, computed faster: the same numbers (tests/test_recurrent.py proves them equal to
the reference layer, float64 to 1e-12), the same shapes in and out. Its tricks, as cuDNN's:

- The input side of every step in one matrix product: x_t W_ih^T + b_ih does not depend on the state, so all T steps'
  are one (N*T, I) @ (I, gates*H) product before the loop; only h_{t-1} W_hh^T stays in it.
- The weights' gradients after the loop, in one product each: every step's gate gradients are kept in one array
  (T, N, gates*H), so dW_ih is one (gates*H, T*N) @ (T*N, I) product, dW_hh another against the states h_{t-1},
  and dx one more, instead of three per step.
- The states and gates of every step in preallocated arrays, written in place, read back by the backward, time-major
  ((T, N, features), as cuDNN keeps them) so that each step reads and writes contiguous rows.

With 28 pixels a step the input side is a small share of the work; the loop's state products and a dozen elementwise
passes per step dominate, which both layers run alike (ANALYSIS.md's levers table has what each form measures).
"""
import numpy as np

from numpy_nn import recurrent
from numpy_nn.recurrent import sigmoid


class Recurrent(recurrent.Recurrent):
    """numpy_nn.recurrent.Recurrent, its products over all steps at once where the recurrence allows."""

    def forward(self, x):
        xp, (n, steps), H = self.xp, x.shape[:2], self.hidden
        self.kept, inputs = [], xp.ascontiguousarray(x.transpose(1, 0, 2))  # (T, N, I): time-major, as cuDNN keeps it
        for k in range(self.layers):
            W_ih, W_hh, b_ih, b_hh = self.weights(k)
            a_x = (inputs.reshape(steps * n, -1) @ W_ih.T + b_ih).reshape(steps, n, -1)  # (T, N, gates*H), at once
            h = xp.zeros((steps + 1, n, H), x.dtype)              # h[t] is the state before step t
            c = xp.zeros((steps + 1, n, H), x.dtype) if self.cell == "lstm" else None
            gates, extra = xp.empty_like(a_x), xp.empty((steps, n, H), x.dtype) if self.cell == "gru" else None
            for t in range(steps):
                a_h = h[t] @ W_hh.T + b_hh
                if self.cell == "rnn":
                    xp.tanh(a_x[t] + a_h, out=h[t + 1])
                    gates[t] = h[t + 1]
                elif self.cell == "lstm":
                    g = gates[t]
                    xp.add(a_x[t], a_h, out=g)
                    g[:, :2 * H] = sigmoid(g[:, :2 * H])           # i, f
                    xp.tanh(g[:, 2 * H:3 * H], out=g[:, 2 * H:3 * H])  # g
                    g[:, 3 * H:] = sigmoid(g[:, 3 * H:])           # o
                    c[t + 1] = g[:, H:2 * H] * c[t] + g[:, :H] * g[:, 2 * H:3 * H]
                    h[t + 1] = g[:, 3 * H:] * xp.tanh(c[t + 1])
                else:
                    g = gates[t]
                    g[:, :2 * H] = sigmoid(a_x[t, :, :2 * H] + a_h[:, :2 * H])  # r, z
                    extra[t] = a_h[:, 2 * H:]                       # W_hn h + b_hn, which r multiplies
                    xp.tanh(a_x[t, :, 2 * H:] + g[:, :H] * extra[t], out=g[:, 2 * H:])  # n
                    z = g[:, H:2 * H]
                    h[t + 1] = (1 - z) * g[:, 2 * H:] + z * h[t]
            self.kept.append((inputs, h, c, gates, extra))
            inputs = h[1:]                                        # (T, N, H): the next layer's input
        self.x_shape = x.shape
        return h[-1]

    def backward(self, dh_last, need_dx=True):
        xp, (n, steps), H = self.xp, self.x_shape[:2], self.hidden
        d_outputs = None
        for k in reversed(range(self.layers)):
            W_ih, W_hh = self.weights(k)[:2]
            inputs, h, c, gates, extra = self.kept[k]
            da_x, da_h = xp.empty_like(gates), xp.empty_like(gates)
            dh = dh_last.copy() if k == self.layers - 1 else xp.zeros((n, H), dh_last.dtype)
            dc = xp.zeros((n, H), dh_last.dtype)
            for t in reversed(range(steps)):
                if d_outputs is not None:
                    dh += d_outputs[t]
                g = gates[t]
                if self.cell == "rnn":
                    xp.multiply(dh, 1 - g ** 2, out=da_x[t])
                    da_h[t] = da_x[t]
                    dh = da_h[t] @ W_hh
                elif self.cell == "lstm":
                    i, f, gg, o = g[:, :H], g[:, H:2 * H], g[:, 2 * H:3 * H], g[:, 3 * H:]
                    tanh_c = xp.tanh(c[t + 1])
                    dc += dh * o * (1 - tanh_c ** 2)
                    d = da_x[t]
                    d[:, :H], d[:, H:2 * H] = dc * gg * i * (1 - i), dc * c[t] * f * (1 - f)
                    d[:, 2 * H:3 * H], d[:, 3 * H:] = dc * i * (1 - gg ** 2), dh * tanh_c * o * (1 - o)
                    da_h[t] = d
                    dc *= f
                    dh = d @ W_hh
                else:
                    r, z, new = g[:, :H], g[:, H:2 * H], g[:, 2 * H:]
                    dn = dh * (1 - z) * (1 - new ** 2)
                    d, e = da_x[t], da_h[t]
                    d[:, :H] = e[:, :H] = dn * extra[t] * r * (1 - r)
                    d[:, H:2 * H] = e[:, H:2 * H] = dh * (h[t] - new) * z * (1 - z)
                    d[:, 2 * H:], e[:, 2 * H:] = dn, dn * r
                    dh = e @ W_hh + dh * z
            rows_x, rows_h = da_x.reshape(steps * n, -1), da_h.reshape(steps * n, -1)
            self.grads[f"weight_ih_l{k}"][...] = rows_x.T @ inputs.reshape(steps * n, -1)   # every step's, at once
            self.grads[f"weight_hh_l{k}"][...] = rows_h.T @ h[:-1].reshape(steps * n, -1)
            self.grads[f"bias_ih_l{k}"][...] = rows_x.sum(axis=0)
            self.grads[f"bias_hh_l{k}"][...] = rows_h.sum(axis=0)
            d_outputs = (rows_x @ W_ih).reshape(steps, n, -1) if (k > 0 or need_dx) else None
        return d_outputs.transpose(1, 0, 2) if need_dx else None
