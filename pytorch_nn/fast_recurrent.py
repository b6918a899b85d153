"""numpy_nn/fast_recurrent.py, built in: torch's recurrent modules already take the input side of every step in one
matrix product and fuse a step's gate arithmetic (oneDNN on the CPU, cuDNN on a GPU, where a whole layer is one kernel),
and autograd gathers the weights' gradients over the steps. numpy_nn's fast layer does the first and the last of these
by hand: one product for the input side before the loop, one for each weight's gradient after it."""
