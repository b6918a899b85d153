"""numpy_nn/layers.py's classes, built in: nn.Linear, nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Dropout.
Their backward passes are not written anywhere here; autograd derives them from the forward."""
from torch import nn

Linear, Dropout = nn.Linear, nn.Dropout
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
