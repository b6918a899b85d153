"""numpy_nn/conv.py, built in: nn.Conv2d (weight (C_out, C_in, k, k), numpy_nn's own layout) and
nn.MaxPool2d. Their backward passes, col2im and the routing of each window's gradient, are autograd's."""
from torch import nn

Conv2d, MaxPool2d = nn.Conv2d, nn.MaxPool2d
