"""Dropout where each twin applies it: with the same masks handed to both (drawn from one stream of uniforms, in the
order the layers draw them), the twins with dropout on the hidden layers and the input are still one network, float64,
step by step, for the MLP, the CNN and the LSTM. Every other parity test turns dropout off, since the twins' own generators
(NumPy's, torch's) draw different masks."""
import numpy as np
import pytest
import torch

import numpy_nn.train
import pytorch_nn.train
from numpy_nn.layers import Dropout
from test_cnn_parity import SMALL
from test_parity import assert_lockstep, losses_and_weights, make_args, with_steps


class Uniforms:
    """One seeded stream of uniforms, drawn in turn by whichever twin's dropout layers it is handed to."""

    def __init__(self, seed):
        self.rng, self.drawn = np.random.default_rng(seed), 0

    def random(self, shape, dtype=np.float64):
        self.drawn += 1
        return self.rng.random(shape).astype(dtype)


def numpy_masks(trainer, seed):
    layers = [layer for layer in trainer.model.parts.values() if isinstance(layer, Dropout)]
    source = Uniforms(seed)
    for layer in layers:
        layer.rng = source  # numpy_nn's Dropout keeps where rng.random(shape) >= p
    return source, len(layers)


def torch_masks(trainer, seed):
    """Each nn.Dropout of the model keeps where the same stream's uniform >= p, scaled by 1/(1-p), in training."""
    source, modules = Uniforms(seed), [m for m in trainer.model.modules() if isinstance(m, torch.nn.Dropout)]
    for module in modules:
        def forward(x, p=module.p, module=module):
            if not module.training:
                return x
            keep = torch.from_numpy(source.random(tuple(x.shape))) >= p
            return x * keep / (1 - p)
        module.forward = forward
    return source, len(modules)


@pytest.mark.parametrize("model, extra", [("mlp", ["--dropout", "0.3", "--input-dropout", "0.2", "--optimizer", "adam",
                                                   "--lr", "2e-3"]),
                                          ("cnn", [*SMALL, "--dropout", "0.4", "--optimizer", "sgd", "--lr", "0.02",
                                                   "--momentum", "0.9"]),
                                          ("lstm", ["--model", "lstm", "--width", "24", "--batch-norm", "features",
                                                    "--input-dropout", "0.2", "--hidden", "24", "--dropout", "0.3",
                                                    "--optimizer", "adam", "--lr", "5e-3"])])
def test_the_twins_apply_dropout_alike(model, extra, mnist64, images64):
    data = images64 if model == "cnn" else mnist64
    args = with_steps(make_args(extra), data)
    args.dropout = float(extra[extra.index("--dropout") + 1])  # (make_args turns it off by default)
    a, b = numpy_nn.train.Trainer(args), pytorch_nn.train.Trainer(args)
    (na, layers_a), (nb, layers_b) = numpy_masks(a, 7), torch_masks(b, 7)
    assert layers_a == layers_b == {"mlp": 3, "cnn": 1, "lstm": 2}[model]  # input and hidden layers; the CNN's dense one
    assert_lockstep(f"{model} with dropout", losses_and_weights(a, data, args), losses_and_weights(b, data, args))
    assert na.drawn == nb.drawn >= 100 * layers_a  # every step drew every layer's mask, in both


def test_different_masks_part_the_twins(mnist64):
    """The check above can fail: with masks from two different streams the first step's losses already differ."""
    args = with_steps(make_args(["--dropout", "0.3"]), mnist64)
    a, b = numpy_nn.train.Trainer(args), pytorch_nn.train.Trainer(args)
    numpy_masks(a, 7), torch_masks(b, 8)
    x, y = a.place(mnist64.x_train[:64], mnist64.y_train[:64])
    assert abs(a.train_step(x, y)[0] - b.train_step(*b.place(mnist64.x_train[:64], mnist64.y_train[:64]))[0]) > 1e-6
