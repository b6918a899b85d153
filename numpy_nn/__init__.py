"""The networks (an MLP and a CNN) written from scratch in NumPy: every step PyTorch automates, written out once.

The layers a learner reads are layers.py, conv.py and norm.py (the reference); fast_conv.py, fast_norm.py and
fast_block.py (a CNN's block as one fused layer) compute the same numbers faster and are tested equal to them
(--kernels picks one); replicas.py shares each batch over processes (--processes)."""
