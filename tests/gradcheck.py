"""CS231n-style numerical gradients and relative error, shared by the gradient-check tests."""
import numpy as np


def rel_error(a, b) -> float:
    """||a - b|| / (||a|| + ||b||) over the whole tensor.

    Not CS231n's elementwise max: an entry that happens to be ~1e-5 gets a ratio of ~1e-5 from finite
    differences alone (they resolve ~1e-10 absolute at h=1e-6), which says nothing about the backprop.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(1e-300, np.linalg.norm(a) + np.linalg.norm(b)))


def numerical_grad_at(f, x, index, h=1e-6) -> float:
    """The central difference of the scalar f() with respect to x[index], perturbing x in place and restoring it."""
    old = x[index]
    x[index] = old + h
    fp = f()
    x[index] = old - h
    fm = f()
    x[index] = old
    return (fp - fm) / (2 * h)


def numerical_grad(f, x, h=1e-6):
    """Central differences of the scalar f() with respect to every entry of x."""
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        grad[it.multi_index] = numerical_grad_at(f, x, it.multi_index, h)
    return grad
