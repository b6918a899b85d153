"""Softmax and cross-entropy fused into one numerically stable step."""
import numpy as np


def softmax_cross_entropy(logits, y):
    """Mean cross-entropy of softmax(logits) against integer labels, and its gradient.

    logits: (N, C); y: (N,) ints in [0, C). Returns (loss: float, dlogits: (N, C)).
    Stable for any finite logits: log-sum-exp after subtracting each row's max, so exp never overflows
    and log never sees 0. The gradient of the mean loss is (softmax - onehot) / N.
    """
    n = len(y)
    shifted = logits - logits.max(axis=1, keepdims=True)   # (N, C), max 0 per row
    exp = np.exp(shifted)
    sum_exp = exp.sum(axis=1, keepdims=True)                # (N, 1), in [1, C]
    rows = np.arange(n)
    loss = float(np.log(sum_exp).sum() - shifted[rows, y].sum()) / n
    dlogits = exp
    dlogits /= sum_exp                                      # softmax, in place
    dlogits[rows, y] -= 1
    dlogits /= n
    return loss, dlogits
