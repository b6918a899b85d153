"""Every fast kernel equals its reference layers (numpy_nn/fast_conv.py, fast_norm.py and fast_block.py against conv.py,
norm.py and layers.py), forward and backward: float64 to 1e-12 relative, float32 to float32 rounding; cache blocks of
any size. The reference layers themselves are checked against finite differences and autograd in test_cnn_layers.py."""
import numpy as np
import pytest

from numpy_nn import conv, fast_block, fast_conv, fast_norm, layers, norm
from numpy_nn.losses import softmax_cross_entropy
from numpy_nn.model import CNN

TOL = {np.float64: 1e-12, np.float32: 5e-6}  # relative to the largest entry; float32: ~40 ulps (seen: 13)


@pytest.fixture(autouse=True, params=["whole batch", "blocks of one"])
def blocks(request, monkeypatch):
    """Every test here runs twice: the batch in one cache block, as these small inputs fit, and in blocks of one image
    (or one row), so that going block by block is proven not to change a number."""
    if request.param == "blocks of one":
        monkeypatch.setattr(fast_conv, "BLOCK_BYTES", 1)


def assert_equal(name, fast, reference, dtype):
    fast, reference = np.asarray(fast), np.asarray(reference)
    assert fast.shape == reference.shape and fast.dtype == reference.dtype, (name, fast.shape, reference.shape)
    rel = np.abs(fast - reference).max() / max(np.abs(reference).max(), np.finfo(dtype).tiny)
    assert rel <= TOL[dtype], f"{name}: fast differs from reference by {rel:.1e} relative (tolerance {TOL[dtype]:.0e})"


def run_both(fast, reference, x, dtype, **backward):
    """The same input and output gradient through both layers; their outputs, dx and every gradient compared."""
    rng = np.random.default_rng(0)
    outs = [layer.forward(x.copy()) for layer in (fast, reference)]
    assert_equal("out", *outs, dtype)
    dout = rng.standard_normal(outs[1].shape).astype(dtype)
    assert_equal("dx", fast.backward(dout.copy(), **backward), reference.backward(dout.copy(), **backward), dtype)
    for name in getattr(reference, "grads", {}):
        assert_equal(f"d{name}", fast.grads[name], reference.grads[name], dtype)


def channels_last_memory(x):
    """The same values in (N, H, W, C) memory, as the fast layers hand them on."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


DTYPES = [np.float64, np.float32]


@pytest.mark.parametrize("n, c_in, c_out, k, stride, padding, side", [
    (2, 3, 4, 3, 1, 1, 6),   # "same" padding
    (2, 2, 3, 3, 2, 0, 7),   # stride 2, the output floors: 7 -> 3
    (1, 2, 3, 5, 1, 2, 5),   # a batch of 1, a kernel as large as the image
    (3, 1, 2, 2, 2, 1, 5),   # one input channel (im2col by offset), an even kernel, stride and padding
    (4, 1, 8, 3, 1, 1, 28),  # conv1 of the CNN
    (2, 3, 2, 3, 2, 1, 6),   # stride 2 with padding: dout spread out by the stride for dx
])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_conv2d_equals_the_reference(n, c_in, c_out, k, stride, padding, side, bias, dtype):
    rng = np.random.default_rng(n + k + stride)
    reference = conv.Conv2d(c_in, c_out, k, rng, stride, padding, init="torch", dtype=dtype, bias=bias)
    fast = fast_conv.Conv2d(c_in, c_out, k, None, stride, padding, dtype=dtype, bias=bias)
    fast.load_state_dict(reference.state_dict())
    x = rng.standard_normal((n, c_in, side, side)).astype(dtype)
    for memory in (x, channels_last_memory(x)):
        run_both(fast, reference, memory, dtype)
    dout = rng.standard_normal(reference.forward(x).shape).astype(dtype)  # the first layer's dW and db, without dx
    reference.backward(dout.copy())
    fast.forward(x.copy())
    assert fast.backward(dout.copy(), need_dx=False) is None
    for name in reference.grads:
        assert_equal(f"d{name} without dx", fast.grads[name], reference.grads[name], dtype)


class Chain:
    """Reference layers one after another, as one layer."""

    def __init__(self, *layers):
        self.layers = layers

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dout):
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout


@pytest.mark.parametrize("c_in, k, padding, side, pooled", [
    (1, 5, 0, 12, True),   # conv1 of cnn-fast: one channel, unpadded, 12 -> 8 -> 4, in pooling order
    (1, 3, 1, 6, True),    # one channel, "same" padding
    (3, 3, 0, 8, True),    # conv2 of cnn-fast: channels, unpadded, 8 -> 6 -> 3
    (2, 5, 1, 8, True),    # padded, yet the output smaller than the input: 8 -> 6 -> 3
    (2, 3, 1, 5, False),   # an odd output side: the usual order, the pooling floors 5 -> 2
    (1, 2, 1, 5, True),    # an even kernel, one channel: 5 -> 6 -> 3
    (2, 4, 1, 9, True),    # an even kernel, channels: 9 -> 8 -> 4
    (1, 3, 1, 7, False),   # one channel, an odd output side: the usual order, 7 -> 3
])
@pytest.mark.parametrize("activation, gammas", [("relu", None), ("tanh", None), ("relu", "mixed"),
                                                ("relu", "positive"), ("sigmoid", "positive")])
@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_conv_block_equals_the_reference_layers(c_in, k, padding, side, pooled, activation, gammas, dtype):
    """fast_block.ConvBlock equals the reference convolution, batch norm (gammas: none, or with a negative gamma, when
    the scale and shift stay before the pooling, or all positive, when they go after it), 2 x 2 max pooling and
    activation in sequence: out, dx, dW, db, dgamma, dbeta and the running statistics, in training and then in
    evaluation, with dx and without (the first block, whose statistics and dW come from its patches' moments where
    it has one input channel); constant regions make equal outputs, so windows with ties."""
    rng = np.random.default_rng(side + k)
    block = fast_block.ConvBlock(1, c_in, 4, k, padding, bool(gammas), activation, dtype, np)
    reference = [conv.Conv2d(c_in, 4, k, rng, padding=padding, init="torch", dtype=dtype, bias=not gammas)]
    if gammas:
        reference.append(norm.BatchNorm2d(4, dtype=dtype))
        gamma = np.abs(rng.standard_normal(4)) + 0.1
        gamma[1] *= -1 if gammas == "mixed" else 1
        reference[1].params["gamma"][...], reference[1].params["beta"][...] = gamma, rng.standard_normal(4)
    for part, layer in zip(block.parts.values(), reference):
        part.load_state_dict(layer.state_dict())
    chain = Chain(*reference, conv.MaxPool2d(2), layers.ACTIVATIONS[activation]())
    for training in (True, False):
        for layer in (*block.parts.values(), *reference):
            layer.training = training
        x = rng.standard_normal((3, c_in, side, side)).astype(dtype)
        x[0], x[1, :, :side // 2] = 0.5, -0.25  # constant regions: equal outputs, windows with ties
        run_both(block, chain, x, dtype)
        assert block.conv.pooled == pooled
        assert block.deferred == (gammas == "positive")  # the scale and shift after the pooling where exact, only there
        for part, layer in zip(block.parts.values(), reference):
            for name in layer.grads:
                assert_equal(f"d{name}", part.grads[name], layer.grads[name], dtype)
            for name, value in layer.state_dict().items():
                assert_equal(name, part.state_dict()[name], value, dtype)
        dout = rng.standard_normal(block.forward(x).shape).astype(dtype)  # the first block: no dx, the same gradients
        chain.forward(x)
        chain.backward(dout)
        assert block.backward(dout, need_dx=False) is None
        assert block.raw == (gammas == "positive" and c_in == 1)  # the first block's gradients from the moments
        for part, layer in zip(block.parts.values(), reference):
            for name in layer.grads:
                assert_equal(f"d{name} without dx", part.grads[name], layer.grads[name], dtype)


@pytest.mark.parametrize("kind, shape", [("BatchNorm2d", (4, 3, 5, 5)), ("BatchNorm2d", (1, 2, 3, 3)),
                                         ("BatchNorm1d", (6, 5)), ("BatchNorm1d", (3, 4))])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_batch_norm_equals_the_reference(kind, shape, training, dtype):
    """Training (batch statistics, running ones updated for 3 steps) and evaluation (running statistics).
    (Not a batch of 2 in BatchNorm1d: there xhat is +-1 whatever x is, so dx is 0 plus rounding noise.)"""
    rng = np.random.default_rng(len(shape) + shape[0])
    reference, fast = getattr(norm, kind)(shape[1], dtype=dtype), getattr(fast_norm, kind)(shape[1], dtype=dtype)
    reference.params["gamma"][...] = rng.standard_normal(shape[1])
    reference.params["beta"][...] = rng.standard_normal(shape[1])
    reference.running_mean[...], reference.running_var[...] = rng.standard_normal(shape[1]), rng.random(shape[1]) + 0.5
    fast.load_state_dict(reference.state_dict())
    reference.training = fast.training = training
    for step in range(3):
        x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
        run_both(fast, reference, channels_last_memory(x) if len(shape) == 4 and step else x, dtype)
    for name, value in reference.state_dict().items():
        assert_equal(name, fast.state_dict()[name], value, dtype)


@pytest.mark.parametrize("batch_norm", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_whole_fast_cnn_equals_the_reference(batch_norm, dtype):
    """The whole network built from either set of layers: logits, loss and every gradient."""
    models = [CNN((3, 4), 3, (6,), batch_norm=batch_norm, init="torch", seed=2, dtype=dtype, kernels=k)
              for k in ("fast", "reference")]
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((5, 1, 28, 28)).astype(dtype), rng.integers(0, 10, 5)
    logits = [m.forward(x) for m in models]
    assert_equal("logits", *logits, dtype)
    for m, z in zip(models, logits):
        m.backward(softmax_cross_entropy(z, y)[1])
    for name in models[1].grads:
        assert_equal(f"d {name}", models[0].grads[name], models[1].grads[name], dtype)
