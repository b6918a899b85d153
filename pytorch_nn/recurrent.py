"""numpy_nn/recurrent.py, built in: nn.RNN, nn.LSTM and nn.GRU (batch_first) run a whole sequence through stacked
cells in one call, with the same names, layouts and gate order (weight_ih_l0 of (gates*H, I), weight_hh_l0, bias_ih_l0,
bias_hh_l0; the LSTM's i, f, g, o; the GRU's r, z, n with r applied to W_hn h + b_hn). On the CPU oneDNN fuses the gate
arithmetic of a step, on a GPU cuDNN a whole layer; autograd derives backpropagation through time, which numpy_nn
writes out as the same loop over the steps in reverse."""
from torch import nn


class Sequence(nn.Module):
    """numpy_nn.recurrent.Sequence: (N, 784) -> (N, 28, 28), the rows or the columns as the time steps."""

    def __init__(self, steps="rows"):
        super().__init__()
        self.steps = steps

    def forward(self, x):
        x = x.reshape(len(x), 28, 28)
        return x if self.steps == "rows" else x.transpose(1, 2)


class LastState:
    """What the dense head reads: the top layer's state after the last step (torch returns every step's)."""

    def forward(self, x):
        return super().forward(x)[0][:, -1]


class RNN(LastState, nn.RNN):
    pass


class LSTM(LastState, nn.LSTM):
    pass


class GRU(LastState, nn.GRU):
    pass


CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
