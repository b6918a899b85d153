"""The networks as nn.Sequential with numpy_nn's layer names, started from numpy_nn's initial weights."""
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

import numpy_nn.model
from pytorch_nn.layers import ACTIVATIONS, Dropout, Linear


class MLP(nn.Sequential):
    """784 -> hidden... -> 10, named fc1, relu1, drop1, fc2, ... as numpy_nn's MLP."""

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


def tensors(arrays: dict) -> dict:
    """NumPy arrays (numpy_nn's state_dict(), a weights file) -> a torch state_dict."""
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}


def build(args):
    """The module for these flags, starting from numpy_nn's initial weights for the same seed: one
    initializer for both twins, so that both runs start from the same point."""
    twin = numpy_nn.model.build(args)
    model = MLP(args.hidden, args.activation, args.dropout, input_dropout=args.input_dropout)
    model = model.to(getattr(torch, args.dtype))
    model.load_state_dict(tensors(twin.state_dict()))
    return model
