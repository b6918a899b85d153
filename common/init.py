"""Initial weights: drawn once, here, for both twins, so that both runs start from the same point.

initial_weights() walks the network the flags describe and returns its whole state_dict under torch's names
and layouts (weights, biases, batch-norm buffers) as NumPy arrays; numpy_nn and pytorch_nn each load it.
"""
from __future__ import annotations

import numpy as np

from common.architecture import CELLS, feature_side, norms_at, per_block


def init_weight(n_in, n_out, rng, init="he", dtype=np.float32):
    """(n_in, n_out) weights and (n_out,) bias. he: N(0, 2/n_in), for ReLU; xavier: N(0, 2/(n_in+n_out));
    torch: nn.Linear's own default, U(+-1/sqrt(n_in)) for both. rng None: zeros, for a layer whose
    weights are loaded next (the models load initial_weights())."""
    if rng is None:
        return np.zeros((n_in, n_out), dtype), np.zeros(n_out, dtype)
    if init == "he":
        W, b = rng.standard_normal((n_in, n_out)) * np.sqrt(2 / n_in), np.zeros(n_out)
    elif init == "xavier":
        W, b = rng.standard_normal((n_in, n_out)) * np.sqrt(2 / (n_in + n_out)), np.zeros(n_out)
    elif init == "torch":
        bound = 1 / np.sqrt(n_in)
        W, b = rng.uniform(-bound, bound, (n_in, n_out)), rng.uniform(-bound, bound, n_out)
    else:
        raise ValueError(f"unknown init {init!r}")
    return W.astype(dtype), b.astype(dtype)


def batch_norm_state(name: str, channels: int, dtype) -> dict:
    """A fresh batch norm, as torch starts one: gamma 1, beta 0, running mean 0 and variance 1, no batches."""
    return {f"{name}.weight": np.ones(channels, dtype), f"{name}.bias": np.zeros(channels, dtype),
            f"{name}.running_mean": np.zeros(channels, dtype), f"{name}.running_var": np.ones(channels, dtype),
            f"{name}.num_batches_tracked": np.zeros((), np.int64)}


def recurrent_state(rng, cell, n_in, width, depth, dtype) -> dict:
    """nn.RNN's, nn.LSTM's or nn.GRU's own initialization, whatever --init says: every weight and bias uniform in
    +-1/sqrt(width), drawn layer by layer in torch's order (weight_ih, weight_hh, bias_ih, bias_hh)."""
    state, bound, rows = {}, 1 / np.sqrt(width), CELLS[cell] * width
    for k in range(depth):
        for name, shape in (("weight_ih", (rows, n_in if k == 0 else width)), ("weight_hh", (rows, width)),
                            ("bias_ih", (rows,)), ("bias_hh", (rows,))):
            state[f"{cell}.{name}_l{k}"] = rng.uniform(-bound, bound, shape).astype(dtype)
    return state


def vit_state(rng, patch, width, depth, mlp_ratio, dtype) -> dict:
    """A Vision Transformer's own weights as torch initializes its modules, drawn in forward order: the patch embedding
    (nn.Linear's uniform), class token and position embeddings (normal, std 0.02, as ViTs start them), then each
    block: nn.MultiheadAttention's (in_proj Xavier-uniform, out_proj nn.Linear's, biases 0), nn.Linear's for the MLP,
    layer norms 1 and 0; the final layer norm."""
    d, m, tokens = width, mlp_ratio * width, 1 + (28 // patch) ** 2

    def linear(name, n_in, n_out):
        bound = 1 / np.sqrt(n_in)
        weight = rng.uniform(-bound, bound, (n_out, n_in))
        return {f"{name}.weight": weight, f"{name}.bias": rng.uniform(-bound, bound, n_out)}

    def norm(name):
        return {f"{name}.weight": np.ones(d), f"{name}.bias": np.zeros(d)}
    state = {**linear("tokens.proj", patch * patch, d), "tokens.cls_token": rng.normal(0, 0.02, (1, 1, d)),
             "tokens.pos_embed": rng.normal(0, 0.02, (1, tokens, d))}
    for i in range(1, depth + 1):
        b, bound = f"block{i}", np.sqrt(6 / (d + 3 * d))
        state.update({f"{b}.self_attn.in_proj_weight": rng.uniform(-bound, bound, (3 * d, d)),
                      f"{b}.self_attn.in_proj_bias": np.zeros(3 * d),
                      f"{b}.self_attn.out_proj.weight": linear("o", d, d)["o.weight"],
                      f"{b}.self_attn.out_proj.bias": np.zeros(d),
                      **linear(f"{b}.linear1", d, m), **linear(f"{b}.linear2", m, d), **norm(f"{b}.norm1"),
                      **norm(f"{b}.norm2")})
    return {k: v.astype(dtype) for k, v in {**state, **norm("norm")}.items()}


def initial_weights(rng, hidden, channels=(), kernel_size=3, batch_norm=False, init="he", dtype=np.float32,
                    n_in=784, n_out=10, padding="same", recurrent=None, vit=None) -> dict:
    """The state_dict a network starts from, drawn from rng layer by layer in forward order: the convolutions
    (channels, kernel_size one side for all or one per block; none for an MLP) or the recurrent layers (recurrent:
    (cell, width, depth), reading n_in features a step), then the fully connected layers. A layer that batch norm
    follows has no bias (its bias is still drawn, and dropped, so that the draws do not depend on --batch-norm)."""
    (conv_bn, dense_bn), state, c_in = norms_at(batch_norm), {}, 1
    if recurrent:
        cell, width, depth = recurrent
        state.update(recurrent_state(rng, cell, n_in, width, depth, dtype))
        if conv_bn:
            state.update(batch_norm_state(f"{cell}_bn", width, dtype))
        n_in = width
    if vit:  # (patch, width, depth, mlp_ratio)
        state.update(vit_state(rng, *vit, dtype))
        n_in = vit[1]
    for i, (c, k) in enumerate(zip(channels or (), per_block(kernel_size, channels or ())), start=1):
        W, b = init_weight(c_in * k ** 2, c, rng, init, dtype)  # fan-in C*k*k, as torch counts it
        state[f"conv{i}.weight"] = np.ascontiguousarray(W.T).reshape(c, c_in, k, k)
        state.update(batch_norm_state(f"conv{i}_bn", c, dtype) if conv_bn else {f"conv{i}.bias": b})
        c_in = c
    if channels:
        n_in = c_in * feature_side(channels, kernel_size, padding) ** 2
    sizes = [n_in, *hidden, n_out]
    for i, (a, b_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        W, b = init_weight(a, b_out, rng, init, dtype)
        state[f"fc{i}.weight"] = np.ascontiguousarray(W.T)  # torch's (out, in)
        hidden_bn = dense_bn and i < len(sizes) - 1
        state.update(batch_norm_state(f"fc{i}_bn", b_out, dtype) if hidden_bn else {f"fc{i}.bias": b})
    return state


def for_flags(args) -> dict:
    """initial_weights() of the network these flags describe, drawn from --seed."""
    recurrent = (args.model, args.width, args.depth) if args.model in CELLS else None
    vit = (args.patch, args.width, args.depth, args.mlp_ratio) if args.model == "vit" else None
    return initial_weights(np.random.default_rng(args.seed), args.hidden, args.channels or (), args.kernel_size or 3,
                           args.batch_norm, args.init, np.dtype(args.dtype), n_in=28 if recurrent else 784,
                           padding=args.padding, recurrent=recurrent, vit=vit)
