"""The shapes and arithmetic of the networks the flags describe, the same for both twins.

Each model kind has one home here: a class that says what comes before the dense head (the kind's own layers), as
products (their multiply-adds), parameters, the features it hands the dense head, and its description. The dense
head (--hidden, then 10 outputs) is common to every kind; the functions at the end add it."""
from __future__ import annotations


PADDINGS = ("same", "valid")  # --padding: k // 2 on each edge (28 -> 28 for odd k), or none (28 -> 28 - k + 1)
# --batch-norm: after the kind's own layers (each convolution, the recurrent layers' output) and every hidden dense
# layer; after the hidden dense layers only; after the kind's own layers only
BATCH_NORMS = ("all", "dense", "features")
CELLS = {"rnn": 1, "lstm": 4, "gru": 3}  # the recurrent kinds, and the gate blocks of H rows in their weights
STEPS = ("rows", "columns")  # --steps: the image read top to bottom (a row per time step) or left to right


def norms_at(batch_norm) -> tuple[bool, bool]:
    """--batch-norm's value (None: none; True, from Python, is "all") -> (batch norm after the kind's own layers,
    after each hidden dense layer)."""
    return batch_norm in (True, "all", "features"), batch_norm in (True, "all", "dense")


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


class MLP:
    """The 784 pixels straight into the dense layers."""
    flags, defaults = ("input_dropout",), {"hidden": (128, 64)}

    def products(self, a):
        return []

    def features(self, a):
        return 784

    def params(self, a):
        return 0

    def describe(self, a, norm, dense):
        return f"MLP 784-{dense}, {a.activation}{norm}"


class CNN:
    """Convolution blocks (k x k convolution, batch norm, 2 x 2 max pooling, activation), then flattened."""
    flags, defaults = ("channels", "kernel_size", "padding"), {"channels": (32, 64), "kernel_size": (3,),
                                                                "hidden": (128,)}

    def blocks(self, a):
        return zip(a.channels, per_block(a.kernel_size, a.channels))

    def products(self, a):
        """Per block: (multiply-adds of its forward, of its input's gradient: none for the image's)."""
        out, side, c_in = [], 28, 1
        for c, k in self.blocks(a):
            conv = conv_side(side, k, a.padding)
            macs = conv * conv * c * c_in * k ** 2
            out.append((macs, macs if out else 0))
            side, c_in = conv // 2, c
        return out

    def features(self, a):
        return a.channels[-1] * feature_side(a.channels, a.kernel_size, a.padding) ** 2

    def params(self, a):
        c_in, n = 1, 0
        for c, k in self.blocks(a):
            n += c * c_in * k ** 2 + 2 * c if norms_at(a.batch_norm)[0] else c * c_in * k ** 2 + c
            c_in = c
        return n

    def describe(self, a, norm, dense):
        kernels = ",".join(f"{k}x{k}" for _, k in self.blocks(a))
        valid = "unpadded " if a.padding == "valid" else ""
        return (f"CNN: {valid}{kernels} convolutions of {','.join(map(str, a.channels))} channels{norm}, 2x2 max "
                f"pooling, {a.activation}; dense {dense}")


class Recurrent:
    """The image as a sequence of 28 time steps of 28 pixels (its rows or its columns) through --depth stacked
    recurrent layers of --width units; the top layer's state after the last step is the features."""
    flags = ("width", "depth", "steps", "input_dropout")
    defaults = {"width": 128, "depth": 1, "steps": "rows", "hidden": ()}

    def __init__(self, cell):
        self.cell, self.gates = cell, CELLS[cell]

    def products(self, a):
        """Per layer, over the 28 steps: (multiply-adds of its forward, of its gradients at its input and state: the
        first layer's input, the image, needs none)."""
        out = []
        for k in range(a.depth):
            n_in = 28 if k == 0 else a.width
            rows = self.gates * a.width
            out.append((28 * (n_in + a.width) * rows, 28 * ((n_in if k else 0) + a.width) * rows))
        return out

    def features(self, a):
        return a.width

    def params(self, a):
        rows = self.gates * a.width
        n = sum(rows * ((28 if k == 0 else a.width) + a.width + 2) for k in range(a.depth))
        return n + (2 * a.width if norms_at(a.batch_norm)[0] else 0)

    def describe(self, a, norm, dense):
        layers = f"{a.depth} layers" if a.depth > 1 else "1 layer"
        return f"{self.cell.upper()}: {layers} of {a.width} units over the image's 28 {a.steps}{norm}; dense {dense}"


class ViT:
    """A Vision Transformer: the image cut into (28 / patch)^2 patches, each embedded into --width features, a class
    token and position embeddings, --depth pre-norm encoder blocks (--heads heads, an MLP of --mlp-ratio x width),
    a final layer norm; the class token's features go to the dense head."""
    flags = ("width", "depth", "patch", "heads", "mlp_ratio")
    defaults = {"width": 64, "depth": 2, "patch": 7, "heads": 4, "mlp_ratio": 2, "hidden": ()}

    def products(self, a):
        t, d, m = 1 + (28 // a.patch) ** 2, a.width, a.mlp_ratio * a.width
        block = t * 3 * d * d + 2 * t * t * d + t * d * d + 2 * t * d * m  # q, k, v; scores and A v; out; the MLP
        return [((t - 1) * a.patch ** 2 * d, 0)] + [(block, block)] * a.depth

    def features(self, a):
        return a.width

    def params(self, a):
        t, d, m = 1 + (28 // a.patch) ** 2, a.width, a.mlp_ratio * a.width
        return a.patch ** 2 * d + d + d + t * d + a.depth * (4 * d * d + 4 * d + 2 * d * m + m + d + 4 * d) + 2 * d

    def describe(self, a, norm, dense):
        return (f"ViT: {a.patch}x{a.patch} patches, {a.depth} block{'s' * (a.depth > 1)} of width {a.width}, "
                f"{a.heads} heads, MLP {a.mlp_ratio}x{norm}; dense {dense}")


KINDS = {"mlp": MLP(), "cnn": CNN(), **{cell: Recurrent(cell) for cell in CELLS}, "vit": ViT()}


def kind(args):
    return KINDS[args.model]


def dense_sizes(args) -> list[int]:
    return [kind(args).features(args), *args.hidden, 10]


def train_flops_per_sample(args) -> int:
    """Multiply-adds x 2 of one training step per sample for the matrix products: forward, the weight gradient of
    every layer and the input gradient of all but the first (nothing needs the image's). Elementwise work
    (activations, pooling, batch norm, the optimizer) is left out."""
    sizes = dense_sizes(args)
    body = kind(args).products(args)
    dense = [(a * b, a * b if (i or body) else 0) for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
    return 2 * sum(2 * forward + dx for forward, dx in body + dense)


def n_params(args) -> int:
    """Weights and biases of the network (batch-norm's gamma and beta included, its statistics not)."""
    sizes, dense_bn = dense_sizes(args), norms_at(args.batch_norm)[1]
    n = kind(args).params(args)
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        n += a * b + (2 * b if dense_bn and i < len(sizes) - 2 else b)
    return n


def memory_needed(args) -> int:
    """Bytes a training run holds for its parameters, about: weights, gradients, two optimizer moments and a
    scratch buffer, the initial weights drawn on the host (common/init.py) before the model loads them, and
    the float64 draw of the largest initial weight matrix. Activations are left out: they scale with the batch."""
    itemsize = 8 if args.dtype == "float64" else 4
    sizes = dense_sizes(args)
    largest = max(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return n_params(args) * itemsize * 7 + largest * 8


def describe(args) -> str:
    """The network in a few words, as a report's header names it."""
    norm = {(True, True): ", batch norm", (False, True): ", batch norm in the dense layers",
            (True, False): ", batch norm before the dense layers"}.get(norms_at(args.batch_norm), "")
    return kind(args).describe(args, norm, "-".join(map(str, [*args.hidden, 10])))


# The flags that fit some model kinds only, and those kinds (each kind's `flags` above)
ONLY_FOR = {flag: tuple(m for m, k in KINDS.items() if flag in k.flags) for k in KINDS.values() for flag in k.flags}


def kinds(models) -> str:
    return ", ".join(models[:-1]) + " or " + models[-1] if len(models) > 1 else models[0]


def misplaced(args, given) -> str | None:
    """The line for a flag given that does not fit args.model (ONLY_FOR), or None."""
    for flag, models in ONLY_FOR.items():
        if flag in given and args.model not in models:
            return f"--{flag.replace('_', '-')} applies to --model {kinds(models)}, not {args.model}"
    if args.model == "vit" and args.batch_norm not in (None, "dense"):
        return f"--batch-norm {args.batch_norm}: a ViT's tokens have layer norm; use --batch-norm dense (the dense layers)"
    if args.batch_norm == "features" and args.model == "mlp":
        return "--batch-norm features applies to a model with layers of its own before the dense ones (cnn, rnn, " \
               "lstm, gru), not mlp; use --batch-norm dense"
    return None


def fill_defaults(args, from_file=False) -> None:
    """The model kind's defaults for its flags left unset, and none of the other kinds' flags that have no default
    (an MLP has no --channels), or no input dropout; with --evaluate or --resume (from_file), the kind's defaults wait
    for the file's record (common/cli.py calls this again once it has read it)."""
    if from_file:
        return
    for k, v in KINDS[args.model].defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    for flag, models in ONLY_FOR.items():
        if args.model not in models and flag not in ("padding",):
            setattr(args, flag, 0.0 if flag == "input_dropout" else None)


def decayed(name: str, ndim: int) -> bool:
    """Whether --decay matrices lets --weight-decay act on a parameter: the weight matrices and convolution kernels
    (ndim >= 2), not biases, norms' scales and shifts, nor a ViT's class token and position embeddings (timm's rule)."""
    return ndim >= 2 and name.rsplit(".", 1)[-1] not in ("cls_token", "pos_embed")
