"""The networks as ordered lists of named layers: forward in order, backward in reverse."""
import numpy as np

from common.architecture import CELLS as RECURRENT_CELLS, decayed, feature_side, norms_at, pad, per_block
from common.init import initial_weights
from common.weights import check_match
from numpy_nn import attention, conv, fast_attention, fast_block, fast_norm, layers as plain, norm, recurrent
from numpy_nn.layers import Dropout, Flatten, array_module

# --kernels: the module a model's batch norms come from, and whether a CNN's blocks are its reference layers one
# after another (conv.py, norm.py: written to be read) or fast_block.ConvBlock, tested equal to them.
NORMS = {"reference": norm, "fast": fast_norm}
ATTENTION = {"reference": attention.SelfAttention, "fast": fast_attention.SelfAttention}  # a ViT's self-attention


ALIGN = 16  # elements: each tensor in the flat buffers starts on a 64-byte boundary, as BLAS likes


class Sequential:
    """Named layers run in order. Parameter names ("fc1.W") follow the layer names, which are pytorch_nn's,
    and state_dict() gives every tensor under torch's own name and layout ("fc1.weight", (out, in)).

    Every parameter is a view into one flat buffer (flat_params), every gradient into another (flat_grads):
    the layers keep their named arrays, and an optimizer can update the whole model in a dozen array
    operations instead of a dozen per tensor, as torch.optim's fused kernels do in C++.

    A fused layer (fast_block.ConvBlock) runs as one, under its name joining its parts' ("conv1+conv1_bn+...");
    its parts, the layers that hold its state, are named one by one in `parts`, as in pytorch_nn.
    """

    def __init__(self, layers: dict):
        self.layers = layers
        self.parts = {n: p for name, layer in layers.items()
                      for n, p in getattr(layer, "parts", {name: layer}).items()}  # every layer with state, by name
        self.flat_params, self.params = self._flatten("params")  # name -> view into the flat buffer
        self.flat_grads, self.grads = self._flatten("grads")
        self.first = next(layer for layer in layers.values()
                          if any(getattr(p, "params", None) for p in getattr(layer, "parts", {0: layer}).values()))

    def _flatten(self, attr):
        """Move every layer's `attr` arrays into one buffer and hand each layer back views of it."""
        named = [(layer, k, v) for layer in self.parts.values() for k, v in getattr(layer, attr, {}).items()]
        offsets, end = [], 0
        for _, _, v in named:
            offsets.append(end)
            end += -(-v.size // ALIGN) * ALIGN
        xp = getattr(named[0][0], "xp", np)
        flat = xp.zeros(end, named[0][2].dtype)
        for (layer, k, v), start in zip(named, offsets):
            view = flat[start:start + v.size].reshape(v.shape)
            view[...] = v
            getattr(layer, attr)[k] = view
        names = [f"{name}.{k}" for name, layer in self.parts.items() for k in getattr(layer, attr, {})]
        self.starts = dict(zip(names, offsets))  # (the same for params and grads: one layout)
        return flat, dict(zip(names, (getattr(layer, attr)[k] for layer, k, _ in named)))

    def decay_mask(self):
        """1 on the elements of flat_params that --decay matrices decays (common/architecture.decayed), 0 elsewhere."""
        mask = array_module(self.flat_params).zeros_like(self.flat_params)
        for name, p in self.params.items():
            if decayed(name, p.ndim):
                mask[self.starts[name]:self.starts[name] + p.size] = 1
        return mask

    @property
    def dropouts(self) -> list:
        return [layer for layer in self.parts.values() if isinstance(layer, Dropout) and layer.p > 0]

    def share(self, group):
        """Make this model one of the processes that share each batch (a numpy_nn/replicas.py Group; None: on its
        own again): its batch norms add their sums over the group, its dropout layers draw the whole batch's
        mask and keep their rows of it."""
        for layer in self.parts.values():
            if hasattr(layer, "group"):
                layer.group = group
        for layer in self.dropouts:
            layer.rng = self.mask_rng if group is None else group.masks(self.mask_rng)

    def train(self, mode=True):
        """Training mode (dropout masks, batch statistics) or evaluation mode, like nn.Module.train."""
        for layer in self.parts.values():
            if hasattr(layer, "training"):
                layer.training = mode

    def forward(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def backward(self, dlogits):
        """Fill every layer's grads from dlogits (N, 10). Backprop stops at the first layer with parameters:
        nothing before it has any, so the gradient with respect to the input is never computed."""
        dout = dlogits
        for name, layer in reversed(self.layers.items()):
            if layer is self.first:
                layer.backward(dout, need_dx=False)
                return
            dout = layer.backward(dout)

    def state_dict(self) -> dict:
        """Every tensor the model keeps (parameters and buffers) as torch names it, as views, not copies."""
        return {f"{name}.{k}": v for name, layer in self.parts.items() if hasattr(layer, "state_dict")
                for k, v in layer.state_dict().items()}

    def torch_grads(self) -> dict:
        """The gradients under the names and layouts of the torch parameters they belong to."""
        return {f"{name}.{k}": v for name, layer in self.parts.items() if hasattr(layer, "torch_layout")
                for k, v in layer.torch_layout(layer.grads).items()}

    def load_state_dict(self, arrays: dict):
        """Copy arrays in, under torch's names and layouts; names and shapes must match this model's."""
        check_match(arrays, self.state_dict())
        for name, layer in self.parts.items():
            if hasattr(layer, "load_state_dict"):
                prefix = f"{name}."
                layer.load_state_dict({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})


def dense(sizes, activation, dropout, batch_norm, mask_rng, dtype, xp, kernels) -> dict:
    """Fully connected layers sizes[0] -> ... -> sizes[-1]; each hidden one followed by batch norm (if
    batch_norm puts it there, and then no bias before it), the activation and dropout. Named fc1, fc1_bn,
    fc1_relu, fc1_drop, fc2, ... as in pytorch_nn."""
    layers, normalized = {}, norms_at(batch_norm)[1]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        hidden = i < len(sizes) - 1
        layers[f"fc{i}"] = plain.Linear(a, b, dtype=dtype, xp=xp, bias=not (hidden and normalized))
        if hidden:
            if normalized:
                layers[f"fc{i}_bn"] = NORMS[kernels].BatchNorm1d(b, dtype=dtype, xp=xp)
            layers[f"fc{i}_{activation}"] = plain.ACTIVATIONS[activation]()
            if dropout > 0:
                layers[f"fc{i}_drop"] = Dropout(dropout, mask_rng)
    return layers


def generators(seed, xp):
    """Weights first, then dropout masks, from one stream (on a GPU the masks come from the GPU's own)."""
    rng = np.random.default_rng(seed)
    return rng, (rng if xp is np else xp.random.default_rng(seed))


class MLP(Sequential):
    """784 -> hidden... -> 10 (input dropout first, if asked)."""

    def __init__(self, hidden=(128, 64), activation="relu", dropout=0.0, init="he", seed=0,
                 dtype=np.float32, n_in=784, n_out=10, xp=np, input_dropout=0.0, batch_norm=False, kernels="fast"):
        rng, mask_rng = generators(seed, xp)
        layers = {"input_drop": Dropout(input_dropout, mask_rng)} if input_dropout > 0 else {}
        layers.update(dense([n_in, *hidden, n_out], activation, dropout, batch_norm, mask_rng, dtype, xp, kernels))
        super().__init__(layers)
        self.load_state_dict(initial_weights(rng, hidden, (), batch_norm=batch_norm, init=init, dtype=dtype,
                                             n_in=n_in, n_out=n_out))
        self.mask_rng = mask_rng


class CNN(Sequential):
    """(N, 1, 28, 28) -> per entry of channels: k x k convolution (kernel_size: one k for all blocks or one
    per block), batch norm (if asked), 2 x 2 max pooling, activation -> flatten -> hidden layers -> 10."""

    def __init__(self, channels=(32, 64), kernel_size=3, hidden=(128,), activation="relu", dropout=0.0,
                 batch_norm=False, init="he", seed=0, dtype=np.float32, n_out=10, xp=np, kernels="fast", padding="same"):
        rng, mask_rng = generators(seed, xp)
        layers, c_in, conv_bn = {}, 1, norms_at(batch_norm)[0]
        for i, (c, k) in enumerate(zip(channels, per_block(kernel_size, channels)), start=1):
            if kernels == "fast":
                block = fast_block.ConvBlock(i, c_in, c, k, pad(k, padding), conv_bn, activation, dtype, xp)
                layers[block.name] = block
            else:
                layers[f"conv{i}"] = conv.Conv2d(c_in, c, k, padding=pad(k, padding), dtype=dtype, xp=xp,
                                                 bias=not conv_bn)
                if conv_bn:
                    layers[f"conv{i}_bn"] = norm.BatchNorm2d(c, dtype=dtype, xp=xp)
                # pooling before the activation: the same numbers, as max commutes with a non-decreasing function,
                # and the activation then touches a quarter of the values
                layers[f"pool{i}"] = conv.MaxPool2d(2)
                layers[f"conv{i}_{activation}"] = plain.ACTIVATIONS[activation]()
            c_in = c
        layers["flatten"] = Flatten()
        n_features = c_in * feature_side(channels, kernel_size, padding) ** 2
        layers.update(dense([n_features, *hidden, n_out], activation, dropout, batch_norm, mask_rng, dtype, xp, kernels))
        super().__init__(layers)
        self.load_state_dict(initial_weights(rng, hidden, channels, kernel_size, batch_norm, init, dtype, n_out=n_out,
                                             padding=padding))
        self.mask_rng = mask_rng


class RecurrentNet(Sequential):
    """(N, 784) -> 28 time steps of 28 pixels (the rows or the columns) -> depth recurrent layers of width units
    (cell: rnn, lstm or gru) -> the top layer's last state, batch-normalized and dropped out if asked -> hidden
    layers -> 10."""

    def __init__(self, cell="lstm", width=128, depth=1, steps="rows", hidden=(), activation="relu", dropout=0.0,
                 batch_norm=False, init="he", seed=0, dtype=np.float32, n_out=10, xp=np, kernels="fast",
                 input_dropout=0.0):
        rng, mask_rng = generators(seed, xp)
        layers = {"sequence": recurrent.Sequence(steps),
                  cell: recurrent.Recurrent(cell, 28, width, depth, dtype, xp)}  # (the loop in both kernel sets)
        if norms_at(batch_norm)[0]:
            layers[f"{cell}_bn"] = NORMS[kernels].BatchNorm1d(width, dtype=dtype, xp=xp)
        if input_dropout > 0:  # on the dense layers' input, as an MLP's on its pixels
            layers[f"{cell}_drop"] = Dropout(input_dropout, mask_rng)
        layers.update(dense([width, *hidden, n_out], activation, dropout, batch_norm, mask_rng, dtype, xp, kernels))
        super().__init__(layers)
        self.load_state_dict(initial_weights(rng, hidden, batch_norm=batch_norm, init=init, dtype=dtype, n_in=28,
                                             n_out=n_out, recurrent=(cell, width, depth)))
        self.mask_rng = mask_rng


class ViT(Sequential):
    """(N, 784) -> tokens (patches embedded, class token, positions) -> depth pre-norm encoder blocks -> layer norm ->
    the class token's features -> hidden layers -> 10."""

    def __init__(self, patch=7, width=64, depth=2, heads=4, mlp_ratio=2, hidden=(), activation="relu", dropout=0.0,
                 batch_norm=None, init="he", seed=0, dtype=np.float32, n_out=10, xp=np, kernels="fast"):
        rng, mask_rng = generators(seed, xp)
        layers = {"tokens": attention.Tokens(patch, width, dtype, xp)}
        for i in range(1, depth + 1):
            layers[f"block{i}"] = attention.EncoderBlock(f"block{i}", width, heads, mlp_ratio, dtype, xp,
                                                         ATTENTION[kernels])
        layers.update({"norm": attention.LayerNorm(width, dtype=dtype, xp=xp), "cls": attention.ClassToken()})
        layers.update(dense([width, *hidden, n_out], activation, dropout, batch_norm, mask_rng, dtype, xp, "fast"))
        super().__init__(layers)
        self.load_state_dict(initial_weights(rng, hidden, batch_norm=batch_norm, init=init, dtype=dtype, n_out=n_out,
                                             vit=(patch, width, depth, mlp_ratio)))
        self.mask_rng = mask_rng


def build(args, xp=np):
    """The network these flags describe, its initial weights drawn from --seed."""
    dtype, kernels = np.dtype(args.dtype), getattr(args, "kernels", "fast")
    if args.model == "cnn":
        return CNN(args.channels, args.kernel_size, args.hidden, args.activation, args.dropout, args.batch_norm,
                   args.init, args.seed, dtype, xp=xp, kernels=kernels, padding=args.padding)
    if args.model == "vit":
        return ViT(args.patch, args.width, args.depth, args.heads, args.mlp_ratio, args.hidden, args.activation,
                   args.dropout, args.batch_norm, args.init, args.seed, dtype, xp=xp, kernels=kernels)
    if args.model in RECURRENT_CELLS:
        return RecurrentNet(args.model, args.width, args.depth, args.steps, args.hidden, args.activation, args.dropout,
                            args.batch_norm, args.init, args.seed, dtype, xp=xp, kernels=kernels,
                            input_dropout=args.input_dropout)
    return MLP(args.hidden, args.activation, args.dropout, args.init, args.seed, dtype, xp=xp,
               input_dropout=args.input_dropout, batch_norm=args.batch_norm, kernels=kernels)
