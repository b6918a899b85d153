"""The benchmark's bare loops compute what the trainers compute: a faster baseline doing other math would
make every ratio meaningless. One epoch from the same weights on the same batches, float64."""
import sys

import numpy as np
import pytest

from common import cli, flags, loop
from conftest import ROOT
import numpy_nn.train

sys.path.insert(0, str(ROOT / "benchmarks"))
import bare  # noqa: E402

CASES = {"mlp": ["--hidden", "128,64"],
         "cnn": ["--model", "cnn", "--channels", "4,8,8", "--kernel-size", "3", "--hidden", "16", "--batch-norm"]}


@pytest.mark.parametrize("model", CASES)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_bare_numpy_loop_is_numpy_nn(model, optimizer, mnist_dir):
    parser = flags.make_parser("t")
    argv = [*CASES[model], "--dtype", "float64", "--dropout", "0", "--optimizer", optimizer, "--weight-decay", "0",
            "--lr", "0.01" if optimizer == "sgd" else "1e-3", "--limit-train", "640", "--val-size", "0",
            "--data-dir", str(mnist_dir), "--quiet", "--threads", "1"]
    args = flags.parse_args(parser, argv + (["--momentum", "0.9"] if optimizer == "sgd" else []))
    data = cli.load_data(args)
    trainer = numpy_nn.train.Trainer(args)
    x, y = trainer.place(data.x_train, data.y_train)
    loop.train_epoch(trainer, x, y, args, 0)
    epoch = (bare.numpy_cnn if model == "cnn" else bare.numpy_mlp)(data, args)
    epoch(0)
    ours = [p for name, p in trainer.model.params.items()]
    theirs = epoch.params
    if model == "cnn":  # the bare loop keeps kernels as (C_out, k*k*C_in) in channels-last patch order
        order = [n for n in trainer.model.params if n.startswith("conv") and n.endswith(".W")]
        norms = [n for n in trainer.model.params if n.startswith("conv") and "_bn." in n]
        rest = [n for n in trainer.model.params if n not in order + norms]
        k = args.kernel_size[0]
        kernels = [W.reshape(len(W), k, k, -1).transpose(0, 3, 1, 2) for W in theirs[:len(order)]]
        theirs = dict(zip(order + norms + rest, kernels + theirs[len(order):]))
        ours = trainer.model.params
        assert all(np.abs(ours[n] - theirs[n]).max() < 1e-10 for n in ours), \
            {n: np.abs(ours[n] - theirs[n]).max() for n in ours}
    else:
        assert len(ours) == len(theirs) and all(np.abs(a - b).max() < 1e-10 for a, b in zip(ours, theirs))


def test_benchmarks_take_any_network(capsys):
    """epoch_bench and phases take train.py's model flags over their defaults; a bad one is one argparse line."""
    import epoch_bench
    args = epoch_bench.trainer_args(["--model", "cnn", "--channels", "24,32", "--hidden", "256", "--optimizer", "adam",
                                     "--kernels", "reference"], 256)
    assert (args.channels, args.hidden, args.optimizer, args.kernels, args.batch_size) == ((24, 32), (256,), "adam",
                                                                                           "reference", 256)
    assert (args.dropout, args.momentum, args.device) == (0.0, 0.0, "cpu")
    default = epoch_bench.trainer_args([], 64)
    assert (default.model, default.hidden, default.optimizer, default.momentum) == ("mlp", (128, 64), "sgd", 0.9)
    with pytest.raises(SystemExit):
        epoch_bench.main(["--channels", "4", "--repeats", "1"])  # --channels without --model cnn
    assert "--channels applies to --model cnn" in capsys.readouterr().err
    import phases
    for main in (epoch_bench.main, phases.main):
        for sizes, message in [("x", "expected comma-separated batch sizes"), ("64,0", "batch sizes must be positive")]:
            with pytest.raises(SystemExit):
                main(["--batch-sizes", sizes])
            err = capsys.readouterr().err.strip().splitlines()[-1]
            assert f"--batch-sizes: '{sizes}': {message}" in err and "lambda" not in err, err


def test_speed_figures_name_the_vms_idle_polling(monkeypatch, tmp_path):
    """A VM whose idle cores halt at once wakes a waiting process more slowly than one whose cores poll: the label
    of a speed figure says which, read from the haltpoll driver's files, and names the CPU alone where there are
    none (then the BLAS, as always)."""
    from common import machine
    idle, poll = tmp_path / "cpuidle", tmp_path / "guest_halt_poll_ns"
    idle.mkdir()
    (idle / "current_driver").write_text("haltpoll\n")
    poll.write_text("200000\n")
    real = machine.Path
    monkeypatch.setattr(machine, "Path", lambda p: {"/sys/devices/system/cpu/cpuidle": idle,
                                                    "/sys/module/haltpoll/parameters/guest_halt_poll_ns": poll}
                        .get(p, real(p)))
    assert machine.idle_polling() == "halt polling 200 us"
    assert machine.cpu_label() == f"{machine.cpu_name()}, halt polling 200 us; {machine.blas()}"
    poll.write_text("not a number\n")
    assert machine.idle_polling() is None and machine.cpu_label() == f"{machine.cpu_name()}; {machine.blas()}"
    (idle / "current_driver").write_text("acpi_idle\n")
    poll.write_text("0\n")
    assert machine.idle_polling() is None


def test_speed_figures_name_the_blas_kernels_and_what_forces_them(monkeypatch):
    """NumPy's BLAS by library, version and kernels in use (threadpoolctl); an OPENBLAS_CORETYPE in the environment,
    which makes OpenBLAS run another CPU's kernels (AVX2's on an AVX-512 CPU: half the matrix-product speed), named."""
    import threadpoolctl
    from common import machine
    info = [{"user_api": "blas", "internal_api": "openblas", "version": "0.3.31", "architecture": "Haswell",
             "filepath": "/site-packages/numpy.libs/libscipy_openblas64_.so"},
            {"user_api": "openmp", "internal_api": "openmp", "version": None, "filepath": "/torch/lib/libgomp.so"}]
    monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda: info)
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    assert machine.blas() == "openblas 0.3.31, Haswell kernels forced by OPENBLAS_CORETYPE=Haswell"
    assert "env -u OPENBLAS_CORETYPE" in machine.forced_note()[0]
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    assert machine.forced_note() == []
    info[0]["architecture"] = "SkylakeX"
    assert machine.blas() == "openblas 0.3.31, SkylakeX kernels"
    assert machine.environment()["blas"] == "openblas 0.3.31, SkylakeX kernels"
