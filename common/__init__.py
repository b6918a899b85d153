"""What both trainers share, so that each train.py keeps only the lines that really differ (forward,
backward, step). Nothing here imports numpy_nn or pytorch_nn: the shared layer serves both twins alike.

    flags         the command-line flags both train.py scripts take (each twin's own switches too), and checks
    records       the flags a checkpoint or model file recorded, read back through the same checks
    presets       named configurations, with what they measured
    architecture  the networks' shapes and arithmetic: feature sizes, parameter counts, FLOPs of a step
    init          the initial weights, drawn once for both twins
    loop          the epoch loop, evaluation, history records
    metrics       scoring logits (cross-entropy, accuracy) with a log-softmax of its own
    weights       the weight-file formats: safetensors (model files and checkpoints), numpy_nn's earlier .npz
    resume        checkpoints: writing them, reading them back, the progress they record
    files         atomic writes and JSON
    machine       what the machine is: cores, CPU, versions, its matrix-multiply peak, memory
    errors        the expected failures, said in one line
    cli           main(): flags -> data -> train or evaluate -> files, every expected failure in one line

A trainer is a small class (numpy_nn/train.py, pytorch_nn/train.py) with:
    name                      "numpy" / "pytorch"
    Trainer(args)             builds model, optimizer and schedule from the flags
    place(x, y)               the training arrays where the trainer computes (NumPy, torch, CuPy), once
    train_step(x, y)          one update on a placed batch; returns (mean loss, n correct) as numbers on
                              the CPU, or as device scalars on a GPU, which host(list) reads in one go
    predict(x)                logits as a NumPy array, in evaluation mode, without gradients
    lr, end_epoch()           the current learning rate; advance the schedule by one epoch
    weights(), load_weights() the model's tensors under torch's state_dict names and layouts, as NumPy
                              arrays: the one format both twins write, read and hand each other
    describe()                extra environment facts (threads, device)
"""
