"""compare.py --quick end to end: every table and figure, sane numbers, nothing written into results/."""
import signal
import subprocess
import sys
import time

import matplotlib.image
import pandas as pd
import pytest

import compare

ROOT = compare.Path(__file__).resolve().parents[1]
FIGURES = ["accuracy_vs_time.png", "loss.png", "accuracy.png", "epoch_time.png", "confusion.png", "misclassified.png",
           "samples.png", "parity.png", "weights.png", "layers.png", "optimizers.png", "scaling.png"]


def snapshot(folder):
    """Every file under folder (its stored runs aside) by path, with its size and a hash of its content."""
    import hashlib
    return {str(p.relative_to(folder)): (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file() and "runs" not in p.relative_to(folder).parts} \
        if folder.exists() else {}


@pytest.fixture(scope="module")
def quick(mnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    before = snapshot(ROOT / "results")
    code = compare.main(["--quick", "--out", str(out), "--data-dir", str(mnist_dir), "--threads", "1"])
    assert snapshot(ROOT / "results") == before, "compare --quick --out elsewhere changed a file under results/"
    return code, out


def test_quick_writes_every_output(quick):
    code, out = quick
    assert code == 0
    for name in ["comparison.md", "comparison.csv", "epochs.csv", "parity.csv", "gradients.csv", "interchange.csv", "optimizers.csv",
                 "scaling.csv", "layers.csv", "precision.csv", *FIGURES]:
        assert (out / name).stat().st_size > 0, name
    for name in FIGURES:
        image = matplotlib.image.imread(out / name)
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200, name
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_quick_tables(quick):
    _, out = quick
    table = pd.read_csv(out / "comparison.csv")
    assert list(table["implementation"]) == ["numpy", "pytorch"]
    assert list(table["runs_with"]) == ["optimizer on one flat buffer", "fused optimizer"]  # (no CNN: no kernels)
    for col in ["test_acc_mean", "test_acc_std", "test_loss_mean", "best_val_acc", "median_epoch_s", "samples_per_s",
                "train_s_median", "target_acc", "time_to_target_s", "peak_rss_mb", "epoch_vs_pytorch_nn"]:
        assert col in table, col
    assert list(table["target_acc"]) == [0.98, 0.98] and list(table["epoch_vs_pytorch_nn"])[1] == 1
    assert table["epoch_vs_pytorch_nn"][0] == table["median_epoch_s"][0] / table["median_epoch_s"][1]
    assert (table["median_epoch_s"] <= table["train_s_median"] + 1e-12).all()
    assert table["test_acc_mean"].between(0.5, 1).all() and table["best_val_acc"].between(0, 1).all()
    assert (table["median_epoch_s"] > 0).all() and (table["peak_rss_mb"] > 50).all()
    epochs = pd.read_csv(out / "epochs.csv")
    assert len(epochs) == 2 * 2  # two twins x two epochs
    assert epochs[["train_acc", "val_acc", "test_acc"]].stack().between(0, 1).all()
    opt = pd.read_csv(out / "optimizers.csv")
    assert set(opt["optimizer"]) == {"sgd", "momentum", "adam"} and opt["val_acc"].between(0, 1).all()
    scale = pd.read_csv(out / "scaling.csv")
    assert set(scale["batch_size"]) == {64, 512} and (scale["gflops"] > 0).all()
    report = (out / "comparison.md").read_text()
    assert "Reproduce: `python compare.py --quick" in report and "| numpy | cpu |" in report
    assert "Network: MLP 784-128-64-10, relu" in report and "| time to 98 % (s) |" in report


def test_the_report_has_no_code_names_for_headers(quick):
    """Every Markdown table's header reads as words (the CSV files keep the machine-friendly names), and each
    column of the comparison table that needs it is explained under the table."""
    _, out = quick
    report = (out / "comparison.md").read_text().splitlines()
    headers = [line for line, below in zip(report, report[1:]) if line.startswith("|") and below.startswith("|---")]
    assert len(headers) >= 7
    cells = [c.strip() for line in headers for c in line.strip("|").split("|")]
    assert not [c for c in cells if "_" in c.replace("numpy_nn", "").replace("pytorch_nn", "")], cells
    assert "- *time to 98 % (s)*: " in "\n".join(report) and "- *epoch time / pytorch_nn's*: " in "\n".join(report)


def test_the_report_says_where_the_time_goes_and_what_precision_costs(quick):
    _, out = quick
    layers = pd.read_csv(out / "layers.csv")
    for impl in ("numpy", "pytorch"):
        mine = layers[layers["implementation"] == impl].set_index("layer")
        assert {"fc1", "fc1_relu", "fc2", "fc3", "loss", "optimizer step"} <= set(mine.index)
        assert (mine.loc[["fc1", "fc2", "fc3"], ["forward_ms", "backward_ms"]] > 0).all().all()
    precision = pd.read_csv(out / "precision.csv")
    assert list(precision["dtype"]) == ["float32", "float64"]
    assert (precision[["numpy_epoch_s", "pytorch_epoch_s"]] > 0).all().all()
    assert (precision["numpy_over_pytorch"] - precision["numpy_epoch_s"] / precision["pytorch_epoch_s"]).abs().max() < 1e-12
    report = (out / "comparison.md").read_text()
    assert "## Where the time goes, layer by layer" in report and "They differ most at " in report
    assert "## What precision costs" in report and "in float64 on this network" in report


def test_the_fused_layers_line_up_with_torchs_two():
    """numpy_nn's fast CNN runs a block as one layer ("conv1+conv1_bn+pool1+conv1_relu"): pytorch_nn's four rows are
    added up into that row, forward and backward, and its other layers are left as they are."""
    from comparison.layers import aligned
    torch_rows = {"forward conv1": 1.0, "backward conv1": 4.0, "forward pool1": 2.0, "backward pool1": 3.0,
                  "forward conv1_relu": 0.5, "backward conv1_relu": 0.25, "forward fc1": 7.0}
    assert aligned(torch_rows, ["conv1+pool1+conv1_relu", "fc1"]) == {
        "forward conv1+pool1+conv1_relu": 3.5, "backward conv1+pool1+conv1_relu": 7.25, "forward fc1": 7.0}
    assert aligned(torch_rows, ["conv1", "pool1", "conv1_relu", "fc1"]) == torch_rows  # reference kernels: as they are


def test_the_results_index_links_every_report(tmp_path):
    """results/README.md (as committed) links every report folder under results/; and the index is rebuilt from
    whatever reports a folder holds."""
    from comparison import index
    root = ROOT / "results"
    folders = [p for p in [root, *root.iterdir()] if (p / "comparison.md").is_file()]
    readme = (root / "README.md").read_text()
    for folder in folders:
        link = "comparison.md" if folder == root else f"{folder.name}/comparison.md"
        assert f"]({link})" in readme, link
    import shutil
    shutil.copytree(root / "fast", tmp_path / "fast")
    text = index.write_index(tmp_path).read_text()
    assert "](fast/comparison.md)" in text and "98." in text


def test_the_report_shows_the_twins_are_one_network(quick):
    """Measured in the run: float64 lockstep at rounding level, float32 at float32 rounding, dropout apart;
    every gradient against autograd; each model evaluated by the other twin with no prediction changed."""
    _, out = quick
    steps = pd.read_csv(out / "parity.csv")
    by_case = steps.groupby("case", sort=False)["rel_diff"]
    assert list(by_case.size()) == [120, 120, 120]
    f64, f32, dropout = by_case.max()
    assert f64 < 1e-13 and 1e-9 < f32 < 1e-4 and dropout > 1e-3
    assert "rel_diff_kernels" not in steps  # an MLP's kernels sum alike: no control
    report = (out / "comparison.md").read_text()
    assert "## The twins are one network" in report and "![parity](parity.png)" in report
    grads = report.split("| tensor |")[1].split("\n\n")[0]
    for name in ("logits", "loss", "d fc1.weight", "d fc1.bias", "d fc3.weight", "d fc3.bias"):
        assert f"| {name} |" in grads, name
    relative = [float(line.rsplit("|", 2)[1]) for line in grads.splitlines()[2:]]
    assert len(relative) == 8 and max(relative) < 1e-13
    swap = pd.read_csv(out / "interchange.csv")
    assert len(swap) == 4 and (swap["differ"] == 0).all()
    own = swap[swap["weights_from"] == swap["evaluated_by"]].set_index("weights_from")["test_acc"]
    table = pd.read_csv(out / "comparison.csv").set_index("implementation")["test_acc_mean"]
    assert own["numpy_nn"] == table["numpy"] and own["pytorch_nn"] == table["pytorch"]


def test_rerun_replaces_outputs(mnist_dir, tmp_path):
    stale = tmp_path / "optimizers.png"
    stale.write_bytes(b"stale")
    (tmp_path / "notes.txt").write_text("mine")
    argv = ["--quick", "--only", "numpy", "--optimizers", "", "--batch-sizes", "", "--out", str(tmp_path),
            "--data-dir", str(mnist_dir), "--threads", "1"]
    assert compare.main(argv) == 0
    assert not stale.exists() and (tmp_path / "notes.txt").read_text() == "mine"
    assert list(pd.read_csv(tmp_path / "comparison.csv")["implementation"]) == ["numpy"]


def test_sweep_mode(mnist_dir, tmp_path):
    argv = ["--quick", "--only", "numpy", "--sweep-lr", "1e-3", "3e-3", "--sweep-hidden", "32", "64,32",
            "--out", str(tmp_path), "--data-dir", str(mnist_dir), "--threads", "1"]
    assert compare.main(argv) == 0
    table = pd.read_csv(tmp_path / "sweep.csv")
    assert len(table) == 4 and table["best_val_acc"].is_monotonic_decreasing
    assert (tmp_path / "sweep.png").stat().st_size > 0 and (tmp_path / "sweep.md").exists()


def test_no_validation_split(mnist_dir, tmp_path):
    """--val-size 0 (the best preset trains on all 60,000): no validation curves, test accuracy in their place."""
    argv = ["--quick", "--only", "numpy", "--val-size", "0", "--optimizers", "sgd", "--batch-sizes", "",
            "--out", str(tmp_path), "--data-dir", str(mnist_dir), "--threads", "1"]
    assert compare.main(argv) == 0
    epochs = pd.read_csv(tmp_path / "epochs.csv")
    assert epochs["val_acc"].isna().all() and epochs["test_acc"].between(0.5, 1).all()
    assert pd.isna(pd.read_csv(tmp_path / "comparison.csv")["best_val_acc"][0])
    assert "| - |" in (tmp_path / "comparison.md").read_text()
    for png in ("loss.png", "accuracy.png", "optimizers.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv, flag", [(["--optimizers", "sgd,lbfgs"], "--optimizers"),
                                        (["--batch-sizes", "64,x"], "--batch-sizes"),
                                        (["--sweep-lr", "1e-3", "--val-size", "0"], "--val-size"),
                                        (["--seeds", "0"], "--seeds")])
def test_bad_flags(argv, flag, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        compare.main([*argv, "--out", str(tmp_path)])  # should the check be missing, nothing lands in results/
    assert e.value.code == 2 and flag in capsys.readouterr().err


def test_stored_runs_are_reused_and_a_crash_loses_only_the_run_in_progress(mnist_dir, tmp_path, monkeypatch, capsys):
    """Interrupted at its third run, the comparison keeps the two finished ones; the same command then trains
    only what is missing; --fresh trains everything; another flag is another run."""
    from comparison import runs
    argv = ["--quick", "--only", "numpy", "--optimizers", "sgd,momentum", "--batch-sizes", "",
            "--out", str(tmp_path), "--data-dir", str(mnist_dir), "--threads", "1"]
    with monkeypatch.context() as m:
        original, calls = runs.Workers.run, [0]

        def crash_at_the_third(self, key, fn, *args):
            calls[0] += 1
            if calls[0] == 3:
                raise KeyboardInterrupt
            return original(self, key, fn, *args)
        m.setattr(runs.Workers, "run", crash_at_the_third)
        assert compare.main(argv) == 130
    assert "the same command continues" in capsys.readouterr().err
    assert len(list((tmp_path / "runs").glob("*/result.json"))) == 2 and not (tmp_path / "comparison.md").exists()
    assert compare.main(argv) == 0
    assert "(2 runs reused)" in capsys.readouterr().out
    report = (tmp_path / "comparison.md").read_text()
    assert "2 of its runs were stored by an earlier invocation" in report
    assert compare.main(argv) == 0 and "(3 runs reused)" in capsys.readouterr().out
    assert compare.main([*argv, "--fresh"]) == 0 and "runs reused)" not in capsys.readouterr().out
    # another --lr is another main run; the optimizer study sets its own learning rates, so its runs stay
    assert compare.main([*argv, "--lr", "2e-3"]) == 0 and "(2 runs reused)" in capsys.readouterr().out


def test_ctrl_c_on_the_command_line(mnist_dir, tmp_path):
    """The real CLI, Ctrl-C once the first run is stored: exit code 130, the one line that says what is kept, and
    nothing else (no traceback; no multiprocessing warning about the stopped worker's semaphores)."""
    argv = [sys.executable, "compare.py", "--quick", "--only", "numpy", "--optimizers", "", "--batch-sizes", "",
            "--threads", "1", "--data-dir", str(mnist_dir), "--out", str(tmp_path)]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "runs").glob("*/result.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    lines = [line for line in stderr.replace("\r", "\n").splitlines() if line.strip() and not line.startswith("compare:")]
    assert proc.returncode == 130 and len(lines) == 1 and lines[0].startswith("interrupted: the finished runs"), stderr


def test_every_flag_of_a_child_run_reaches_it():
    """model_argv derives a child run's flags from its train.py's parser: every flag given to compare.py (here
    each with a value other than its default) comes back equal when the child parses what it is handed."""
    from comparison.runs import model_argv, parse_run_args, run_parser
    argv = ["--model", "cnn", "--channels", "4,8", "--kernel-size", "5", "--hidden", "16", "--batch-norm",
            "--epochs", "3", "--batch-size", "32", "--test-batch-size", "500", "--lr", "0.02", "--optimizer", "sgd",
            "--momentum", "0.5", "--nesterov", "--weight-decay", "0.01", "--schedule", "step", "--step-size", "2",
            "--gamma", "0.5", "--activation", "tanh", "--dropout", "0.2", "--init", "torch", "--dtype", "float64",
            "--val-size", "100", "--limit-train", "300", "--threads", "1", "--data-dir", "somewhere",
            "--kernels", "reference", "--no-fused", "--compile", "--warmup", "0.2", "--schedule", "onecycle"]
    args = compare.parse(argv)
    for impl in ("numpy", "pytorch", None):
        child = parse_run_args(impl, "cpu", model_argv(args, impl, seed=3))
        assert child.seed == 3
        for action in run_parser(impl)._actions:
            if action.dest in {"help", "preset", "quiet", "device", "seed", "out", "save_model", "evaluate",
                               "checkpoint_every", "resume", "backend"}:  # set per run, or (backend) numpy_nn's
                continue                                                   # on the CPU in every comparison
            assert getattr(child, action.dest) == getattr(args, action.dest), (impl, action.dest)
    adam = compare.parse(["--optimizer", "adam", "--betas", "0.7,0.9"])
    assert parse_run_args("numpy", "cpu", model_argv(adam, "numpy", seed=1)).betas == (0.7, 0.9)


def test_peak_memory_is_measured_per_run():
    """In a worker that keeps freed memory (as every run's process does), a run is not charged with an earlier
    run's peak: the heap is handed back and the high-water mark reset before each run."""
    import subprocess
    import sys
    if not compare.Path("/proc/self/clear_refs").exists():
        pytest.skip("no /proc/self/clear_refs: the peak is the process's (Linux only)")
    code = ("import numpy as np\nfrom common import machine\nfrom comparison.runs import peak_memory_mb, reset_peak_memory\n"
            "machine.keep_freed_memory()\nbig = np.ones(300 * 2**20 // 8)\nbefore = peak_memory_mb()\ndel big\n"
            "reset_peak_memory()\nsmall = np.ones(10 * 2**20 // 8)\nprint(before, peak_memory_mb())")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         timeout=120).stdout
    before, after = map(float, out.split())
    assert after < before - 250, (before, after)


def test_a_recipe_with_a_per_batch_schedule_fits_every_part_of_the_report(mnist_dir):
    """--preset cnn-fast (Adam with betas, onecycle over 2 short epochs): every optimizer of the study parses with
    its flags, and the proof's lockstep runs past the schedule's last step with the learning rate held."""
    from comparison import proof
    from comparison.runs import model_argv, parse_run_args
    from comparison.studies import OPTIMIZER_FLAGS_OFF, OPTIMIZERS
    args = compare.parse(["--preset", "cnn-fast", "--quick", "--data-dir", str(mnist_dir), "--threads", "1"])
    for name, flags in OPTIMIZERS.items():
        for impl in ("numpy", "pytorch"):
            child = parse_run_args(impl, "cpu", model_argv(args, impl, seed=1, **OPTIMIZER_FLAGS_OFF) + flags)
            assert child.optimizer == flags[1] and child.betas == (0.9, 0.999)
    run_args, a, b, data = proof.twins(model_argv(args), dtype="float64")
    assert run_args.schedule == "constant" and run_args.epochs * run_args.steps_per_epoch < 20
    losses = proof.lockstep([a, b], data, run_args, steps=20)
    assert abs(losses[0] - losses[1]).max() / losses[1].max() < 1e-9


def test_a_cnn_proof_runs_numpy_nn_reference_kernels_beside_the_twins_as_a_control(mnist_dir, tmp_path):
    """A CNN's float64 lockstep carries numpy_nn with its reference kernels: rounding apart from the fast ones and
    never exactly equal (they sum in another order), in parity.csv, the table and the figure; float32 rows have none."""
    from comparison import proof
    argv = ["--model", "cnn", "--channels", "4,8", "--hidden", "16", "--batch-norm", "--batch-size", "32",
            "--optimizer", "adam", "--lr", "5e-3", "--data-dir", str(mnist_dir), "--threads", "1"]
    result = proof.proof_job(argv, steps_per_case=30)
    steps = result["steps"]
    control = steps.loc[steps["case"] == "float64, dropout off", "rel_diff_kernels"]
    assert len(control) == 30 and steps["rel_diff_kernels"].isna().sum() == 2 * 30
    assert 0 < control.max() < 1e-10 and steps["rel_diff"].iloc[:30].max() < 1e-10  # batch norm: see proof.py
    report = "\n".join(proof.section(result, None, tmp_path))
    assert f"| {proof.CONTROL} |" in report and "30 steps of adam" in report
    assert pd.read_csv(tmp_path / "parity.csv")["rel_diff_kernels"].notna().sum() == 30
