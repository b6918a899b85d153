"""Softmax and cross-entropy fused into one numerically stable step."""
from numpy_nn.layers import array_module


def softmax_cross_entropy(logits, y, smoothing=0.0):
    """Mean cross-entropy of softmax(logits) against integer labels, and its gradient.

    logits: (N, C); y: (N,) ints in [0, C). Returns (loss: float, dlogits: (N, C)).
    Stable for any finite logits: log-sum-exp after subtracting each row's max, so exp never overflows
    and log never sees 0. The gradient of the mean loss is (softmax - onehot) / N.
    With smoothing eps the target is (1 - eps) onehot + eps / C (torch's label_smoothing): the loss adds
    eps / C times the sum over classes of -log softmax, and the gradient is (softmax - target) / N.
    """
    xp, n = array_module(logits), len(y)
    shifted = logits - logits.max(axis=1, keepdims=True)   # (N, C), max 0 per row
    exp = xp.exp(shifted)
    sum_exp = exp.sum(axis=1, keepdims=True)                # (N, 1), in [1, C]
    rows = xp.arange(n)
    loss = (xp.log(sum_exp).sum() - shifted[rows, y].sum()) / n  # a 0-d array: float() on a GPU waits for it
    dlogits = exp
    dlogits /= sum_exp                                      # softmax, in place
    if smoothing:
        c = logits.shape[1]
        loss = (1 - smoothing) * loss + smoothing / c * (c * xp.log(sum_exp).sum() - shifted.sum()) / n
        dlogits -= smoothing / c
        dlogits[rows, y] -= 1 - smoothing
    else:
        dlogits[rows, y] -= 1
    dlogits /= n
    return loss, dlogits
