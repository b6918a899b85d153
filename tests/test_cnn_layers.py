"""numpy_nn's reference convolution, pooling and batch norm (conv.py, norm.py) against central differences and torch
autograd (float64). The fast kernels are proven equal to these layers in test_kernels.py."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gradcheck import numerical_grad, rel_error
from numpy_nn.conv import Conv2d, MaxPool2d
from numpy_nn.layers import Flatten
from numpy_nn.losses import softmax_cross_entropy
from numpy_nn.model import CNN
from numpy_nn.norm import BatchNorm1d, BatchNorm2d
from pytorch_nn.model import CNN as TorchCNN, tensors
from test_numpy_gradients import FD_TOL, TORCH_TOL, check, torch_grads

EXACT = 1e-13  # forward outputs: the same sums, in another order


@pytest.mark.parametrize("n, c_in, c_out, k, stride, padding, side", [
    (2, 3, 4, 3, 1, 1, 6),   # "same" padding
    (2, 2, 3, 3, 2, 0, 7),   # stride 2, the output floors: 7 -> 3
    (1, 2, 3, 5, 1, 2, 5),   # a batch of 1, a kernel as large as the image
    (3, 1, 2, 2, 2, 1, 5),   # an even kernel, stride and padding together
])
@pytest.mark.parametrize("bias", [True, False])
def test_reference_conv2d_against_finite_differences_and_autograd(n, c_in, c_out, k, stride, padding, side, bias):
    rng = np.random.default_rng(n + k + stride)
    layer = Conv2d(c_in, c_out, k, rng, stride, padding, init="torch", dtype=np.float64, bias=bias)
    x = rng.standard_normal((n, c_in, side, side))
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    params = [layer.params["W"]] + ([layer.params["b"]] if bias else [])
    ref = torch_grads(lambda x, W, *b: F.conv2d(x, W, *b, stride=stride, padding=padding), x, *params, dout=dout)
    expected = F.conv2d(torch.tensor(x), *map(torch.tensor, params), stride=stride, padding=padding).numpy()
    assert out.shape == expected.shape and np.abs(out - expected).max() <= EXACT
    f = lambda: np.sum(layer.forward(x) * dout)
    check("conv dx", dx, numerical_grad(f, x), ref[0])
    check("conv dW", layer.grads["W"], numerical_grad(f, layer.params["W"]), ref[1])
    if bias:
        check("conv db", layer.grads["b"], numerical_grad(f, layer.params["b"]), ref[2])
    assert layer.backward(dout, need_dx=False) is None


@pytest.mark.parametrize("k, stride, side", [(2, None, 6), (2, None, 5), (3, 2, 7), (3, 1, 4)])
def test_reference_max_pool_against_finite_differences_and_autograd(k, stride, side):
    """Non-overlapping, flooring (5 -> 2), and overlapping windows, where gradients add up."""
    rng = np.random.default_rng(k * side)
    layer = MaxPool2d(k, stride)
    x = rng.permutation(2 * 3 * side * side).reshape(2, 3, side, side) / 10.0  # distinct: no ties here
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    assert np.array_equal(out, F.max_pool2d(torch.tensor(x), k, stride).numpy())
    f = lambda: np.sum(layer.forward(x) * dout)
    check("pool dx", dx, numerical_grad(f, x, h=1e-3), torch_grads(lambda t: F.max_pool2d(t, k, stride), x, dout=dout)[0])


@pytest.mark.parametrize("k, stride", [(2, None), (3, 1)])
def test_max_pool_ties_go_where_torch_sends_them(k, stride):
    """A window of equal maxima: the whole gradient goes to one element, the first in row-major order."""
    x = np.zeros((1, 2, 4, 4))
    x[0, 0] = 1.0                         # every window of channel 0 is a tie
    x[0, 1, 1:3, 1:3] = [[2, 2], [2, 1]]  # ties among some elements only
    layer = MaxPool2d(k, stride)
    out = layer.forward(x)
    dout = np.arange(1, out.size + 1, dtype=float).reshape(out.shape)
    dx = layer.backward(dout)
    expected = torch_grads(lambda t: F.max_pool2d(t, k, stride), x, dout=dout)[0]
    np.testing.assert_array_equal(dx, expected)
    assert np.count_nonzero(dx[0, 0]) <= out[0, 0].size  # one element per window (or fewer, where they share)


def _batch_norm_pair(cls, channels, rng):
    ours = cls(channels, dtype=np.float64)
    ours.params["gamma"][...] = rng.standard_normal(channels)
    ours.params["beta"][...] = rng.standard_normal(channels)
    theirs = getattr(torch.nn, cls.__name__)(channels).double()
    theirs.load_state_dict(tensors(ours.state_dict()))
    return ours, theirs


@pytest.mark.parametrize("cls, shape", [(BatchNorm2d, (4, 3, 5, 5)), (BatchNorm2d, (1, 2, 3, 3)),
                                        (BatchNorm1d, (6, 5)), (BatchNorm1d, (2, 3))])
@pytest.mark.parametrize("training", [True, False])
def test_reference_batch_norm_against_finite_differences_and_autograd(cls, shape, training):
    rng = np.random.default_rng(len(shape) + shape[0])
    ours, theirs = _batch_norm_pair(cls, shape[1], rng)
    if not training:  # evaluation reads running statistics: make them something other than 0 and 1
        ours.running_mean[...] = rng.standard_normal(shape[1])
        ours.running_var[...] = rng.random(shape[1]) + 0.5
        theirs.load_state_dict(tensors(ours.state_dict()))
        ours.training = False
        theirs.eval()
    x = rng.standard_normal(shape) * 2 + 1
    dout = rng.standard_normal(shape)
    out = ours.forward(x)
    dx = ours.backward(dout)
    t = torch.tensor(x, requires_grad=True)
    expected = theirs(t)
    (expected * torch.tensor(dout)).sum().backward()
    assert np.abs(out - expected.detach().numpy()).max() <= EXACT
    f = lambda: np.sum(ours.forward(x) * dout)
    check("bn dx", dx, numerical_grad(f, x), t.grad.numpy())
    check("bn dgamma", ours.grads["gamma"], numerical_grad(f, ours.params["gamma"]), theirs.weight.grad.numpy())
    check("bn dbeta", ours.grads["beta"], numerical_grad(f, ours.params["beta"]), theirs.bias.grad.numpy())


@pytest.mark.parametrize("cls, shape", [(BatchNorm2d, (8, 3, 4, 4)), (BatchNorm1d, (8, 5))])
def test_batch_norm_running_statistics_after_20_steps(cls, shape):
    """Biased variance to normalize, the unbiased one into running_var, momentum on the new value."""
    rng = np.random.default_rng(3)
    ours, theirs = _batch_norm_pair(cls, shape[1], rng)
    for _ in range(20):
        x = rng.standard_normal(shape) * 3 - 2
        ours.forward(x)
        theirs(torch.tensor(x))
    for name, value in theirs.state_dict().items():
        diff = np.abs(ours.state_dict()[name] - value.numpy()).max()
        assert diff <= 1e-12, f"{name} differs by {diff:.1e}"
    assert int(ours.num_batches_tracked) == 20


def test_flatten_keeps_torch_order():
    x = np.arange(2 * 3 * 4 * 4.0).reshape(2, 3, 4, 4)
    channels_last = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)  # same values, NHWC memory
    for a in (x, channels_last):
        layer = Flatten()
        np.testing.assert_array_equal(layer.forward(a), torch.flatten(torch.tensor(x), 1).numpy())
        np.testing.assert_array_equal(layer.backward(layer.forward(a)), x)


@pytest.mark.parametrize("batch_norm, n", [(True, 3), (False, 3), (False, 1)])  # (torch's BatchNorm1d refuses n=1)
def test_whole_reference_cnn_against_autograd(batch_norm, n):
    """Every gradient of the mean loss through conv, batch norm, ReLU, pooling, flatten and the dense layers."""
    rng = np.random.default_rng(5)
    model = CNN((2, 3), 3, (6,), dropout=0.0, batch_norm=batch_norm, init="torch", seed=2, dtype=np.float64,
                kernels="reference")
    x, y = rng.standard_normal((n, 1, 28, 28)), rng.integers(0, 10, n)
    loss, dlogits = softmax_cross_entropy(model.forward(x), y)
    model.backward(dlogits)
    twin = TorchCNN((2, 3), 3, (6,), batch_norm=batch_norm).double()
    twin.load_state_dict(tensors(model.state_dict()))
    ref = F.cross_entropy(twin(torch.tensor(x)), torch.tensor(y))
    ref.backward()
    assert abs(loss - ref.item()) <= 1e-13
    reference = {name: p.grad.numpy() for name, p in twin.named_parameters()}
    ours = model.torch_grads()
    assert ours.keys() == reference.keys()
    for name in ours:
        tr = rel_error(ours[name], reference[name])
        assert tr <= TORCH_TOL, f"{name}: rel error vs torch.autograd {tr:.2e}"
    f = lambda: float(softmax_cross_entropy(model.forward(x), y)[0])
    for name in ("conv1.W", "conv2.W", "fc2.W"):  # finite differences on a few tensors: each costs 2 passes per entry
        p = model.params[name]
        fd = rel_error(model.grads[name], numerical_grad(f, p))
        assert fd <= FD_TOL, f"{name}: rel error vs finite differences {fd:.2e}"
