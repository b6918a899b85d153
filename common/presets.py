"""Named configurations: `--preset NAME` fills in these flags; flags given on the command line still win."""

PRESETS = {
    # The seed network (784-128-64-10) and a recipe for it: Adam alone overfits (training loss ~1e-4); decoupled
    # weight decay and light dropout generalize better.
    "default": dict(hidden=(128, 64), optimizer="adamw", lr=1e-3, weight_decay=0.1, dropout=0.1,
                    schedule="cosine", epochs=20, batch_size=64),
    # The fastest recipe to 98 % test accuracy found for the seed network on 2 cores: batches of 384, a high Adam
    # learning rate annealed to 0 over 7 epochs, torch's uniform initialization, all 60,000 images (against 8 epochs
    # of 256 from He init, it reached 98 % in less training time).
    "fast": dict(hidden=(128, 64), optimizer="adam", lr=5e-3, schedule="cosine", epochs=7, batch_size=384,
                 dropout=0.0, init="torch", val_size=0),
    # The best accuracy from a plain MLP (no convolutions, no augmentation): wide, dropout on the input and the hidden
    # layers (Hinton et al. 2012), AdamW, cosine; fixed on 5,000 held-out images (98.82 % there, seed 1), then
    # trained on all 60,000. Minutes per run on a CPU.
    "best": dict(hidden=(1024, 1024), input_dropout=0.2, dropout=0.4, optimizer="adamw", weight_decay=0.05,
                 lr=1e-3, schedule="cosine", epochs=40, batch_size=128, val_size=0),
    # LeNet-5's shapes (LeCun et al. 1998): 6 and 16 channels of 5x5, then 120 and 84 units; ReLU and max pooling
    # where the paper had tanh-like units and subsampling, and "same" padding where it padded digits to 32x32.
    "lenet": dict(model="cnn", channels=(6, 16), kernel_size=5, hidden=(120, 84), dropout=0.0, optimizer="adamw",
                  lr=2e-3, weight_decay=0.05, schedule="cosine", epochs=12, batch_size=64),
    # The best plain CNN found for 10 minutes of numpy_nn training on 2 cores: three conv + batch-norm blocks of 3x3
    # kernels, a batch-normalized hidden layer with heavy dropout, AdamW, cosine, all 60,000 images; no augmentation,
    # no ensembles. Chosen on 5,000 held-out images (pytorch_nn, seed 1, 15 epochs): channels 32,64,128 reached
    # 99.50 % there (loss 0.018), 32,64 99.26 % (0.027), 16,32,64 99.36 % (0.021); 10 epochs 99.42 %.
    "cnn": dict(model="cnn", channels=(32, 64, 128), kernel_size=3, hidden=(128,), batch_norm="all", dropout=0.5,
                optimizer="adamw", lr=2e-3, weight_decay=0.05, schedule="cosine", epochs=10, batch_size=128, val_size=0),
    # The speedrun: tuomaso/train_mnist_fast's network (unpadded convolutions of 24 channels of 5x5 and 32 of 3x3,
    # 28 -> 24 -> 12 -> 10 -> 5, 800 features, 256 units) with batch norm on its hidden dense layer, and its recipe:
    # Adam with betas 0.7,0.9, a one-cycle schedule to 1e-2 stepped per batch, batches of 256, torch's uniform init,
    # one epoch. Chosen on 5,000 held-out images (pytorch_nn, seeds 1-6, 1 epoch), mean validation loss / accuracy:
    # batch norm on the dense layer 0.0357 / 98.89 %, everywhere 0.0356 / 98.87 %, on the convolutions only
    # 0.0387 / 98.80 %, none (tuomaso's exact network) 0.0434 / 98.61 %. Everywhere, lr 2e-2, 20 % warm-up or
    # batches of 128 changed nothing beyond noise (0.0351-0.0355); lr 5e-3 0.0369, betas 0.9,0.99 0.0394; without
    # batch norm, hidden 512 0.0428, lr 2e-2 0.0464. Batch norm everywhere would cost numpy_nn more time than on the
    # dense layer alone, for the same loss; unpadded convolutions take 0.63x the time of "same"-padded ones.
    "cnn-fast": dict(model="cnn", channels=(24, 32), kernel_size=(5, 3), padding="valid", hidden=(256,),
                     batch_norm="dense", dropout=0.0, optimizer="adam", betas=(0.7, 0.9), lr=1e-2, weight_decay=0.0,
                     schedule="onecycle", warmup=0.3, epochs=1, batch_size=256, init="torch", val_size=0),
    # pytorch/examples' mnist_rnn/main.py as written: an LSTM of 64 units over the rows, batch norm and dropout 0.25
    # on its last state, a dense layer of 32 with ReLU and dropout 0.5, Adadelta at lr 0.1 decayed by 0.7 every
    # epoch for 14 epochs, batches of 64, torch's default initialization, all 60,000 images. Its Dropout2d on a 2-D
    # tensor acts as plain dropout, which is what both twins apply; the dropout masks come from each twin's own
    # generator, as they do for every preset.
    "mnist-rnn": dict(model="lstm", width=64, depth=1, steps="rows", batch_norm="features", input_dropout=0.25,
                      hidden=(32,), dropout=0.5, optimizer="adadelta", lr=0.1, weight_decay=0.0, schedule="step",
                      step_size=1, gamma=0.7, epochs=14, batch_size=64, init="torch", val_size=0),
    # The best recurrent recipe found for 5 minutes of numpy_nn training on 2 cores: an LSTM of 256 units over the
    # rows, its last state straight into the 10 outputs, Adam on a one-cycle schedule to 3e-3, gradients clipped to
    # norm 1, batches of 128, 12 epochs, all 60,000 images. Chosen on 5,000 held-out images (pytorch_nn, seed 1, 12
    # epochs), validation accuracy / loss: 256 units 99.18 % / 0.0325; 128 units 99.04 % / 0.0386, two layers of 128
    # 99.08 % / 0.0411, 128 units with batch norm, a dense layer of 64 and AdamW on a cosine 99.02 % / 0.0440, 128 units
    # with Adam on a cosine from 2e-3 98.80 % / 0.0461. numpy_nn trains an epoch of it in about 12 s here.
    "lstm": dict(model="lstm", width=256, depth=1, steps="rows", hidden=(), dropout=0.0, optimizer="adam", lr=3e-3,
                 weight_decay=0.0, schedule="onecycle", warmup=0.3, clip_norm=1.0, epochs=12, batch_size=128,
                 init="torch", val_size=0),
    # The best Vision Transformer found for at most 10 minutes of numpy_nn training on 2 cores: 4x4 patches (49 tokens
    # and the class token), 4 pre-norm blocks of width 64 with 4 heads and an MLP of 128, the class token into the 10
    # outputs; AdamW at 0.05 on the weight matrices only, one-cycle to 3e-3 with 10 % warm-up, label smoothing 0.1,
    # images shifted by up to 2 pixels, batches of 128, 18 epochs, all 60,000 images. Chosen on 5,000 held-out
    # images (pytorch_nn on a GPU, float32, seed 1), last validation accuracy: without shifts, 4x4 patches at lr 2e-3
    # or 3e-3 with or without smoothing 98.58-98.62 %, width 96 for 12 epochs 98.42 %, 7x7 patches of width 128 and
    # depth 6 for 14 epochs 98.48 %, of width 64 for 50 epochs 98.90 %, of width 96 and depth 6 for 24 epochs 98.74 %;
    # with shifts of 2: this recipe 99.24 %, 7x7 patches of width 96 and depth 6 for 24 epochs 99.28 % (a 10 % longer
    # numpy_nn run), of width 64 for 50 epochs 99.32 % (shifts of 1: 99.12 %; no smoothing: 99.20 %). numpy_nn
    # trains an epoch of this one in about 29 s here.
    "vit": dict(model="vit", patch=4, width=64, depth=4, heads=4, mlp_ratio=2, hidden=(), dropout=0.0,
                optimizer="adamw", lr=3e-3, weight_decay=0.05, decay="matrices", label_smoothing=0.1, shift=2,
                schedule="onecycle", warmup=0.1, epochs=18, batch_size=128, val_size=0),
}
DEFAULT = PRESETS["default"]
