"""The networks as nn.Sequential with numpy_nn's layer names, started from the initial weights both twins load."""
from collections import OrderedDict
from functools import partial

import numpy as np
import torch
from torch import nn

from common import init
from common.architecture import feature_side, norms_at, pad, per_block
from pytorch_nn.conv import Conv2d, MaxPool2d
from pytorch_nn.layers import ACTIVATIONS, Dropout, Flatten, Linear
from pytorch_nn.norm import BatchNorm1d, BatchNorm2d
from pytorch_nn.attention import ClassToken, Tokens
from pytorch_nn.recurrent import CELLS, Sequence


def dense(sizes, activation, dropout, batch_norm) -> dict:
    """numpy_nn.model.dense, the same layers under the same names."""
    layers, normalized = {}, norms_at(batch_norm)[1]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        hidden = i < len(sizes) - 1
        layers[f"fc{i}"] = Linear(a, b, bias=not (hidden and normalized))
        if hidden:
            if normalized:
                layers[f"fc{i}_bn"] = BatchNorm1d(b)
            layers[f"fc{i}_{activation}"] = ACTIVATIONS[activation]()
            if dropout > 0:
                layers[f"fc{i}_drop"] = Dropout(dropout)
    return layers


class MLP(nn.Sequential):
    def __init__(self, hidden=(128, 64), activation="relu", dropout=0.0, n_in=784, n_out=10, input_dropout=0.0,
                 batch_norm=False):
        layers = {"input_drop": Dropout(input_dropout)} if input_dropout > 0 else {}
        layers.update(dense([n_in, *hidden, n_out], activation, dropout, batch_norm))
        super().__init__(OrderedDict(layers))


class CNN(nn.Sequential):
    def __init__(self, channels=(32, 64), kernel_size=3, hidden=(128,), activation="relu", dropout=0.0,
                 batch_norm=False, n_out=10, padding="same"):
        layers, c_in, conv_bn = {}, 1, norms_at(batch_norm)[0]
        for i, (c, k) in enumerate(zip(channels, per_block(kernel_size, channels)), start=1):
            layers[f"conv{i}"] = Conv2d(c_in, c, k, padding=pad(k, padding), bias=not conv_bn)
            if conv_bn:
                layers[f"conv{i}_bn"] = BatchNorm2d(c)
            layers[f"pool{i}"] = MaxPool2d(2)  # before the activation, as numpy_nn (see there)
            layers[f"conv{i}_{activation}"] = ACTIVATIONS[activation]()
            c_in = c
        layers["flatten"] = Flatten()
        n_features = c_in * feature_side(channels, kernel_size, padding) ** 2
        layers.update(dense([n_features, *hidden, n_out], activation, dropout, batch_norm))
        super().__init__(OrderedDict(layers))


class RecurrentNet(nn.Sequential):
    def __init__(self, cell="lstm", width=128, depth=1, steps="rows", hidden=(), activation="relu", dropout=0.0,
                 batch_norm=False, n_out=10, input_dropout=0.0):
        layers = {"sequence": Sequence(steps), cell: CELLS[cell](28, width, depth, batch_first=True)}
        if norms_at(batch_norm)[0]:
            layers[f"{cell}_bn"] = BatchNorm1d(width)
        if input_dropout > 0:
            layers[f"{cell}_drop"] = Dropout(input_dropout)
        layers.update(dense([width, *hidden, n_out], activation, dropout, batch_norm))
        super().__init__(OrderedDict(layers))


class ViT(nn.Sequential):
    def __init__(self, patch=7, width=64, depth=2, heads=4, mlp_ratio=2, hidden=(), activation="relu", dropout=0.0,
                 batch_norm=None, n_out=10):
        gelu = partial(nn.functional.gelu, approximate="tanh")  # numpy_nn's GELU (numpy_nn/attention.py says why)
        layers = {"tokens": Tokens(patch, width)}
        for i in range(1, depth + 1):
            layers[f"block{i}"] = nn.TransformerEncoderLayer(width, heads, mlp_ratio * width, dropout=0.0,
                                                             activation=gelu, batch_first=True, norm_first=True)
        layers.update({"norm": nn.LayerNorm(width), "cls": ClassToken()})
        layers.update(dense([width, *hidden, n_out], activation, dropout, batch_norm))
        super().__init__(OrderedDict(layers))


def tensors(arrays: dict) -> dict:
    """NumPy arrays (numpy_nn's state_dict(), a weights file) -> a torch state_dict."""
    return {k: torch.from_numpy(np.asarray(v, order="C")) for k, v in arrays.items()}


def build(args):
    """The module for these flags, starting from common/init.py's initial weights for --seed, which numpy_nn
    loads too: one initializer for both twins, so that both runs start from the same point."""
    if args.model == "cnn":
        model = CNN(args.channels, args.kernel_size, args.hidden, args.activation, args.dropout, args.batch_norm,
                    padding=args.padding)
    elif args.model == "vit":
        model = ViT(args.patch, args.width, args.depth, args.heads, args.mlp_ratio, args.hidden, args.activation,
                    args.dropout, args.batch_norm)
    elif args.model in CELLS:
        model = RecurrentNet(args.model, args.width, args.depth, args.steps, args.hidden, args.activation, args.dropout,
                             args.batch_norm, input_dropout=args.input_dropout)
    else:
        model = MLP(args.hidden, args.activation, args.dropout, input_dropout=args.input_dropout,
                    batch_norm=args.batch_norm)
    model = model.to(getattr(torch, args.dtype))
    model.load_state_dict(tensors(init.for_flags(args)))
    return model
