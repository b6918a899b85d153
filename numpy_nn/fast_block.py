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
- One input channel (the first block), every scale positive: batch norm with no pass over the full-size output but
  the pooling's. The output Y = P @ W.T (P the patch matrix, k*k columns) has its statistics from P's moments,
  and the first block's dW = P.T @ dY from the convolution's backward of the pooling's gradient, corrected per
  channel (first_gradients); the raw maxima are pooled, centering being monotonic too.
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
        xp, norm = self.xp, self.norm
        y = self.conv.forward(x, pooled=True)        # (N, 2, 2, Ho/2, Wo/2, C) in pooling order, or (N, C, Ho, Wo)
        y = y if y.ndim == 6 else fast_conv.channels_last(y)
        self.shape = y.shape
        self.deferred = norm is not None and bool(xp.all(norm.params["gamma"] > 0))
        self.raw = self.deferred and x.shape[1] == 1  # statistics from the patches' moments, the raw output pooled
        if self.raw:
            self.y, self.mean = y, self.statistics()
        elif norm is not None:
            y = norm.normalize(rows_of(y), shift=not self.deferred).reshape(y.shape)
        self.won = xp.empty((3, *taps(y)[0].shape), bool)
        out = tournament(xp, taps(y), self.won)
        if self.deferred:
            self.peaks, rows = out, rows_of(out)
            if self.raw:
                xp.subtract(rows, norm.tiled(self.mean, rows), out=rows)  # the maxima centered
            out = rows * norm.tiled(norm.scale, rows)
            out += norm.tiled(norm.params["beta"], rows)
            out = out.reshape(self.peaks.shape)
        return self.activation.forward(nchw(out))

    def statistics(self):
        """The norm fitted from P's moments (float64: Y's sums 1 @ P @ W.T, its sums of squares the diagonal of
        W @ P.T @ P @ W.T), or in evaluation from the running statistics -> the mean used."""
        xp, norm = self.xp, self.norm
        if not norm.training:
            return norm.fit(norm.running_mean, norm.running_var, None)
        m, sums, gram = self.conv.moments()
        w = self.conv.matrix(self.conv.params["W"]).astype(xp.float64)  # (C_out, k*k)
        self.moments = sums, gram, w  # (for first_gradients)
        both, m = norm.whole_batch(xp.concatenate([w @ sums, ((w @ gram) * w).sum(axis=1)]), m)
        mean = both[:len(w)] / m
        var, dtype = xp.maximum(both[len(w):] / m - mean * mean, 0), norm.running_mean.dtype
        return norm.fit(mean.astype(dtype), var.astype(dtype), m)

    def backward(self, dout, need_dx=True):
        """dout: (N, C_out, Ho/2, Wo/2) -> dx: (N, C, H, W); every part's gradients assigned."""
        xp, norm = self.xp, self.norm
        d = fast_conv.channels_last(self.activation.backward(dout))     # (N, Ho/2, Wo/2, C)
        sums = None
        if self.deferred:  # the norm's two sums over the maxima; its scale is applied in its own backward
            sums = norm.sums(rows_of(d), rows_of(self.peaks))
        tiles = len(self.shape) == 6 or self.shape[1] % 2 == 0 == self.shape[2] % 2
        full = (xp.empty if tiles else xp.zeros)(self.shape, d.dtype)   # (no zeros where the windows tile)
        route(xp, d, self.won, taps(full))
        if self.raw and not need_dx:
            return self.first_gradients(full, sums)
        if norm is not None:
            centered = rows_of(self.y) - norm.tiled(self.mean, rows_of(self.y)) if self.raw else None
            full = norm.gradient(rows_of(full), sums, centered).reshape(self.shape)
        return self.conv.backward(full if full.ndim == 6 else nchw(full), need_dx)

    def first_gradients(self, full, sums):
        """dW = P.T @ dY, dY = D * scale - centered * a - b (fast_norm's coefficients, D routed to the maxima): the
        convolution's backward of D, scaled, less a * (P.T @ P @ W.T - P.T @ 1 * mean) + b * P.T @ 1 per channel."""
        xp, norm, conv = self.xp, self.norm, self.conv
        a, b = norm.coefficients(*sums, full.size // full.shape[-1])
        conv.backward(full if full.ndim == 6 else nchw(full), need_dx=False)
        conv.grads["W"] *= norm.scale[:, None, None, None]
        if a is not None:
            ones, gram, w = self.moments  # P.T @ 1, P.T @ P, W as (C_out, k*k), of the forward
            mean, a, b = (v.astype(xp.float64)[:, None] for v in (self.mean, a, b))
            conv.grads["W"] -= conv.unmatrix(a * (w @ gram - mean * ones) + b * ones).astype(full.dtype)


def rows_of(x):
    """(..., W, C) -> (M, W*C): batch norm's tiled rows (fast_norm.py), a view."""
    return x.reshape(-1, x.shape[-2] * x.shape[-1])
