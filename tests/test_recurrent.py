"""numpy_nn/recurrent.py's cells and sequences against torch's nn.RNN, nn.LSTM and nn.GRU (batch_first) through
autograd, and against central finite differences: float64, one and two stacked layers, the last step's hidden state
and every weight's gradient summed over the steps (backpropagation through time)."""
import numpy as np
import pytest
import torch

from gradcheck import numerical_grad_at
from numpy_nn.recurrent import GATES, Recurrent

MODULES = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
N, T, I, H = 3, 5, 4, 6


def twins(cell, layers, seed=0):
    """Our layer and torch's with the same weights (uniform in +-1/sqrt(H), as torch draws them), and a sequence."""
    rng = np.random.default_rng(seed)
    ours = Recurrent(cell, I, H, layers, dtype=np.float64)
    weights = {name: rng.uniform(-1, 1, p.shape) / np.sqrt(H) for name, p in ours.params.items()}
    ours.load_state_dict(weights)
    theirs = MODULES[cell](I, H, layers, batch_first=True).double()
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    return ours, theirs, rng.standard_normal((N, T, I))


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", GATES)
def test_a_sequence_against_torch_autograd(cell, layers):
    ours, theirs, x = twins(cell, layers)
    h = ours.forward(x)
    tx = torch.from_numpy(x).requires_grad_()
    out = theirs(tx)[0][:, -1]                                 # the top layer's last hidden state, (N, H)
    np.testing.assert_allclose(h, out.detach().numpy(), rtol=0, atol=1e-13)
    dh = np.random.default_rng(1).standard_normal(h.shape)
    dx = ours.backward(dh)
    (out * torch.from_numpy(dh)).sum().backward()
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=0, atol=1e-13)
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(ours.grads[name], p.grad.numpy(), rtol=0, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("cell", GATES)
def test_gradients_against_finite_differences(cell):
    """A few entries of each weight, and of the input, against central differences of the fake loss sum(h * dh)."""
    ours, _, x = twins(cell, 2, seed=3)
    dh = np.random.default_rng(4).standard_normal((N, H))
    loss = lambda: float((ours.forward(x) * dh).sum())  # noqa: E731
    ours.forward(x)
    dx = ours.backward(dh)
    rng = np.random.default_rng(5)
    for name, p in ours.params.items():
        for index in [tuple(rng.integers(0, s) for s in p.shape) for _ in range(3)]:
            assert abs(numerical_grad_at(loss, p, index) - ours.grads[name][index]) < 1e-8, (name, index)
    for index in [(0, 0, 0), (2, T - 1, I - 1), (1, 2, 1)]:
        assert abs(numerical_grad_at(loss, x, index) - dx[index]) < 1e-8, index
