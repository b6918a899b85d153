"""The shapes and arithmetic of the networks the flags describe, the same for both twins."""
from __future__ import annotations


PADDINGS = ("same", "valid")  # --padding: k // 2 on each edge (28 -> 28 for odd k), or none (28 -> 28 - k + 1)
BATCH_NORMS = ("all", "dense")  # --batch-norm: after every convolution and hidden dense layer, or the dense ones only


def norms_at(batch_norm) -> tuple[bool, bool]:
    """--batch-norm's value (None: none; True, from Python, is "all") -> (batch norm after each convolution, after
    each hidden dense layer)."""
    return batch_norm is True or batch_norm == "all", bool(batch_norm)


def pad(kernel_size: int, padding: str = "same") -> int:
    """The pixels a convolution pads each edge with."""
    return kernel_size // 2 if padding == "same" else 0


def conv_side(side: int, kernel_size: int, padding: str = "same") -> int:
    """A convolution's output side, stride 1."""
    return side + 2 * pad(kernel_size, padding) - kernel_size + 1


def per_block(kernel_size, channels) -> tuple:
    """The kernel side of each block: one size for all (3, or (3,)) or one per block ((5, 3))."""
    sizes = (kernel_size,) if isinstance(kernel_size, int) else tuple(kernel_size)
    if sizes and max(sizes) > 28:
        raise ValueError(f"--kernel-size {','.join(map(str, sizes))}: a kernel larger than the 28x28 image")
    if len(sizes) == 1:
        return sizes * len(channels)
    if len(sizes) != len(channels):
        raise ValueError(f"--kernel-size {','.join(map(str, sizes))}: {len(sizes)} sizes for {len(channels)} blocks "
                         f"(--channels {','.join(map(str, channels))}); give one for all or one per block")
    return sizes


def feature_side(channels, kernel_size, padding="same", side=28) -> int:
    """The feature maps' side after the convolution blocks: each 2 x 2 pooling halves, flooring (28 -> 14 -> 7 -> 3
    with "same" padding; 28 -> 24 -> 12 -> 10 -> 5 for 5x5 and 3x3 kernels with "valid")."""
    for k in per_block(kernel_size, channels):
        side = conv_side(side, k, padding) // 2
    return side


def train_flops_per_sample(args) -> int:
    """Multiply-adds x 2 of one training step per sample for the matrix products: forward, the weight
    gradient of every layer and the input gradient of all but the first (nothing needs the image's).
    Elementwise work (activations, pooling, batch norm, the optimizer) is left out."""
    macs, side, c_in, n_in = [], 28, 1, 784
    if args.model == "cnn":
        for c, k in zip(args.channels, per_block(args.kernel_size, args.channels)):
            out = conv_side(side, k, args.padding)
            macs.append(out * out * c * c_in * k ** 2)
            side, c_in = out // 2, c
        n_in = c_in * side * side
    sizes = [n_in, *args.hidden, 10]
    macs += [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    return 2 * (sum(macs) + sum(macs) + sum(macs[1:]))


def n_params(args) -> int:
    """Weights and biases of the network (batch-norm's gamma and beta included, its statistics not)."""
    n, side, c_in, n_in = 0, 28, 1, 784
    conv_bn, dense_bn = norms_at(args.batch_norm)
    if args.model == "cnn":
        for c, k in zip(args.channels, per_block(args.kernel_size, args.channels)):
            n += c * c_in * k ** 2 + (2 * c if conv_bn else c)
            side, c_in = conv_side(side, k, args.padding) // 2, c
        n_in = c_in * side * side
    sizes = [n_in, *args.hidden, 10]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        hidden_bn = dense_bn and i < len(sizes) - 2
        n += a * b + (2 * b if hidden_bn else b)
    return n


def memory_needed(args) -> int:
    """Bytes a training run holds for its parameters, about: weights, gradients, two optimizer moments and a
    scratch buffer, the initial weights drawn on the host (common/init.py) before the model loads them, and
    the float64 draw of the largest initial weight matrix. Activations are left out: they scale with the batch."""
    itemsize = 8 if args.dtype == "float64" else 4
    sizes = [784 if args.model == "mlp" else 0, *args.hidden, 10]
    largest = max(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return n_params(args) * itemsize * 7 + largest * 8


def describe(args) -> str:
    """The network in a few words, as a report's header names it."""
    norm = {(True, True): ", batch norm", (False, True): ", batch norm in the dense layers"}.get(
        norms_at(args.batch_norm), "")
    dense = "-".join(map(str, [*args.hidden, 10]))
    if args.model == "cnn":
        kernels = ",".join(f"{k}x{k}" for k in per_block(args.kernel_size, args.channels))
        valid = "unpadded " if args.padding == "valid" else ""
        return (f"CNN: {valid}{kernels} convolutions of {','.join(map(str, args.channels))} channels{norm}, 2x2 max "
                f"pooling, {args.activation}; dense {dense}")
    return f"MLP 784-{dense}, {args.activation}{norm}"
