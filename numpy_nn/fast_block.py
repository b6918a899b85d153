"""A CNN's block, convolution -> batch norm (if any) -> 2 x 2 max pooling -> activation, as one layer with one forward
and one backward: numpy_nn/model.py's fast CNN is built of these. tests/test_kernels.py proves a block equal to the
reference layers in sequence (conv.Conv2d, norm.BatchNorm2d, conv.MaxPool2d, the activation), float64 to 1e-12.

Fused because the layers are faster knowing what comes next:
- Pooling order: the convolution hands its output on with the pixels of each 2 x 2 window in four contiguous slabs
  (fast_conv.py's pooled), so that the pooling compares whole slabs instead of rows of C numbers; batch norm takes
  any order of pixels. Where an output side is odd (the pooling floors), the usual order and strided taps.
- The pooling as a tournament over a window's four taps: the top pair's maximum, the bottom pair's, then the greater
  of the two, each comparison kept as booleans. Each winner wins strictly, so that a tie keeps the earlier tap in
  row-major order, the first maximum torch's CPU kernel finds; the backward routes each pair's share by one product
  and one subtraction.
- Batch norm's scale and shift after the pooling, on a quarter of the values: the maxima of the centered values,
  scaled and shifted. Exact where every channel's scale (gamma / std) is positive, as x -> x * scale + beta then
  rounds monotonically (the maximum scaled is the maximum of the scaled, to the bit); else, that step, the usual
  order. The backward's sums for dgamma and dbeta run over the maxima too (the pooled gradient is zero elsewhere).
  The gradient goes to the window's first maximum of the centered values, the reference's to that of the
  normalized ones: the same tap unless rounding made two different values equal (an equally valid subgradient).
- The activation after the pooling, on a quarter of the values: max commutes with any non-decreasing function.
"""
from numpy_nn import fast_conv, fast_norm, layers
from numpy_nn.fast_conv import nchw


def taps(x):
    """(N, 2, 2, H/2, W/2, C) slabs, or (N, H, W, C) -> the four taps of every 2 x 2 window, top left, top right,
    bottom left, bottom right, each (N, H/2, W/2, C): slabs, or strided views (an odd last row or column left out)."""
    if x.ndim == 6:
        return [x[:, i, j] for i in (0, 1) for j in (0, 1)]
    h, w = x.shape[1] // 2 * 2, x.shape[2] // 2 * 2
    return [x[:, i:h:2, j:w:2] for i in (0, 1) for j in (0, 1)]


def tournament(xp, four, won):
    """The windows' maxima (N, H/2, W/2, C); won[0]: the top right beat the top left, won[1]: the same below,
    won[2]: the bottom pair beat the top."""
    out, bottom = xp.empty(four[0].shape, four[0].dtype), xp.empty(four[0].shape, four[0].dtype)
    xp.greater(four[1], four[0], out=won[0])
    xp.maximum(four[0], four[1], out=out)
    xp.greater(four[3], four[2], out=won[1])
    xp.maximum(four[2], four[3], out=bottom)
    xp.greater(bottom, out, out=won[2])
    return xp.maximum(out, bottom, out=out)


def route(xp, d, won, four):
    """The windows' gradients d to the taps that won: d to the pair that won, then within the pair."""
    below = d * won[2]
    for (left, right), pair, right_won in (((0, 1), d - below, won[0]), ((2, 3), below, won[1])):
        xp.multiply(pair, right_won, out=four[right])
        xp.subtract(pair, four[right], out=four[left])


class ConvBlock:
    """conv{i} -> conv{i}_bn -> pool{i} -> conv{i}_{activation}: parts holds the layers with state under those
    names (the model's parameters and torch's state_dict keys); forward and backward run the whole block."""

    def __init__(self, i, c_in, c_out, k, padding, norm, activation, dtype, xp):
        self.xp, self.conv = xp, fast_conv.Conv2d(c_in, c_out, k, padding=padding, dtype=dtype, xp=xp, bias=not norm)
        self.norm = fast_norm.BatchNorm2d(c_out, dtype=dtype, xp=xp) if norm else None
        self.activation = layers.ACTIVATIONS[activation]()
        self.parts = {f"conv{i}": self.conv, **({f"conv{i}_bn": self.norm} if norm else {})}
        self.name = "+".join([f"conv{i}", *([f"conv{i}_bn"] if norm else []), f"pool{i}", f"conv{i}_{activation}"])

    def forward(self, x):
        """x: (N, C, H, W) -> (N, C_out, Ho/2, Wo/2), an NCHW view of channels-last memory."""
        xp = self.xp
        y = self.conv.forward(x, pooled=True)        # (N, 2, 2, Ho/2, Wo/2, C) in pooling order, or (N, C, Ho, Wo)
        y = y if y.ndim == 6 else fast_conv.channels_last(y)
        self.shape = y.shape
        self.deferred = self.norm is not None and bool(xp.all(self.norm.params["gamma"] > 0))
        if self.norm is not None:
            rows = self.norm.normalize(y.reshape(-1, y.shape[-2] * y.shape[-1]), shift=not self.deferred)
            y = rows.reshape(y.shape)
        self.won = xp.empty((3, *taps(y)[0].shape), bool)
        out = tournament(xp, taps(y), self.won)
        if self.deferred:
            self.peaks, rows = out, out.reshape(-1, out.shape[-2] * out.shape[-1])
            out = rows * self.norm.tiled(self.norm.scale, rows)
            out += self.norm.tiled(self.norm.params["beta"], rows)
            out = out.reshape(self.peaks.shape)
        return self.activation.forward(nchw(out))

    def backward(self, dout, need_dx=True):
        """dout: (N, C_out, Ho/2, Wo/2) -> dx: (N, C, H, W); every part's gradients assigned."""
        xp = self.xp
        d = fast_conv.channels_last(self.activation.backward(dout))     # (N, Ho/2, Wo/2, C)
        sums = None
        if self.deferred:  # the norm's two sums over the maxima; its scale is applied in its own backward
            rows, peaks = (a.reshape(-1, a.shape[-2] * a.shape[-1]) for a in (d, self.peaks))  # norm's tiled rows
            sums = self.norm.channels(xp.einsum("ij,ij->j", rows, peaks)), self.norm.channels(rows.sum(axis=0))
        tiles = len(self.shape) == 6 or self.shape[1] % 2 == 0 == self.shape[2] % 2
        full = (xp.empty if tiles else xp.zeros)(self.shape, d.dtype)   # (no zeros where the windows tile)
        route(xp, d, self.won, taps(full))
        if self.norm is not None:
            full = self.norm.gradient(full.reshape(-1, full.shape[-2] * full.shape[-1]), sums).reshape(self.shape)
        return self.conv.backward(full if full.ndim == 6 else nchw(full), need_dx)
