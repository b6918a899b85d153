"""numpy_nn/fast_pool.py, built in: nn.MaxPool2d with autograd runs ATen's max_pool2d_with_indices, one pass over
the windows that keeps each maximum and where it was (vectorized along the channels on channels_last memory),
on torch's pool of threads; its backward sends each gradient to that index. numpy_nn's fast pooling also applies
the ReLU after it ("pool1+conv1_relu"); torch runs the ReLU as a kernel of its own in eager mode (torch.compile
could fuse the two), so the per-layer tables add its two rows into one. Nothing here to write: the trick is torch's."""
