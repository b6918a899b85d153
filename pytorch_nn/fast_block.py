"""numpy_nn/fast_block.py, not written here: in eager mode torch runs a block's convolution, batch norm, pooling and
activation as four kernels, each writing its whole output before the next reads it (oneDNN's, on channels_last
memory), and autograd runs their four backwards. numpy_nn's fast block fuses them by hand: the convolution's
output in pooling order, batch norm's scale and shift after the pooling, on a quarter of the values, and the first
block's statistics and dW from its patches' moments. torch.compile (--compile) lets Inductor fuse the elementwise
passes around the convolution in the same spirit. The per-layer tables add torch's four rows into the block's one."""
