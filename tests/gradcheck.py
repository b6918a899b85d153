"""CS231n-style numerical gradients and relative error, shared by the gradient-check tests."""
import numpy as np


def rel_error(a, b) -> float:
    """||a - b|| / (||a|| + ||b||) over the whole tensor.

    Not CS231n's elementwise max: an entry that happens to be ~1e-5 gets a ratio of ~1e-5 from finite
    differences alone (they resolve ~1e-10 absolute at h=1e-6), which says nothing about the backprop.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(1e-300, np.linalg.norm(a) + np.linalg.norm(b)))


def numerical_grad(f, x, h=1e-6):
    """Central differences of the scalar f() with respect to x, perturbing x in place."""
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        fp = f()
        x[i] = old - h
        fm = f()
        x[i] = old
        grad[i] = (fp - fm) / (2 * h)
    return grad
