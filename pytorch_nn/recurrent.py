"""numpy_nn/recurrent.py, built in: nn.RNN, nn.LSTM and nn.GRU (batch_first) run a whole sequence through stacked
cells in one call, with the same names, layouts and gate order (weight_ih_l0 of (gates*H, I), weight_hh_l0, bias_ih_l0,
bias_hh_l0; the LSTM's i, f, g, o; the GRU's r, z, n with r applied to W_hn h + b_hn). On the CPU oneDNN fuses the gate
arithmetic of a step, on a GPU cuDNN a whole layer; autograd derives backpropagation through time, which numpy_nn
writes out as the same loop over the steps in reverse."""
from torch import nn

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
