"""Every fast kernel equals its reference layer (numpy_nn/fast_conv.py, fast_pool.py and fast_norm.py against conv.py
and norm.py), forward and backward: float64 to 1e-12 relative, float32 to float32 rounding; cache blocks of any size.
The reference layers themselves are checked against finite differences and autograd in test_cnn_layers.py."""
import time

import numpy as np
import pytest

from numpy_nn import conv, fast_conv, fast_layers, fast_norm, fast_pool, layers, norm, threads
from numpy_nn.losses import softmax_cross_entropy
from numpy_nn.model import CNN

TOL = {np.float64: 1e-12, np.float32: 5e-6}  # relative to the largest entry; float32: ~40 ulps (seen: 13)


@pytest.fixture(autouse=True,
                params=["whole batch, one worker", "blocks of one, one worker", "blocks of one, 3 workers"])
def blocks(request, monkeypatch):
    """Every test here runs three times: the batch in one block, as these small inputs fit, and blocks of one
    image (or one row) taken in turn or shared out to three threads (more than this machine may have, and
    uneven shares), so that going block by block, in parallel, is proven not to change a number."""
    monkeypatch.setattr(threads, "WORKERS", 3 if "3 workers" in request.param else 1)
    if "blocks of one" in request.param:
        monkeypatch.setattr(threads, "BLOCK_BYTES", 1)


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
def test_conv2d(n, c_in, c_out, k, stride, padding, side, bias, dtype):
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


def test_buffers_the_workers_share_are_made_before_they_start(monkeypatch):
    """conv1's patch matrix is one array for the whole batch, each worker filling its blocks: were it made by the
    first worker to miss it, two workers could each make one and the blocks of one would be lost. Slowed-down
    allocations make that race certain here."""
    rng = np.random.default_rng(7)
    x, dout = rng.standard_normal((6, 1, 6, 6)), rng.standard_normal((6, 4, 6, 6))
    fast, reference = (kind.Conv2d(1, 4, 3, padding=1, dtype=np.float64) for kind in (fast_conv, conv))
    fast.load_state_dict(reference.state_dict())
    expected = reference.forward(x), reference.backward(dout)
    empty = np.empty
    monkeypatch.setattr(np, "empty", lambda *a, **k: (time.sleep(0.05), empty(*a, **k))[1])
    got = fast.forward(x), fast.backward(dout)
    monkeypatch.setattr(np, "empty", empty)
    for name, a, b in [("out", got[0], expected[0]), ("dx", got[1], expected[1]),
                       ("dW", fast.grads["W"], reference.grads["W"])]:
        assert_equal(name, a, b, np.float64)


@pytest.mark.parametrize("k, stride, side", [(2, None, 6), (2, None, 7), (3, 2, 7), (3, 1, 4)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool(k, stride, side, dtype):
    """Windows that tile, that floor (7 -> 3), and that overlap (gradients add up); ties in every window of
    one channel and in some of another (the first maximum in row-major order wins in both)."""
    rng = np.random.default_rng(k * side)
    x = rng.standard_normal((2, 3, side, side)).astype(dtype)
    x[0, 0] = 1.0
    x[1, 2, 1:3, 1:3] = 2.0
    for memory in (x, channels_last_memory(x)):
        run_both(fast_pool.MaxPool2d(k, stride), conv.MaxPool2d(k, stride), memory, dtype)


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


@pytest.mark.parametrize("k, stride, side", [(2, None, 6), (2, None, 7), (3, 1, 4)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_with_relu(k, stride, side, dtype):
    """The fast pooling that applies the ReLU after it (the fast CNN's "pool1+conv1_relu") equals the reference
    pooling then the reference ReLU: windows whose maximum is negative, zero (with ties) and positive."""
    x = np.random.default_rng(side).standard_normal((2, 3, side, side)).astype(dtype)
    x[0, 0], x[1, 1, :2, :2] = 0.0, -1.0
    for memory in (x, channels_last_memory(x)):
        run_both(fast_pool.FUSED["relu"](k) if stride is None else fast_pool.MaxPool2d(k, stride, relu=True),
                 Chain(conv.MaxPool2d(k, stride), layers.ReLU()), memory, dtype)


@pytest.mark.parametrize("c_in, k, padding, side, pooled", [
    (1, 5, 0, 12, True),   # conv1 of cnn-fast: one channel, unpadded, 12 -> 8 -> 4
    (1, 3, 1, 6, True),    # one channel, "same" padding
    (3, 3, 0, 8, True),    # conv2 of cnn-fast: channels, unpadded, 8 -> 6 -> 3
    (2, 5, 1, 8, True),    # padded, yet the output smaller than the input: 8 -> 6 -> 3 (dx gathered, not scattered)
    (2, 3, 1, 5, False),   # an odd output side: handed on as usual, the pooling floors 5 -> 2
    (1, 2, 1, 5, False),   # an even kernel: its one-channel patches are not split into columns
])
@pytest.mark.parametrize("relu, gammas", [(True, None), (False, None), (True, "mixed"), (True, "positive"),
                                          (False, "positive")])
@pytest.mark.parametrize("dtype", DTYPES)
def test_convolution_hands_the_pooling_its_output_in_pooling_order(c_in, k, padding, side, pooled, relu, gammas,
                                                                   dtype):
    """The fast CNN's convolution followed by its 2 x 2 pooling (and ReLU; or batch norm between, as the CNN with
    --batch-norm has it, its scale and shift after the pooling where every gamma is positive), the output passed on
    in pooling order where the shapes allow it, equals the reference convolution, batch norm, pooling and ReLU:
    out, dx, dW, db, dgamma, dbeta and the running statistics."""
    rng = np.random.default_rng(side + k)
    reference = [conv.Conv2d(c_in, 4, k, rng, padding=padding, init="torch", dtype=dtype, bias=not gammas)]
    fast = [fast_conv.Conv2d(c_in, 4, k, None, padding=padding, dtype=dtype, bias=not gammas)]
    pool = fast_pool.MaxPool2d(2, relu=relu)
    if gammas:
        reference.append(norm.BatchNorm2d(4, dtype=dtype))
        gamma = np.abs(rng.standard_normal(4)) + 0.1
        gamma[1] *= -1 if gammas == "mixed" else 1  # a negative one: the usual order then
        reference[1].params["gamma"][...], reference[1].params["beta"][...] = gamma, rng.standard_normal(4)
        fast.append(fast_norm.BatchNorm2d(4, dtype=dtype))
        fast_pool.defer(fast[1], pool)  # as the fast CNN wires them
    for a, b in zip(fast, reference):
        a.load_state_dict(b.state_dict())
    fast[0].pooled = True  # as the fast CNN sets it
    x = rng.standard_normal((3, c_in, side, side)).astype(dtype)
    x[0], x[1, :, :side // 2] = 0.5, -0.25  # constant regions: equal outputs, windows with ties
    run_both(Chain(*fast, pool), Chain(*reference, conv.MaxPool2d(2), *([layers.ReLU()] if relu else [])), x, dtype)
    assert fast[0].pool_order == pooled
    if gammas:  # the scale and shift went after the pooling where they could, and only there
        assert fast[1].shifted_later == (pooled and gammas == "positive") == pool.shifted
    for a, b in zip(fast, reference):
        for name in b.grads:
            assert_equal(f"d{name}", a.grads[name], b.grads[name], dtype)
        for name, value in b.state_dict().items():
            assert_equal(name, a.state_dict()[name], value, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu(dtype):
    """A CNN's ReLU: zeros, negative zeros and positives, either memory layout, bit for bit."""
    x = np.random.default_rng(3).standard_normal((3, 4, 5, 5)).astype(dtype)
    x[0, 0, 0, :3] = [0.0, -0.0, 1e-30]
    dout = np.random.default_rng(4).standard_normal(x.shape).astype(dtype)
    for memory in (x, channels_last_memory(x)):
        fast, reference = fast_layers.ReLU(), layers.ReLU()
        assert np.array_equal(fast.forward(memory), reference.forward(memory))
        assert np.array_equal(fast.backward(dout), reference.backward(dout))


@pytest.mark.parametrize("n", [1, 7])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_linear(n, bias, dtype, monkeypatch):
    """A CNN's dense layer, the batch shared out (weights this small too): out, dx, dW and db; a batch of one;
    no dx for a first layer."""
    monkeypatch.setattr(fast_layers, "SHARED", 0)
    reference = layers.Linear(6, 5, np.random.default_rng(0), dtype=dtype, bias=bias)
    fast = fast_layers.Linear(6, 5, np.random.default_rng(0), dtype=dtype, bias=bias)
    x = np.random.default_rng(n).standard_normal((n, 6)).astype(dtype)
    run_both(fast, reference, x, dtype)
    assert fast.backward(np.ones((n, 5), dtype), need_dx=False) is None


@pytest.mark.parametrize("kind, shape", [("BatchNorm2d", (4, 3, 5, 5)), ("BatchNorm2d", (1, 2, 3, 3)),
                                         ("BatchNorm1d", (6, 5)), ("BatchNorm1d", (3, 4))])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm(kind, shape, training, dtype):
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
def test_whole_cnn(batch_norm, dtype):
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
