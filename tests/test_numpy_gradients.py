"""numpy_nn's hand-written backward passes against central differences and against torch.autograd (float64)."""
import numpy as np
import pytest
import torch

from gradcheck import numerical_grad, rel_error
from numpy_nn.layers import Dropout, Linear, ReLU, Sigmoid, Tanh
from numpy_nn.losses import softmax_cross_entropy
from numpy_nn.model import MLP
from pytorch_nn.model import MLP as TorchMLP, tensors

FD_TOL, TORCH_TOL = 1e-6, 1e-10
N, D, H, C = 4, 5, 7, 3


def away_from_zero(rng, shape):
    """Inputs at least 0.1 from 0, where ReLU's derivative jumps."""
    return rng.choice([-1.0, 1.0], shape) * (0.1 + rng.random(shape))


def check(name, analytic, numeric, reference):
    fd, tr = rel_error(analytic, numeric), rel_error(analytic, reference)
    assert fd <= FD_TOL, f"{name}: rel error vs finite differences {fd:.2e} > {FD_TOL}"
    assert tr <= TORCH_TOL, f"{name}: rel error vs torch.autograd {tr:.2e} > {TORCH_TOL}"


def torch_grads(fn, *arrays, dout):
    """Gradients of sum(fn(*tensors) * dout) with respect to each array, by autograd."""
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    (fn(*ts) * torch.tensor(dout)).sum().backward()
    return [t.grad.numpy() for t in ts]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n", [N, 1])
def test_linear(seed, n):
    rng = np.random.default_rng(seed)
    layer = Linear(D, H, rng, init="torch", dtype=np.float64)  # nonzero bias, so db is not trivially 0
    x, dout = rng.standard_normal((n, D)), rng.standard_normal((n, H))
    W, b = layer.params["W"], layer.params["b"]
    layer.forward(x)
    dx = layer.backward(dout)
    f = lambda: np.sum(layer.forward(x) * dout)
    ref = torch_grads(lambda x, W, b: torch.nn.functional.linear(x, W.T, b), x, W, b, dout=dout)
    check("dx", dx, numerical_grad(f, x), ref[0])
    check("dW", layer.grads["W"], numerical_grad(f, W), ref[1])
    check("db", layer.grads["b"], numerical_grad(f, b), ref[2])


@pytest.mark.parametrize("cls, torch_fn", [(ReLU, torch.relu), (Tanh, torch.tanh), (Sigmoid, torch.sigmoid)])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n", [N, 1])
def test_activation(cls, torch_fn, seed, n):
    rng = np.random.default_rng(seed)
    layer = cls()
    x, dout = away_from_zero(rng, (n, H)) * 3, rng.standard_normal((n, H))
    out = layer.forward(x)
    np.testing.assert_allclose(out, torch_fn(torch.tensor(x)).numpy(), rtol=1e-15, atol=1e-15)
    dx = layer.backward(dout)
    f = lambda: np.sum(layer.forward(x) * dout)
    check(f"{cls.__name__} dx", dx, numerical_grad(f, x), torch_grads(torch_fn, x, dout=dout)[0])


@pytest.mark.parametrize("p", [0.0, 0.3, 0.7])
def test_dropout_with_a_fixed_mask(p):
    rng = np.random.default_rng(0)
    layer = Dropout(p, None)
    x, dout = rng.standard_normal((N, H)), rng.standard_normal((N, H))

    def forward():  # the same mask every call: reseed the layer's generator
        layer.rng = np.random.default_rng(42)
        return layer.forward(x)
    forward()
    mask = layer.mask if p > 0 else np.ones_like(x)
    if p > 0:
        assert set(np.unique(mask)) <= {0.0, 1 / (1 - p)} and 0 < np.count_nonzero(mask) < mask.size
    dx = layer.backward(dout)
    f = lambda: np.sum(forward() * dout)
    check("dropout dx", dx, numerical_grad(f, x), torch_grads(lambda t: t * torch.tensor(mask), x, dout=dout)[0])
    layer.training = False
    np.testing.assert_array_equal(layer.forward(x), x)  # evaluation: identity, no rescaling


def test_dropout_keeps_the_expected_fraction():
    layer = Dropout(0.25, np.random.default_rng(0))
    out = layer.forward(np.ones((1000, 100), np.float32))
    assert out.dtype == np.float32
    assert abs(np.mean(out == 0) - 0.25) < 0.01 and abs(out.mean() - 1) < 0.01  # inverted: mean preserved


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n", [N, 1])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.9])
def test_softmax_cross_entropy(seed, n, smoothing):
    """The loss and its gradient against F.cross_entropy (its label_smoothing), through autograd and finite
    differences."""
    rng = np.random.default_rng(seed)
    logits, y = rng.standard_normal((n, C)) * 3, rng.integers(0, C, n)
    loss, dlogits = softmax_cross_entropy(logits, y, smoothing)
    t = torch.tensor(logits, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(t, torch.tensor(y), label_smoothing=smoothing)
    ref.backward()
    assert abs(loss - ref.item()) <= 1e-14 * max(1, abs(loss))
    check("dlogits", dlogits, numerical_grad(lambda: softmax_cross_entropy(logits, y, smoothing)[0], logits),
          t.grad.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_cross_entropy_is_stable_at_1000(dtype):
    logits = np.array([[1000, -1000, 0], [-1000, -1000, -1000], [1000, 1000, -1000]], dtype)
    loss, dlogits = softmax_cross_entropy(logits, np.array([1, 0, 2]))
    assert np.isfinite(loss) and np.all(np.isfinite(dlogits))
    # row 0 misses by 2000, row 1 is uniform (ln 3), row 2 misses by 2000 + ln 2
    assert loss == pytest.approx((2000 + np.log(3) + 2000 + np.log(2)) / 3, rel=1e-6)
    np.testing.assert_allclose(dlogits.sum(axis=1), 0, atol=1e-6)


def test_uniform_logits_give_ln_10():
    loss, dlogits = softmax_cross_entropy(np.zeros((5, 10)), np.arange(5))
    assert loss == pytest.approx(np.log(10), rel=1e-15)
    np.testing.assert_allclose(dlogits[0], (np.full(10, 0.1) - np.eye(10)[0]) / 5)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("n", [N, 1])
def test_whole_network(activation, n):
    """Every parameter's gradient of the mean loss: numpy_nn's backprop vs finite differences vs autograd."""
    rng = np.random.default_rng(7)
    model = MLP((H, 6), activation, init="torch", seed=3, dtype=np.float64, n_in=D, n_out=C)
    x, y = rng.standard_normal((n, D)), rng.integers(0, C, n)
    loss, dlogits = softmax_cross_entropy(model.forward(x), y)
    model.backward(dlogits)

    twin = TorchMLP((H, 6), activation, n_in=D, n_out=C).double()
    twin.load_state_dict(tensors(model.state_dict()))
    ref = torch.nn.functional.cross_entropy(twin(torch.tensor(x)), torch.tensor(y))
    ref.backward()
    assert abs(loss - ref.item()) <= 1e-13
    reference = {name: p.grad.numpy() for name, p in twin.named_parameters()}

    f = lambda: softmax_cross_entropy(model.forward(x), y)[0]
    numeric = torch_named(model, {name: numerical_grad(f, p) for name, p in model.params.items()})
    ours = model.torch_grads()
    assert ours.keys() == reference.keys() == numeric.keys()
    for name in ours:
        check(name, ours[name], numeric[name], reference[name])


def torch_named(model, arrays):
    """Arrays under numpy_nn's parameter names -> torch's names and layouts, as each layer maps its own."""
    return {f"{name}.{k}": v for name, layer in model.layers.items() if hasattr(layer, "torch_layout")
            for k, v in layer.torch_layout({p: arrays[f"{name}.{p}"] for p in layer.params}).items()}


def test_float32_stays_float32():
    """No accidental float64 upcast anywhere in a float32 training step."""
    from numpy_nn.optim import Adam, SGD
    rng = np.random.default_rng(0)
    for make in (lambda m: Adam(m.params, m.grads, 1e-3, weight_decay=1e-4),
                 lambda m: SGD(m.params, m.grads, 0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)):
        model = MLP((16, 8), "relu", dropout=0.2, seed=0, dtype=np.float32)
        opt = make(model)
        x, y = rng.standard_normal((32, 784)).astype(np.float32), rng.integers(0, 10, 32)
        for _ in range(2):
            logits = model.forward(x)
            loss, dlogits = softmax_cross_entropy(logits, y)
            model.backward(dlogits)
            opt.step()
            assert logits.dtype == dlogits.dtype == np.float32
        arrays = {**model.params, **{f"grad {k}": v for k, v in model.grads.items()}}
        for state in ("m", "v", "buf"):
            arrays.update({f"{state} {k}": v for k, v in getattr(opt, state, {}).items()})
        assert {k: v.dtype for k, v in arrays.items() if v.dtype != np.float32} == {}


def test_whole_network_with_dropout_masks_held_fixed():
    """Input and hidden dropout inside the network: backprop through fixed masks vs finite differences."""
    rng = np.random.default_rng(3)
    model = MLP((H, 6), "relu", dropout=0.3, init="torch", seed=1, dtype=np.float64, n_in=D, n_out=C,
                input_dropout=0.2)
    assert list(model.layers)[:2] == ["input_drop", "fc1"]
    x, y = rng.standard_normal((N, D)), rng.integers(0, C, N)

    def loss():
        for layer in model.layers.values():
            if isinstance(layer, Dropout):
                layer.rng = np.random.default_rng(11)  # the same masks every evaluation
        return softmax_cross_entropy(model.forward(x), y)

    _, dlogits = loss()
    model.backward(dlogits)
    for name, p in model.params.items():
        fd = rel_error(model.grads[name], numerical_grad(lambda: float(loss()[0]), p))
        assert fd <= FD_TOL, f"{name}: rel error vs finite differences {fd:.2e}"
