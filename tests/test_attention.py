"""numpy_nn/attention.py's layers against torch's (float64): the same outputs and the same gradients, through autograd,
from the same weights; and against central finite differences."""
import numpy as np
import pytest
import torch

from gradcheck import numerical_grad, rel_error
from numpy_nn.attention import GELU, LayerNorm, SelfAttention

N, T, D, HEADS = 3, 5, 8, 2


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    return rng, rng.standard_normal((N, T, D)), rng.standard_normal((N, T, D))


def against_torch(ours, theirs, x, dy):
    """Forward both on x, backward both from dy: (largest output difference, {name: largest gradient difference}),
    with dx under "x"."""
    tx = torch.tensor(x, requires_grad=True)
    out = theirs(tx)
    out = out[0] if isinstance(out, tuple) else out
    out.backward(torch.tensor(dy))
    y, dx = ours.forward(x), ours.backward(dy)
    grads = {name: np.abs(ours.grads[name] - t.grad.numpy()).max() for name, t in theirs.named_parameters()}
    return np.abs(y - out.detach().numpy()).max(), {**grads, "x": np.abs(dx - tx.grad.numpy()).max()}


def test_layer_norm_equals_torch():
    rng, x, dy = inputs()
    theirs = torch.nn.LayerNorm(D).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(rng.standard_normal(D)))
        theirs.bias.copy_(torch.tensor(rng.standard_normal(D)))
    ours = LayerNorm(D, dtype=np.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    out, grads = against_torch(ours, theirs, x, dy)
    assert out < 1e-14 and max(grads.values()) < 1e-13, (out, grads)


def test_gelu_equals_torch_tanh_form():
    _, x, dy = inputs()
    ours, theirs = GELU(), torch.nn.GELU(approximate="tanh")
    tx = torch.tensor(x * 3, requires_grad=True)
    theirs(tx).backward(torch.tensor(dy))
    assert np.abs(ours.forward(x * 3) - theirs(tx).detach().numpy()).max() < 1e-15
    assert np.abs(ours.backward(dy) - tx.grad.numpy()).max() < 1e-14


def test_self_attention_equals_multihead_attention():
    """nn.MultiheadAttention(batch_first) with query = key = value = x: its packed weights copied in, the same output,
    dx and every weight's gradient."""
    rng, x, dy = inputs(1)
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(D, HEADS, batch_first=True).double()
    with torch.no_grad():
        theirs.in_proj_bias.copy_(torch.tensor(rng.standard_normal(3 * D) * 0.1))
        theirs.out_proj.bias.copy_(torch.tensor(rng.standard_normal(D) * 0.1))
    ours = SelfAttention(D, HEADS, dtype=np.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert set(ours.state_dict()) == set(theirs.state_dict())
    out, grads = against_torch(ours, SelfAttentionModule(theirs), x, dy)
    assert out < 1e-14 and max(grads.values()) < 1e-13, (out, grads)


class SelfAttentionModule(torch.nn.Module):
    """nn.MultiheadAttention called as self-attention, its parameters under its own names."""

    def __init__(self, mha):
        super().__init__()
        self.mha = mha

    def named_parameters(self, *args, **kwargs):
        return self.mha.named_parameters(*args, **kwargs)

    def forward(self, x):
        return self.mha(x, x, x, need_weights=False)[0]


@pytest.mark.parametrize("make", [lambda: LayerNorm(D, dtype=np.float64), lambda: SelfAttention(D, HEADS, np.float64)],
                         ids=["layer norm", "self-attention"])
def test_backward_equals_finite_differences(make):
    rng, x, dy = inputs(2)
    layer = make()
    layer.load_state_dict({k: rng.standard_normal(v.shape) * 0.5 for k, v in layer.state_dict().items()})

    def loss():
        return float((layer.forward(x) * dy).sum())
    layer.forward(x)
    dx = layer.backward(dy)
    assert rel_error(dx, numerical_grad(loss, x)) < 1e-8
    for name, p in layer.params.items():
        layer.forward(x), layer.backward(dy)
        assert rel_error(layer.grads[name].copy(), numerical_grad(loss, p)) < 1e-8, name


def test_gelu_backward_equals_finite_differences():
    _, x, dy = inputs(3)
    gelu = GELU()
    gelu.forward(x)
    dx = gelu.backward(dy)
    assert rel_error(dx, numerical_grad(lambda: float((gelu.forward(x) * dy).sum()), x)) < 1e-8


def test_a_width_the_heads_do_not_divide_is_refused():
    with pytest.raises(ValueError, match="a width of 10 does not split into 4 heads"):
        SelfAttention(10, 4)


def test_tokens_equal_the_torch_twin():
    """The patch embedding, class token and position embeddings: numpy_nn's against pytorch_nn's, the same weights
    under the same names, the same tokens, gradients and dx (float64)."""
    from pytorch_nn.attention import Tokens as TorchTokens
    from numpy_nn.attention import Tokens
    rng = np.random.default_rng(4)
    theirs = TorchTokens(7, D).double()
    ours = Tokens(7, D, np.float64)
    weights = {k: rng.standard_normal(tuple(v.shape)) for k, v in theirs.state_dict().items()}
    theirs.load_state_dict({k: torch.tensor(v) for k, v in weights.items()})
    ours.load_state_dict(weights)
    x, dy = rng.standard_normal((N, 784)), rng.standard_normal((N, 17, D))
    out, grads = against_torch(ours, theirs, x, dy)
    assert out < 1e-13 and max(grads.values()) < 1e-12, (out, grads)


def test_encoder_block_equals_transformer_encoder_layer():
    """numpy_nn's pre-norm block against nn.TransformerEncoderLayer(norm_first=True, batch_first=True, GELU's tanh form,
    no dropout): its weights copied in under torch's names, the same output, dx and every weight's gradient."""
    from functools import partial
    from numpy_nn.attention import EncoderBlock
    rng, x, dy = inputs(5)
    torch.manual_seed(1)
    theirs = torch.nn.TransformerEncoderLayer(D, HEADS, 2 * D, dropout=0.0, batch_first=True, norm_first=True,
                                              activation=partial(torch.nn.functional.gelu, approximate="tanh")).double()
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(torch.tensor(rng.standard_normal(tuple(p.shape)) * 0.1))
    ours = EncoderBlock("block1", D, HEADS, mlp=2, dtype=np.float64)
    state = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    prefixes = {name: name.split(".", 1)[1] + "." for name in ours.parts}  # block1.self_attn -> self_attn.
    for name, part in ours.parts.items():
        part.load_state_dict({k[len(prefixes[name]):]: v for k, v in state.items() if k.startswith(prefixes[name])})
    assert {prefixes[name] + k for name, part in ours.parts.items() for k in part.state_dict()} == set(state)
    tx = torch.tensor(x, requires_grad=True)
    y = theirs(tx)
    y.backward(torch.tensor(dy))
    out = np.abs(ours.forward(x) - y.detach().numpy()).max()
    dx = ours.backward(dy)
    grads = {prefixes[name] + k: g for name, part in ours.parts.items() for k, g in part.grads.items()}
    worst = max(np.abs(grads[k] - p.grad.numpy()).max() for k, p in theirs.named_parameters())
    assert out < 1e-13 and worst < 1e-12 and np.abs(dx - tx.grad.numpy()).max() < 1e-12, (out, worst)


@pytest.mark.parametrize("kernels", ["fast", "reference"])
def test_vit_twins_step_by_step(kernels, mnist64):
    """--model vit in both twins from the same weights on the same batches: 128 steps in float64 of the ViT recipe's
    pieces (AdamW decaying the weight matrices only, label smoothing, one-cycle warm-up then cosine, stepped per
    batch), every loss within 1e-9 relative, every final tensor within 1e-8 (tests/test_parity.py's check)."""
    import numpy_nn.train
    import pytorch_nn.train
    from test_parity import assert_lockstep, losses_and_weights, make_args, with_steps
    args = with_steps(make_args(["--model", "vit", "--width", "16", "--depth", "2", "--heads", "2", "--hidden", "16",
                                 "--optimizer", "adamw", "--lr", "3e-3", "--weight-decay", "0.05", "--decay",
                                 "matrices", "--label-smoothing", "0.1", "--schedule", "onecycle", "--warmup", "0.1"]),
                      mnist64)
    args.kernels = kernels
    weights = assert_lockstep("vit", losses_and_weights(numpy_nn.train.Trainer(args), mnist64, args),
                              losses_and_weights(pytorch_nn.train.Trainer(args), mnist64, args))
    assert weights["tokens.pos_embed"].shape == (1, 17, 16) and "block2.self_attn.in_proj_weight" in weights


def test_a_vit_model_file_brings_its_shape(mnist_dir, tmp_path, capsys):
    """A ViT trained by numpy_nn's train.py, scored by pytorch_nn's from the file alone: patch, width, depth, heads and
    MLP ratio come from its record."""
    import numpy_nn.train
    import pytorch_nn.train
    from conftest import run_train
    argv = ["--limit-train", "500", "--val-size", "100", "--epochs", "1", "--threads", "1", "--model", "vit", "--width",
            "12", "--heads", "3", "--patch", "4", "--mlp-ratio", "3", "--save-model", "--out", str(tmp_path)]
    code, history = run_train(numpy_nn.train, argv, mnist_dir)
    capsys.readouterr()
    path = str(tmp_path / "model.safetensors")
    assert code == 0 and run_train(pytorch_nn.train, ["--evaluate", path], mnist_dir)[0] == 0
    assert f"accuracy {history['test_acc']:.2%}" in capsys.readouterr().out


def test_a_vit_file_whose_width_the_heads_do_not_divide_is_refused_in_one_line(mnist_dir, tmp_path, capsys):
    """A model file's record goes through the command line's checks: heads that do not divide the width (a damaged or
    foreign record) end in one line, not in a traceback from the attention layer."""
    import json
    import numpy_nn.train
    from conftest import run_train
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file
    argv = ["--limit-train", "200", "--val-size", "100", "--epochs", "1", "--threads", "1", "--model", "vit", "--width",
            "8", "--heads", "2", "--save-model", "--out", str(tmp_path)]
    assert run_train(numpy_nn.train, argv, mnist_dir)[0] == 0
    with safe_open(str(tmp_path / "model.safetensors"), framework="numpy") as f:
        meta = f.metadata()
    config = {**json.loads(meta["config"]), "heads": 3}
    save_file(load_file(tmp_path / "model.safetensors"), tmp_path / "bad.safetensors",
              {**meta, "config": json.dumps(config)})
    capsys.readouterr()
    assert run_train(numpy_nn.train, ["--evaluate", str(tmp_path / "bad.safetensors")], mnist_dir)[0] == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--width 8 and --heads 3, which do not divide" in err[0], err


def test_float32_stays_float32():
    """Every layer of a float32 ViT computes in float32, forward and backward (a NumPy float64 scalar, np.sqrt's, would
    lift its arrays to float64: slower, and no longer torch's float32 math)."""
    from numpy_nn.attention import ClassToken, Dense, EncoderBlock, Tokens
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, 784)).astype(np.float32)
    layers = [Tokens(7, D), EncoderBlock("block1", D, HEADS), LayerNorm(D), ClassToken(), Dense(D, 10)]
    for layer in layers:
        for name, p in getattr(layer, "params", {}).items():
            p[...] = rng.standard_normal(p.shape) * 0.1
        x = layer.forward(x)
        assert x.dtype == np.float32, type(layer).__name__
    dout = np.ones_like(x)
    for layer in reversed(layers):
        dout = layer.backward(dout)
        assert dout.dtype == np.float32, type(layer).__name__


def test_the_class_tokens_attention_is_the_same_in_both_twins(mnist64):
    """What compare.py draws for a ViT: the last block's attention from the class token to each patch, per head, read
    from numpy_nn's softmax and from torch's nn.MultiheadAttention (need_weights) after trained steps, equal in
    float64; each head's weights over the patches sum to at most 1 (the rest goes to the class token itself)."""
    import numpy_nn.attention
    import numpy_nn.train
    import pytorch_nn.attention
    import pytorch_nn.train
    from test_parity import losses_and_weights, make_args, with_steps
    args = with_steps(make_args(["--model", "vit", "--width", "16", "--depth", "2", "--heads", "2", "--patch", "4",
                                 "--epochs", "1", "--lr", "3e-3"]), mnist64)
    ours, theirs = (losses_and_weights(module.Trainer(args), mnist64, args)[1]
                    for module in (numpy_nn.train, pytorch_nn.train))
    x = mnist64.x_test[:8]
    a = numpy_nn.attention.class_attention(ours.model, x)
    b = pytorch_nn.attention.class_attention(theirs.model, torch.from_numpy(x)).numpy()
    assert a.shape == b.shape == (8, 2, 49) and np.all(a.sum(axis=-1) <= 1 + 1e-12)
    assert np.abs(a - b).max() < 1e-10 and a.std() > 1e-3, np.abs(a - b).max()


def test_attention_figure_is_drawn(mnist_dir, tmp_path):
    """compare.py's attention.png for a ViT report: each twin's maps computed by its own model (images.attention_job)
    from the same weights, equal, then drawn, one panel per digit, twin and head, written whole."""
    import numpy_nn.train
    from comparison import images
    from test_parity import make_args
    argv = ["--model", "vit", "--width", "16", "--depth", "1", "--heads", "2", "--patch", "7", "--limit-train", "100",
            "--data-dir", str(mnist_dir), "--threads", "1"]
    weights = numpy_nn.train.Trainer(make_args(argv[:8] + ["--dtype", "float32"])).weights()
    digits, maps = images.attention_job(argv, {"numpy_nn": ("numpy", weights), "pytorch_nn": ("pytorch", weights)})
    assert digits.shape == (4, 28, 28) and maps["numpy_nn"].shape == (4, 2, 16)
    assert np.abs(maps["numpy_nn"] - maps["pytorch_nn"]).max() < 1e-6
    images.plot_attention(digits, maps, tmp_path / "attention.png", "an untrained model")
    assert (tmp_path / "attention.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_vit_cli_histories_agree_with_the_recipe(mnist_dir, tmp_path):
    """Both train.py CLIs, float64, a ViT with the vit preset's pieces (shifted images through the shared data path,
    AdamW decaying the matrices, label smoothing, one-cycle): the same history.json figures, epoch by epoch."""
    from test_parity import assert_cli_histories_agree
    assert_cli_histories_agree(["--model", "vit", "--width", "16", "--depth", "1", "--heads", "2", "--momentum", "0",
                                "--optimizer", "adamw", "--lr", "3e-3", "--decay", "matrices", "--label-smoothing",
                                "0.1", "--schedule", "onecycle", "--shift", "2", "--limit-train", "1000", "--epochs",
                                "2"], mnist_dir, tmp_path)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 5e-6)])
def test_fast_attention_equals_the_reference(dtype, tol):
    """numpy_nn/fast_attention.py against attention.py's SelfAttention from the same weights: outputs, dx and every
    gradient, relative to each array's largest entry (float64 to 1e-12, float32 to its rounding)."""
    from numpy_nn import fast_attention
    rng = np.random.default_rng(3)
    ref, fast = SelfAttention(16, 4, dtype), fast_attention.SelfAttention(16, 4, dtype)
    for name, p in ref.params.items():
        p[...] = rng.standard_normal(p.shape) * 0.3
        fast.params[name][...] = p
    x, dy = (rng.standard_normal((6, 17, 16)).astype(dtype) for _ in range(2))
    pairs = [(ref.forward(x), fast.forward(x)), (ref.backward(dy), fast.backward(dy)),
             *((ref.grads[k], fast.grads[k]) for k in ref.grads)]
    for a, b in pairs:
        assert b.dtype == dtype and np.abs(a - b).max() <= tol * np.abs(a).max()
