"""numpy_nn/threads.py, built in: torch runs every operation, the elementwise passes as well as the matrix
products, on its own pool of torch.get_num_threads() OpenMP threads (intra-op parallelism), and oneDNN's
convolutions and poolings walk their cache-sized blocks through it. One call sizes it."""
import torch


def set_threads(n):
    """The pool's size: --threads."""
    torch.set_num_threads(n)
