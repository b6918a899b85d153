"""numpy_nn/fast_norm.py, built in: nn.BatchNorm1d and nn.BatchNorm2d run torch's own kernels, which take the
statistics and apply the normalization, scale and shift per channel in a few fused passes over channels_last
memory, and fuse the backward's sums the same way. Nothing here to write: the trick is torch's."""
