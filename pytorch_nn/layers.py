"""numpy_nn/layers.py's classes, built in: nn.Linear, nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Dropout, nn.Flatten.
Their backward passes are not written anywhere here; autograd derives them from the forward."""
from torch import nn

Linear, Dropout, Flatten = nn.Linear, nn.Dropout, nn.Flatten
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
