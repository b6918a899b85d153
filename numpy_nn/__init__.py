"""The networks (an MLP and a CNN) written from scratch in NumPy: every step PyTorch automates, written out once.

The layers a learner reads are layers.py, conv.py and norm.py (the reference); fast_conv.py, fast_pool.py,
fast_norm.py and fast_layers.py compute the same numbers faster, block by block on a pool of threads
(threads.py), and are tested equal to them (--kernels picks one)."""
