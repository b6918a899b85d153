"""Recurrent layers as the textbook derives them: a cell's step is its equations, the sequence a loop over time that
keeps what the backward needs, and backpropagation through time the same loop in reverse, each weight's gradient
summed over the steps and the state's gradient handed from step to step. Weights in torch's names, layouts and gate
order (nn.RNN, nn.LSTM and nn.GRU with batch_first), so that interchange is a copy.

    RNN   h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)
    LSTM  i, f, g, o = split(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh);  i, f, o squashed by sigmoid, g by tanh
          c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)
    GRU   r, z = sigmoid(split(x_t W_i[r,z]^T + b_i[r,z] + h_{t-1} W_h[r,z]^T + b_h[r,z]))
          n = tanh(x_t W_in^T + b_in + r * (h_{t-1} W_hn^T + b_hn)),   h_t = (1 - z) * n + z * h_{t-1}
"""
import numpy as np

GATES = {"rnn": 1, "lstm": 4, "gru": 3}  # blocks of H rows in weight_ih and weight_hh, in torch's order


def sigmoid(x):
    return 0.5 * (1 + np.tanh(0.5 * x))  # = 1 / (1 + exp(-x)), no overflow for large -x


def step(cell, x, h, c, W_ih, W_hh, b_ih, b_hh):
    """One time step: (h_t, c_t, cache) from x_t (N, I), h_{t-1} and (LSTM) c_{t-1} (N, H)."""
    a_x, a_h = x @ W_ih.T + b_ih, h @ W_hh.T + b_hh            # (N, gates*H) each
    if cell == "rnn":
        h_new = np.tanh(a_x + a_h)
        return h_new, None, (x, h, h_new)
    if cell == "lstm":
        i, f, g, o = np.split(a_x + a_h, 4, axis=1)
        i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)
        c_new = f * c + i * g
        tanh_c = np.tanh(c_new)
        return o * tanh_c, c_new, (x, h, c, i, f, g, o, tanh_c)
    (xr, xz, xn), (hr, hz, hn) = np.split(a_x, 3, axis=1), np.split(a_h, 3, axis=1)
    r, z = sigmoid(xr + hr), sigmoid(xz + hz)
    n = np.tanh(xn + r * hn)
    return (1 - z) * n + z * h, None, (x, h, r, z, n, hn)


def step_backward(cell, dh, dc, cache, W_ih, W_hh):
    """The step's backward: dh (and dc) at its outputs -> (dx_t, dh_{t-1}, dc_{t-1}, da), da the gradient at the
    gates' pre-activations, (N, gates*H) for the input side and the hidden side (they differ in the GRU's n gate)."""
    if cell == "rnn":
        x, h, h_new = cache
        da = dh * (1 - h_new ** 2)
        da_x = da_h = da
        dc_prev = None
    elif cell == "lstm":
        x, h, c, i, f, g, o, tanh_c = cache
        dc = dc + dh * o * (1 - tanh_c ** 2)                     # through h_t = o * tanh(c_t)
        da = np.concatenate([dc * g * i * (1 - i), dc * c * f * (1 - f), dc * i * (1 - g ** 2),
                             dh * tanh_c * o * (1 - o)], axis=1)  # i, f, g, o
        da_x = da_h = da
        dc_prev = dc * f
    else:
        x, h, r, z, n, hn = cache
        dn = dh * (1 - z) * (1 - n ** 2)                          # through h_t = (1 - z) * n + z * h
        dz = dh * (h - n) * z * (1 - z)
        dr = dn * hn * r * (1 - r)
        da_x = np.concatenate([dr, dz, dn], axis=1)
        da_h = np.concatenate([dr, dz, dn * r], axis=1)          # r multiplies W_hn h + b_hn, after its bias
        dc_prev = None
    dh_prev = da_h @ W_hh + (dh * z if cell == "gru" else 0)
    return da_x @ W_ih, dh_prev, dc_prev, da_x, da_h


class Sequence:
    """(N, 784) pixels -> (N, 28, 28): the image as 28 time steps of 28 pixels, its rows (step t is row t, top to
    bottom) or its columns (step t is column t, left to right)."""

    def __init__(self, steps="rows"):
        self.steps = steps

    def forward(self, x):
        x = x.reshape(len(x), 28, 28)
        return x if self.steps == "rows" else x.transpose(0, 2, 1)

    def backward(self, dout, need_dx=True):
        return (dout if self.steps == "rows" else dout.transpose(0, 2, 1)).reshape(len(dout), 784)


class Recurrent:
    """x: (N, T, I), T steps of I features -> the top layer's hidden state after the last step, (N, H); `layers`
    cells stacked, each layer's hidden states the next one's input. Starts from zero states, as torch does."""

    def __init__(self, cell, n_in, hidden, layers=1, dtype=np.float32, xp=np):
        if cell not in GATES:
            raise ValueError(f"unknown cell {cell!r}")
        self.cell, self.hidden, self.layers, self.xp = cell, hidden, layers, xp
        rows = GATES[cell] * hidden
        self.params = {}
        for k in range(layers):  # filled by load_state_dict (common/init.py draws them, for both twins)
            self.params.update({f"weight_ih_l{k}": xp.zeros((rows, n_in if k == 0 else hidden), dtype),
                                f"weight_hh_l{k}": xp.zeros((rows, hidden), dtype),
                                f"bias_ih_l{k}": xp.zeros(rows, dtype), f"bias_hh_l{k}": xp.zeros(rows, dtype)})
        self.grads = {name: xp.zeros_like(p) for name, p in self.params.items()}

    def weights(self, k):
        p = self.params
        return p[f"weight_ih_l{k}"], p[f"weight_hh_l{k}"], p[f"bias_ih_l{k}"], p[f"bias_hh_l{k}"]

    def forward(self, x):
        n, steps = x.shape[:2]
        self.caches, inputs = [], x
        for k in range(self.layers):
            h = c = self.xp.zeros((n, self.hidden), x.dtype)
            caches, outputs = [], []
            for t in range(steps):
                h, c, cache = step(self.cell, inputs[:, t], h, c, *self.weights(k))
                caches.append(cache)
                outputs.append(h)
            self.caches.append(caches)
            inputs = self.xp.stack(outputs, axis=1)              # (N, T, H): the next layer's input
        self.x_shape = x.shape
        return h

    def backward(self, dh_last, need_dx=True):
        """dh_last: (N, H) at the top layer's last state -> dx: (N, T, I); every weight's gradient assigned, summed
        over the time steps. state_grads[k, t] keeps dL/dh_t of layer k, the gradient that reached each step's state
        (notebooks/through_time.ipynb draws it)."""
        n, steps = self.x_shape[:2]
        self.state_grads = {}
        d_outputs = None  # the gradient at the layer above's inputs: every step's hidden state of this layer
        for k in reversed(range(self.layers)):
            W_ih, W_hh = self.weights(k)[:2]
            dW_ih, dW_hh, db_ih, db_hh = (self.grads[f"{w}_l{k}"] for w in ("weight_ih", "weight_hh", "bias_ih",
                                                                             "bias_hh"))
            for g in (dW_ih, dW_hh, db_ih, db_hh):
                g[...] = 0
            dh, dc = self.xp.zeros((n, self.hidden), dh_last.dtype), 0
            if k == self.layers - 1:
                dh = dh + dh_last
            dx = self.xp.zeros((n, steps, W_ih.shape[1]), dh_last.dtype) if (k > 0 or need_dx) else None
            for t in reversed(range(steps)):
                if d_outputs is not None:
                    dh = dh + d_outputs[:, t]
                self.state_grads[k, t] = dh
                cache = self.caches[k][t]
                dx_t, dh, dc, da_x, da_h = step_backward(self.cell, dh, dc, cache, W_ih, W_hh)
                dW_ih += da_x.T @ cache[0]                        # cache[0]: x_t, cache[1]: h_{t-1}
                dW_hh += da_h.T @ cache[1]
                db_ih += da_x.sum(axis=0)
                db_hh += da_h.sum(axis=0)
                if dx is not None:
                    dx[:, t] = dx_t
                dc = 0 if dc is None else dc
            d_outputs = dx
        return d_outputs if need_dx else None

    def torch_layout(self, t):
        return dict(t)  # the names and layouts are torch's already

    def state_dict(self):
        return dict(self.params)

    def load_state_dict(self, d):
        for name, p in self.params.items():
            p[...] = self.xp.asarray(d[name])
