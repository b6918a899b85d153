"""The networks (an MLP and a CNN) written from scratch in NumPy: every step PyTorch automates, written out once.

The layers a learner reads are layers.py, conv.py and norm.py (the reference); fast_conv.py and fast_norm.py
compute the same numbers faster and are tested equal to them (--kernels picks one)."""
