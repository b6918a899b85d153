"""The same MLP in PyTorch: nn.Module, autograd and torch.optim do what numpy_nn writes out by hand."""
