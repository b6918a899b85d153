"""numpy_nn/fast_pool.py, built in: nn.MaxPool2d with autograd runs ATen's max_pool2d_with_indices, one pass over
the windows that keeps each maximum and where it was (vectorized along the channels on channels_last memory),
on torch's pool of threads; its backward sends each gradient to that index. The ReLU after it is a kernel of
its own in eager mode (torch.compile could fuse the two). Nothing here to write: the trick is torch's."""
