"""The MLP written from scratch in NumPy: every step PyTorch automates, written out once."""
