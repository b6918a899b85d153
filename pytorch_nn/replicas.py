"""numpy_nn/replicas.py, not needed here: torch shares a step over the cores with its OpenMP threads
(pytorch_nn/threads.py), which wait for work spinning in C, without Python's interpreter lock. numpy_nn's pool
of Python threads meets far more slowly, so numpy_nn spreads a CNN's batch over forked processes instead, as
torch.nn.parallel.DistributedDataParallel spreads one over GPUs or machines: a replica of the model per process,
a slice of the batch each, the gradients summed, batch norm's statistics taken over the whole batch (what
torch.nn.SyncBatchNorm does there)."""
