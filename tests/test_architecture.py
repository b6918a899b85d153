"""common/architecture.py, each model kind's one home, against the networks the twins build: its parameter count is
the models' own, its multiply-adds those of the matrix products the layers run, and its description names the kind."""
import numpy as np
import pytest
import torch

from common import architecture, flags
import numpy_nn.model
import pytorch_nn.model

NETWORKS = {
    "mlp": ["--hidden", "48,24", "--batch-norm"],
    "cnn": ["--model", "cnn", "--channels", "4,8", "--kernel-size", "5,3", "--padding", "valid", "--batch-norm"],
    "rnn": ["--model", "rnn", "--width", "20", "--hidden", "16"],
    "lstm": ["--model", "lstm", "--width", "20", "--depth", "2", "--batch-norm", "features"],
    "gru": ["--model", "gru", "--width", "20", "--steps", "columns", "--batch-norm", "--hidden", "12"],
    "vit": ["--model", "vit", "--width", "16", "--depth", "2", "--heads", "2", "--patch", "4", "--hidden", "12",
            "--batch-norm", "dense"],
}


def parsed(argv):
    return flags.parse_args(flags.make_parser("x"), argv)


@pytest.mark.parametrize("name", NETWORKS)
def test_each_kind_counts_the_parameters_both_twins_build(name):
    args = parsed(NETWORKS[name])
    torch_model = pytorch_nn.model.build(args)
    numpy_params = numpy_nn.model.build(args).params
    assert architecture.n_params(args) == sum(p.numel() for p in torch_model.parameters()) \
        == sum(p.size for p in numpy_params.values())


def test_recurrent_multiply_adds_are_the_products_the_layers_run():
    """An LSTM of 2 layers of 20 units and a dense layer: per image, each step's input and state products (4 gates),
    forward, the weights' gradients, and the gradients at inputs and states (the image's excepted)."""
    args = parsed(["--model", "lstm", "--width", "20", "--depth", "2"])
    rows = 4 * 20
    forward = 28 * (28 * rows + 20 * rows) + 28 * (20 * rows + 20 * rows) + 20 * 10
    inputs = 28 * (20 * rows) + 28 * (20 * rows + 20 * rows) + 20 * 10
    assert architecture.train_flops_per_sample(args) == 2 * (2 * forward + inputs)


@pytest.mark.parametrize("name, words", [("mlp", "MLP 784-48-24-10"), ("cnn", "CNN: unpadded 5x5,3x3 convolutions"),
                                         ("lstm", "LSTM: 2 layers of 20 units over the image's 28 rows"),
                                         ("gru", "GRU: 1 layer of 20 units over the image's 28 columns, batch norm")])
def test_each_kind_describes_itself(name, words):
    assert architecture.describe(parsed(NETWORKS[name])).startswith(words)
