"""numpy_nn/fast_conv.py, built in: torch picks fast convolution kernels itself (oneDNN on the CPU, cuDNN on a GPU:
blocked layouts, direct convolutions, cache blocking), tested by PyTorch against its own reference. One choice is
left to the user, the memory format: channels_last is what numpy_nn's fast kernels do by hand, and oneDNN's fast
path (benchmarks/epoch_bench.py times the bare loop both ways)."""
import torch


def channels_last(model):
    """The model's 4-D tensors in channels_last memory (N, H, W, C order in memory; shapes unchanged)."""
    return model.to(memory_format=torch.channels_last)
