"""The flags both train.py scripts (and compare.py) take, defined once, with their checks.

Names follow pytorch/examples' mnist where it has one; help strings end in "(default: N)".
"""
from __future__ import annotations

import argparse
from pathlib import Path

import data_loader
from common.architecture import (BATCH_NORMS, KINDS, ONLY_FOR, PADDINGS, STEPS, feature_side, fill_defaults,
                                 misplaced, per_block)
from common.machine import default_threads
from common.presets import DEFAULT, PRESETS
from common.values import batch_sizes, betas, number, sizes, threads  # noqa: F401 (flags.number etc. for the scripts)


def make_parser(description: str, train_script: bool = True) -> argparse.ArgumentParser:
    """The shared flags. train_script=False leaves out what only a single run has (--seed, --out,
    --save-model, --evaluate): compare.py chooses those for its runs itself."""
    p = argparse.ArgumentParser(description=description)
    d = DEFAULT
    pos_int, pos_float = number(int, 1), number(float, 0, low_open=True)
    p.add_argument("--preset", choices=sorted(PRESETS), help="a named configuration; explicit flags override it")
    p.add_argument("--epochs", type=number(int, 0), default=d["epochs"], help="epochs to train (default: %(default)s)")
    p.add_argument("--batch-size", type=pos_int, default=d["batch_size"], help="training batch size (default: %(default)s)")
    p.add_argument("--test-batch-size", type=pos_int, default=1000, help="evaluation batch size (default: %(default)s)")
    p.add_argument("--lr", type=pos_float, default=d["lr"], help="learning rate (default: %(default)s)")
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw", "adadelta"], default=d["optimizer"],
                   help="adadelta with torch's rho 0.9 and eps 1e-6 (default: %(default)s)")
    p.add_argument("--momentum", type=number(float, 0, 1, high_open=True), default=0.0,
                   help="SGD momentum (default: %(default)s)")
    p.add_argument("--nesterov", action="store_true", help="Nesterov momentum (SGD with --momentum > 0)")
    p.add_argument("--weight-decay", type=number(float, 0), default=None,
                   help=f"L2 penalty for sgd, adam and adadelta, decoupled decay for adamw (default: "
                        f"{d['weight_decay']} for adamw, else 0)")
    p.add_argument("--decay", choices=["all", "matrices"], default="all",
                   help="what --weight-decay acts on: every parameter, or the weight matrices only (not biases, norms, a "
                        "ViT's class token or position embeddings), as ViT recipes do (default: %(default)s)")
    p.add_argument("--label-smoothing", type=number(float, 0, 1, high_open=True), default=0.0, metavar="EPS",
                   help="the cross-entropy's target: 1 - EPS on the label and EPS spread over all 10 classes, "
                        "F.cross_entropy's label_smoothing (default: %(default)s)")
    p.add_argument("--betas", type=betas, default=(0.9, 0.999),
                   help="adam/adamw: the moments' decay rates b1,b2 (default: 0.9,0.999)")
    p.add_argument("--clip-norm", type=pos_float, metavar="MAX",
                   help="scale the gradients, all of them as one vector, to this norm where it is larger, before each "
                        "update (torch.nn.utils.clip_grad_norm_) (default: no clipping)")
    p.add_argument("--schedule", choices=["constant", "step", "cosine", "onecycle"], default=d["schedule"],
                   help="learning-rate schedule: constant, step and cosine stepped per epoch; onecycle stepped per "
                        "batch, warming up from lr/25 to --lr, then cosine annealing to lr/25e4, as torch's "
                        "OneCycleLR (default: %(default)s)")
    p.add_argument("--warmup", type=number(float, 0, 1, low_open=True, high_open=True), default=0.3,
                   help="onecycle: the fraction of all steps spent warming up (default: %(default)s)")
    p.add_argument("--step-size", type=pos_int, default=1, help="epochs between decays for --schedule step (default: %(default)s)")
    p.add_argument("--gamma", type=number(float, 0, 1, low_open=True), default=0.7,
                   help="decay factor for --schedule step (default: %(default)s)")
    p.add_argument("--model", choices=list(KINDS), default="mlp",
                   help="mlp: fully connected; cnn: convolution blocks, then fully connected; rnn, lstm, gru: the image "
                        "read as a sequence by a tanh RNN, an LSTM or a GRU, its last state then fully connected; vit: "
                        "a Vision Transformer (default: %(default)s)")
    p.add_argument("--channels", type=sizes, help="cnn: output channels of each block (k x k convolution, batch norm "
                                                  "with --batch-norm all, activation, 2x2 max pooling) (default: 32,64)")
    p.add_argument("--kernel-size", type=sizes, help="cnn: convolution kernel side, one for every block or one per "
                                                     "block (e.g. 5,3) (default: 3)")
    p.add_argument("--padding", choices=PADDINGS, default="same",
                   help="cnn: same pads each convolution's input by k // 2 (28x28 stays 28x28), valid not at all "
                        "(28x28 -> 24x24 for 5x5) (default: %(default)s)")
    p.add_argument("--width", type=number(int, 1), help="rnn, lstm, gru: units of each recurrent layer (default: 128); "
                                                        "vit: features of each token (default: 64)")
    p.add_argument("--depth", type=number(int, 1), help="rnn, lstm, gru: recurrent layers stacked (default: 1); vit: "
                                                        "encoder blocks (default: 2)")
    p.add_argument("--patch", type=int, choices=[1, 2, 4, 7, 14, 28], help="vit: patch side (default: 7)")
    p.add_argument("--heads", type=number(int, 1), help="vit: attention heads, dividing --width (default: 4)")
    p.add_argument("--mlp-ratio", type=number(int, 1), help="vit: each block's MLP width over --width (default: 2)")
    p.add_argument("--steps", choices=STEPS, help="rnn, lstm, gru: the time steps, the image's 28 rows (top to bottom) "
                                                  "or its 28 columns (left to right) (default: rows)")
    p.add_argument("--batch-norm", nargs="?", const="all", choices=BATCH_NORMS,
                   help="batch normalization after each convolution (or the recurrent layers' last state) and each "
                        "hidden fully connected layer (all, as the flag alone), after the hidden fully connected "
                        "layers only (dense), or after the convolutions or the recurrent layers only (features)")
    p.add_argument("--hidden", type=sizes, help="hidden fully connected layer sizes (default: 128,64 for mlp, "
                                                "128 for cnn, none for rnn, lstm and gru)")
    p.add_argument("--activation", choices=["relu", "tanh", "sigmoid"], default="relu", help="(default: %(default)s)")
    p.add_argument("--dropout", type=number(float, 0, 1, high_open=True), default=d["dropout"],
                   help="dropout probability after each hidden layer (default: %(default)s)")
    p.add_argument("--input-dropout", type=number(float, 0, 1, high_open=True), default=0.0,
                   help="dropout probability on the dense layers' input: an MLP's pixels, a recurrent network's "
                        "last state (default: %(default)s)")
    p.add_argument("--init", choices=["he", "xavier", "torch"], default="he", help="weight init (default: %(default)s)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="(default: %(default)s)")
    p.add_argument("--val-size", type=number(int, 0, data_loader.TRAIN_IMAGES - 1), default=data_loader.VAL_SIZE,
                   help="training images held out for validation (default: %(default)s)")
    p.add_argument("--limit-train", type=pos_int, help="train on this many images only (default: all)")
    p.add_argument("--shift", type=number(int, 0, 8), default=0, metavar="PIXELS",
                   help="augmentation: each training image moved by up to PIXELS down or up and right or left, drawn "
                        "from (seed, epoch) in the shared data path, so both twins see the same pixels (default: 0)")
    p.add_argument("--data-dir", help="folder with the MNIST IDX files (default: $MNIST_DIR, else ./data)")
    p.add_argument("--threads", type=threads, default=default_threads(),
                   help="CPU threads for the math, at most the machine's cores (default: all of them)")
    p.add_argument("--quiet", action="store_true", help="no progress bar (the per-epoch lines remain)")
    if train_script:
        p.add_argument("--seed", type=number(int, 0), default=1, help="random seed (default: %(default)s)")
        p.add_argument("--out", type=Path, help="output folder for history.json and the model (default: runs/<impl>)")
        p.add_argument("--save-model", action="store_true",
                       help="write the trained weights into --out as model.safetensors, either twin can read it")
        p.add_argument("--evaluate", type=Path, metavar="FILE",
                       help="score a weights file on the test set instead of training: .safetensors from either "
                            "twin (it brings its model flags), numpy_nn's .npz or a torch state_dict .pt/.pth")
        p.add_argument("--checkpoint-every", type=number(int, 0), default=1, metavar="N",
                       help="write --out/checkpoint.safetensors every N epochs, 0 for only when interrupted "
                            "(default: %(default)s)")
        p.add_argument("--resume", type=Path, metavar="DIR",
                       help="continue the run whose checkpoint is in DIR, with the flags it recorded")
    return p


def numpy_flags(p: argparse.ArgumentParser, backend: bool = True) -> None:
    """numpy_nn's own switches (numpy_nn/train.py, compare.py, the benchmarks)."""
    if backend:
        p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy",
                       help="numpy_nn's array library: NumPy on the CPU, or CuPy on a CUDA GPU; the math is the same "
                            "code (default: %(default)s)")
    p.add_argument("--kernels", choices=["fast", "reference"], default="fast",
                   help="numpy_nn's convolution, pooling, batch-norm and attention layers: the fast kernels "
                        "(numpy_nn/fast_*.py) or the reference layers written to be read (conv.py, norm.py, "
                        "attention.py); the same numbers, the reference slower; recurrent.py's loop runs either way "
                        "(default: %(default)s)")
    p.add_argument("--processes", type=number(int, 1), metavar="N",
                   help="numpy_nn shares each batch over N processes, a replica of the model in each, on --threads / N "
                        "BLAS threads each (numpy_nn/replicas.py); needs --kernels fast (default: --threads for a CNN or "
                        "a recurrent network, 1 for an MLP)")


def pytorch_flags(p: argparse.ArgumentParser) -> None:
    """pytorch_nn's own switches (pytorch_nn/train.py, compare.py, the benchmarks)."""
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where pytorch_nn trains; auto picks CUDA when present (compare.py: adds CUDA rows beside "
                        "the CPU's) (default: %(default)s)")
    p.add_argument("--no-fused", dest="fused", action="store_false",
                   help="pytorch_nn with torch.optim's default for-each optimizer instead of its fused kernel")
    p.add_argument("--compile", action="store_true",
                   help="pytorch_nn with torch.compile on the forward pass and the loss (compiling costs seconds "
                        "up front)")


def explicit(parser: argparse.ArgumentParser, argv) -> set[str]:
    """The destinations of the flags given on the command line (argparse fills in defaults only for
    attributes the namespace lacks, so a namespace of markers tells given from defaulted)."""
    marker = object()
    given = parser.parse_args(argv, argparse.Namespace(**{a.dest: marker for a in parser._actions}))
    return {k for k, v in vars(given).items() if v is not marker}


def show(value) -> str:
    """A flag's value as one types it: (128, 64) -> 128,64."""
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def check_blocks(args) -> None:
    """A CNN's kernel sizes as one per block (args.kernel_size set so); ValueError, in one line, for sizes that do
    not fit the blocks or blocks whose poolings leave no pixel. The command line and a file's record both pass here."""
    args.kernel_size = per_block(args.kernel_size, args.channels)
    if feature_side(args.channels, args.kernel_size, args.padding) < 1:
        raise ValueError(f"--channels {show(args.channels)} with --kernel-size {show(args.kernel_size)} and --padding "
                         f"{args.padding}: {len(args.channels)} poolings leave no pixel of a 28x28 image; use fewer "
                         f"blocks{' or --padding same' if args.padding == 'valid' else ''}")


def parse_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse, letting a --preset supply values that explicit flags override; check flag combinations."""
    args, given = parser.parse_args(argv), explicit(parser, argv)
    for k, v in PRESETS[args.preset].items() if args.preset else ():
        if k not in given:
            setattr(args, k, v)
    # with --evaluate or --resume and no --model, the model is the file's, known once cli.prepare has read it
    from_file = "model" not in given and (getattr(args, "evaluate", None) or getattr(args, "resume", None))
    if not from_file and (why := misplaced(args, given)):
        parser.error(why)
    fill_defaults(args, from_file)
    if "dropout" in given and args.dropout and not from_file and not args.hidden:
        parser.error(f"--dropout {args.dropout} acts after hidden dense layers and this {args.model} has none; give "
                     f"--hidden, or leave --dropout out")
    if args.model == "cnn":
        try:
            check_blocks(args)
        except ValueError as e:
            parser.error(str(e))
    if args.model == "vit" and args.width % args.heads:
        parser.error(f"--width {args.width} does not split into --heads {args.heads}; use a width the heads divide")
    if args.nesterov and (args.optimizer != "sgd" or args.momentum == 0):
        parser.error("--nesterov needs --optimizer sgd and --momentum > 0")
    if args.weight_decay is None:
        args.weight_decay = DEFAULT["weight_decay"] if args.optimizer == "adamw" else 0.0
    if args.momentum and args.optimizer != "sgd":
        parser.error(f"--momentum applies to --optimizer sgd, not {args.optimizer}")
    if "betas" in given and args.optimizer not in ("adam", "adamw"):
        parser.error(f"--betas applies to --optimizer adam or adamw, not {args.optimizer}")
    if "warmup" in given and args.schedule != "onecycle":
        parser.error(f"--warmup applies to --schedule onecycle, not {args.schedule}")
    return args
