"""The same networks (an MLP and a CNN) in PyTorch: nn.Module, autograd and torch.optim do what numpy_nn writes
out by hand, file for file."""
