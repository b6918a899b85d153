"""Each --init draws the distribution it names (common/init.py, the one draw both twins load), checked by the moments
of a large draw: He N(0, 2/fan_in), Xavier N(0, 2/(fan_in + fan_out)), torch's U(+-1/sqrt(fan_in)) for weights and
biases; a convolution's fan-in is C*k*k, as torch counts it. The parity tests only see that both twins load it."""
import numpy as np
import pytest

from common import flags, init

N_IN, N_OUT = 400, 600  # 240,000 weights: moments to about 0.5 %


def moments(a):
    a = np.asarray(a, np.float64).ravel()
    centered = a - a.mean()
    var = centered.var()
    return a.mean(), var, (centered ** 4).mean() / var ** 2 - 3  # mean, variance, excess kurtosis


@pytest.mark.parametrize("name, variance, kurtosis", [("he", 2 / N_IN, 0.0), ("xavier", 2 / (N_IN + N_OUT), 0.0),
                                                      ("torch", 1 / (3 * N_IN), -1.2)])
def test_each_init_draws_the_distribution_it_names(name, variance, kurtosis):
    W, b = init.init_weight(N_IN, N_OUT, np.random.default_rng(0), name, np.float64)
    mean, var, kurt = moments(W)
    assert abs(mean) < 5 * np.sqrt(variance / W.size), (name, mean)
    assert abs(var / variance - 1) < 0.02, (name, var, variance)
    assert abs(kurt - kurtosis) < 0.05, (name, kurt)  # normal 0, uniform -1.2: tells the shapes apart
    if name == "torch":
        bound = 1 / np.sqrt(N_IN)
        assert np.abs(W).max() <= bound and np.abs(W).max() > 0.999 * bound
        assert np.abs(b).max() <= bound and abs(b.var() / (bound ** 2 / 3) - 1) < 0.2
    else:
        assert not b.any()  # biases start at zero


def test_a_convolutions_fan_in_counts_its_channels_and_kernel():
    parser = flags.make_parser("t")
    args = flags.parse_args(parser, ["--model", "cnn", "--channels", "512,64", "--kernel-size", "3", "--init", "he"])
    state = init.for_flags(args)
    for name, fan_in in (("conv1.weight", 1 * 9), ("conv2.weight", 512 * 9)):
        var = moments(state[name])[1]
        assert abs(var / (2 / fan_in) - 1) < 0.1, (name, var, 2 / fan_in)
    assert state["conv2.weight"].shape == (64, 512, 3, 3)  # torch's (out, in, k, k)
