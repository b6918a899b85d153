"""numpy_nn/replicas.py, not needed here: torch shares every operation of a step over the cores with its own pool of
OpenMP threads (torch.set_num_threads, which --threads sets), elementwise passes as well as matrix products, and
those threads wait for work spinning in C, without Python's interpreter lock. NumPy runs all but its matrix
products on one core, so numpy_nn spreads each batch over processes instead, as
torch.nn.parallel.DistributedDataParallel spreads one over GPUs or machines: a replica of the model per process,
a slice of the batch each, the gradients summed, batch norm's statistics taken over the whole batch (what
torch.nn.SyncBatchNorm does there)."""
