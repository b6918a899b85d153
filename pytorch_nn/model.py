"""The MLP as an nn.Sequential with the same layer names as numpy_nn's, and weight interchange between them."""
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

import numpy_nn.model
from pytorch_nn.layers import ACTIVATIONS, Dropout, Linear


class MLP(nn.Sequential):
    """784 -> hidden... -> 10, named fc1, relu1, drop1, fc2, ...: state_dict keys "fc1.weight" match
    numpy_nn's "fc1.W" (transposed)."""

    def __init__(self, hidden=(128, 64), activation="relu", dropout=0.0, n_in=784, n_out=10, input_dropout=0.0):
        sizes = [n_in, *hidden, n_out]
        layers = OrderedDict()
        if input_dropout > 0:
            layers["drop0"] = Dropout(input_dropout)
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            layers[f"fc{i}"] = Linear(a, b)
            if i < len(sizes) - 1:
                layers[f"{activation}{i}"] = ACTIVATIONS[activation]()
                if dropout > 0:
                    layers[f"drop{i}"] = Dropout(dropout)
        super().__init__(layers)


def state_dict_from_numpy(params):
    """numpy_nn parameters -> a state_dict. W is (in, out) there, weight is (out, in) here: transpose."""
    sd = {}
    for name, p in params.items():
        layer, kind = name.rsplit(".", 1)
        sd[f"{layer}.{'weight' if kind == 'W' else 'bias'}"] = torch.from_numpy(np.ascontiguousarray(p.T if kind == "W" else p))
    return sd


def numpy_from_state_dict(state_dict):
    """A state_dict -> numpy_nn parameters (the inverse of state_dict_from_numpy)."""
    params = {}
    for name, t in state_dict.items():
        layer, kind = name.rsplit(".", 1)
        a = t.detach().cpu().numpy()
        params[f"{layer}.{'W' if kind == 'weight' else 'b'}"] = np.ascontiguousarray(a.T if kind == "weight" else a)
    return params


def build(args):
    """The module for these flags, starting from numpy_nn's initial weights for the same seed: one
    initializer for both twins, so that both runs start from the same point."""
    dtype = np.dtype(args.dtype)
    twin = numpy_nn.model.MLP(args.hidden, args.activation, args.dropout, args.init, args.seed, dtype)
    model = MLP(args.hidden, args.activation, args.dropout, input_dropout=args.input_dropout)
    model = model.to(getattr(torch, args.dtype))
    model.load_state_dict(state_dict_from_numpy(twin.params))
    return model
