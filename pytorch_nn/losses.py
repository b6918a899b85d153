"""numpy_nn/losses.py, built in: cross_entropy fuses log-softmax and the negative log-likelihood (stable
by log-sum-exp), and autograd supplies its gradient, (softmax - onehot) / N."""
from torch.nn.functional import cross_entropy as softmax_cross_entropy  # noqa: F401
