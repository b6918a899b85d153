"""numpy_nn/norm.py, built in: nn.BatchNorm1d and nn.BatchNorm2d (weight and bias are numpy_nn's gamma and
beta; running_mean, running_var and num_batches_tracked are buffers that travel with the state_dict)."""
from torch import nn

BatchNorm1d, BatchNorm2d = nn.BatchNorm1d, nn.BatchNorm2d
