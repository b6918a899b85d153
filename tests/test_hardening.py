"""Faults and bad inputs that real use brings (paths, a full disk, damaged files, an odd last batch): each ends in
one line that names the flag, file or value, or in a clean recovery."""
import os
import signal
import subprocess

import numpy as np
import pytest

import numpy_nn.train
import pytorch_nn.train
from common import cli, flags, weights
from common.errors import RunError
from numpy_nn import replicas
from conftest import QUICK, run_train

TRAINERS = {"numpy": numpy_nn.train, "pytorch": pytorch_nn.train}


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


# --- paths ------------------------------------------------------------------------------------------------

def run_command(command, argv, mnist_dir):
    """numpy_nn's or pytorch_nn's train.py, or compare.py --quick, in-process: its exit code."""
    import compare
    if command == "compare":
        return compare.main(["--quick", "--only", "numpy", "--data-dir", str(mnist_dir), *argv])
    return run_train(TRAINERS[command], [*QUICK, *argv], mnist_dir)[0]


@pytest.mark.parametrize("command, purpose", [("numpy", "history.json and the model"),
                                              ("pytorch", "history.json and the model"), ("compare", "the report")])
def test_out_that_cannot_be_a_folder(command, purpose, mnist_dir, tmp_path, capsys):
    """--out naming a file, or a folder under one: one line that names the file and says what the folder is for."""
    (tmp_path / "notes.txt").write_text("x")
    assert run_command(command, ["--out", str(tmp_path / "notes.txt")], mnist_dir) == 1
    assert one_line_error(capsys) == (f"error: --out {tmp_path / 'notes.txt'}: is a file, not a folder; name a folder "
                                      f"for {purpose}")
    assert run_command(command, ["--out", str(tmp_path / "notes.txt" / "sub")], mnist_dir) == 1
    assert f"--out {tmp_path / 'notes.txt' / 'sub'}: {tmp_path / 'notes.txt'} is a file, not a folder" in \
        one_line_error(capsys)


@pytest.mark.parametrize("command", ["numpy", "pytorch", "compare"])
def test_missing_data_is_one_line(command, tmp_path, capsys, monkeypatch):
    """No MNIST files where the data folder points and no network to download them: one line, from every command."""
    import torchvision.datasets
    monkeypatch.setattr(torchvision.datasets, "MNIST", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("offline")))
    assert run_command(command, ["--out", str(tmp_path / "out")], tmp_path / "empty") == 1
    assert one_line_error(capsys).startswith("error: MNIST files missing")


@pytest.mark.parametrize("via", ["--data-dir", "MNIST_DIR"])
def test_data_folder_naming_a_file(via, tmp_path, monkeypatch, capsys):
    (tmp_path / "mnist.gz").write_bytes(b"not a folder")
    argv = [*QUICK, "--out", str(tmp_path / "out")]
    if via == "MNIST_DIR":
        monkeypatch.setenv("MNIST_DIR", str(tmp_path / "mnist.gz"))
    else:
        argv += ["--data-dir", str(tmp_path / "mnist.gz")]
    assert cli.main(numpy_nn.train.Trainer, ["--quiet", *argv], add_flags=numpy_nn.train.add_flags) == 1
    err = one_line_error(capsys)
    assert f"{via} {tmp_path / 'mnist.gz'}: it is a file, not a folder" in err


# --- a full disk ------------------------------------------------------------------------------------------

@pytest.fixture
def tiny_disk(tmp_path):
    """A 48 KiB tmpfs (as root); skipped where mounting is not allowed."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(folder)],
                      capture_output=True, timeout=30).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield folder
    subprocess.run(["umount", str(folder)], check=True, timeout=30)


@pytest.mark.parametrize("impl", TRAINERS)
@pytest.mark.parametrize("what", ["checkpoint.safetensors", "model.safetensors", "history.json"])
def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(impl, what, tiny_disk, mnist_dir, capsys):
    """Adam's checkpoint of a 784-16-10 MLP (weights and two moments, ~150 KiB) cannot fit in 48 KiB; its model
    file (~50 KiB) neither; history.json fails when a filler leaves it no room. An earlier file of the same
    name is left as it was, and no temporary file stays behind."""
    out = tiny_disk / "run"
    out.mkdir()
    (out / what).write_bytes(b"the earlier one")
    argv = [*QUICK, "--hidden", "16", "--optimizer", "adam", "--out", str(out)]
    argv += {"checkpoint.safetensors": ["--checkpoint-every", "1"],
             "model.safetensors": ["--checkpoint-every", "0", "--save-model"],
             "history.json": ["--checkpoint-every", "0"]}[what]
    if what == "history.json":
        free = subprocess.run(["df", "--output=avail", "-B1", str(tiny_disk)], capture_output=True, text=True,
                              timeout=30)
        (tiny_disk / "filler").write_bytes(b"\0" * (int(free.stdout.split()[-1]) - 512))
    module = TRAINERS[impl]
    assert cli.main(module.Trainer, ["--quiet", "--data-dir", str(mnist_dir), *argv], add_flags=module.add_flags) == 1
    err = one_line_error(capsys)
    assert f"could not write {out / what}" in err and "No space left on device" in err
    assert (out / what).read_bytes() == b"the earlier one"
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


# --- signals ----------------------------------------------------------------------------------------------

def test_stop_request_gives_back_the_handlers_it_found():
    """After a stop, a later Ctrl-C in the same process is what it was before, not an os._exit."""
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with cli.StopRequest() as stop:
        stop.handle(signal.SIGINT, None)
        assert stop()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


# --- weight files whose own record is wrong ---------------------------------------------------------------

@pytest.fixture(scope="module")
def model_file(mnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("model")
    assert run_train(numpy_nn.train, [*QUICK, "--epochs", "1", "--hidden", "32", "--save-model", "--out", str(out)],
                     mnist_dir)[0] == 0
    return out / "model.safetensors"


DROP = object()


def with_record(path, folder, **changes):
    """A copy of a model file whose recorded flags ('config') have these changes (DROP deletes one)."""
    arrays, meta = weights.read_file(path)
    config = {k: v for k, v in {**meta["config"], **changes}.items() if v is not DROP}
    copy = folder / "edited.safetensors"
    weights.write_file(copy, arrays, {**{k: v for k, v in meta.items() if k != "format"}, "config": config})
    return copy


@pytest.mark.parametrize("impl", TRAINERS)
@pytest.mark.parametrize("changes, message", [
    (dict(activation="swish"), "records --activation 'swish', not one of relu, tanh, sigmoid"),
    (dict(hidden=[32, -1]), "records --hidden [32, -1], "),
    (dict(hidden="abc"), "records --hidden 'abc', "),
    (dict(hidden=[32.5]), "records --hidden [32.5], "),
    (dict(batch_norm="yes"), "records --batch-norm 'yes', not one of all, dense"),
    (dict(batch_norm=True), "its tensors contradict its own record"),  # an older file's true: batch norm everywhere
    (dict(dtype="float16"), "records --dtype 'float16', not one of float32, float64"),
    (dict(activation=DROP), "its record lacks 'activation'"),
    (dict(model="cnn", channels=None), "records --model cnn with --channels None"),
    (dict(model="cnn", channels=[4, 8], kernel_size=3), "its tensors contradict its own record"),
    (dict(hidden=[16]), "its tensors contradict its own record"),
    (dict(padding="full"), "records --padding 'full', not one of same, valid"),
])
def test_a_model_file_whose_record_is_wrong(impl, changes, message, model_file, mnist_dir, tmp_path, capsys):
    edited = with_record(model_file, tmp_path, **changes)
    assert run_train(TRAINERS[impl], ["--evaluate", str(edited)], mnist_dir)[0] == 1
    err = one_line_error(capsys)
    assert str(edited) in err and message in err, err


@pytest.mark.parametrize("impl", TRAINERS)
def test_a_model_file_from_before_batch_norm_took_a_value(impl, model_file, mnist_dir, tmp_path, capsys):
    """Files written when --batch-norm was on or off record true or false: false reads as none."""
    assert run_train(TRAINERS[impl], ["--evaluate", str(with_record(model_file, tmp_path, batch_norm=False))],
                     mnist_dir)[0] == 0
    assert "accuracy" in capsys.readouterr().out


def test_a_recorded_value_goes_through_its_flags_checks():
    """A record's values parsed as the command line's: --batch-norm's older true and false, its values now, and
    an on-off flag's record that is not true or false."""
    from common import flags, records
    parser = flags.make_parser("numpy")
    read = [records.recorded_value(parser, "batch_norm", v, "f") for v in (True, False, None, "all", "dense")]
    assert read == ["all", None, None, "all", "dense"]
    with pytest.raises(cli.RunError, match="f: records --nesterov 'yes', not true or false"):
        records.recorded_value(parser, "nesterov", "yes", "f")


def test_a_model_file_from_before_padding_was_recorded(mnist_dir, tmp_path, capsys):
    """Files written before --padding existed lack it and held "same"-padded networks: read so. A "valid" CNN's
    file with the flag dropped from its record then contradicts its own tensors (fc1 is smaller), in one line."""
    out = tmp_path / "run"
    argv = [*QUICK, "--epochs", "1", "--model", "cnn", "--channels", "2,4", "--kernel-size", "5,3", "--padding",
            "valid", "--hidden", "8", "--save-model", "--out", str(out)]
    assert run_train(numpy_nn.train, argv, mnist_dir)[0] == 0
    assert run_train(pytorch_nn.train, ["--evaluate", str(out / "model.safetensors")], mnist_dir)[0] == 0
    capsys.readouterr()
    edited = with_record(out / "model.safetensors", tmp_path, padding=DROP)
    assert run_train(numpy_nn.train, ["--evaluate", str(edited)], mnist_dir)[0] == 1
    assert "its tensors contradict its own record" in one_line_error(capsys)


@pytest.mark.parametrize("impl", TRAINERS)
def test_evaluate_given_a_checkpoint_says_so(impl, mnist_dir, tmp_path, capsys):
    from common import flags, resume
    from common.loop import Progress
    parser = flags.make_parser("t")
    TRAINERS[impl].add_flags(parser)
    args = flags.parse_args(parser, ["--hidden", "16", "--device", "cpu"] if impl == "pytorch" else ["--hidden", "16"])
    path = resume.write(tmp_path, TRAINERS[impl].Trainer(args), args, Progress())
    assert run_train(TRAINERS[impl], ["--evaluate", str(path)], mnist_dir)[0] == 1
    assert f"{path}: a training checkpoint, not a model file; continue its run with --resume" in one_line_error(capsys)


@pytest.mark.parametrize("impl", TRAINERS)
def test_weights_of_another_dtype_are_refused(impl):
    from common import flags
    parser = flags.make_parser("t")
    TRAINERS[impl].add_flags(parser)
    trainer = TRAINERS[impl].Trainer(flags.parse_args(parser, ["--hidden", "16"]))
    arrays = {k: v.astype("float64") if v.dtype.kind == "f" else v for k, v in trainer.weights().items()}
    with pytest.raises(ValueError, match="fc1.weight holds float64, this model's float32"):
        trainer.load_weights(arrays)


# --- checkpoints whose optimizer state is incomplete -------------------------------------------------------

@pytest.mark.parametrize("impl", TRAINERS)
@pytest.mark.parametrize("optimizer", [["--optimizer", "adam"], ["--optimizer", "sgd", "--momentum", "0.9"]])
def test_a_checkpoint_without_its_optimizer_state_is_refused(impl, optimizer, mnist_dir, tmp_path, monkeypatch,
                                                              capsys):
    """Resuming Adam without its moments, or momentum SGD without its buffers, would quietly be another run."""
    from test_survival import signal_at_step
    module = TRAINERS[impl]
    signal_at_step(monkeypatch, module, 5)
    assert run_train(module, [*QUICK, *optimizer, "--out", str(tmp_path)], mnist_dir)[0] == 130
    monkeypatch.undo()
    arrays, meta = weights.read_file(tmp_path / "checkpoint.safetensors")
    kept = {k: v for k, v in arrays.items() if not (k.startswith("optimizer.") and k.endswith(("exp_avg_sq.all", "1")))
            and "momentum_buffer" not in k and not k.endswith("exp_avg_sq")}
    assert len(kept) < len(arrays)
    weights.write_file(tmp_path / "checkpoint.safetensors", kept, {k: v for k, v in meta.items() if k != "format"})
    capsys.readouterr()
    assert run_train(module, ["--resume", str(tmp_path)], mnist_dir)[0] == 1
    err = one_line_error(capsys)
    assert f"the checkpoint in {tmp_path}: the optimizer's state lacks" in err and "start the run again" in err


# --- batch norm and a last batch of one image ---------------------------------------------------------------

def test_a_last_batch_of_one_is_skipped_with_batch_norm(mnist_dir, tmp_path, capsys):
    """129 images in batches of 64 leave one over, which batch norm cannot normalize alone (torch refuses it;
    a hand-written layer would divide by sqrt(eps)): both twins skip it, say so once, and agree (float64)."""
    argv = ["--batch-norm", "--limit-train", "129", "--batch-size", "64", "--epochs", "2", "--dropout", "0",
            "--dtype", "float64", "--val-size", "500", "--threads", "1"]
    histories = {}
    for impl, module in TRAINERS.items():
        code, histories[impl] = run_train(module, [*argv, "--out", str(tmp_path / impl)], mnist_dir)
        assert code == 0
        assert capsys.readouterr().out.count("leave 1 over, which --batch-norm cannot normalize alone") == 1
    for a, b in zip(histories["numpy"]["epochs"], histories["pytorch"]["epochs"]):
        assert abs(a["train_loss"] - b["train_loss"]) <= 1e-10 * a["train_loss"]
    import data_loader
    x = list(data_loader.batches(np.arange(129), np.arange(129), 64, 1, 0, min_last=2))
    assert [len(b[0]) for b in x] == [64, 64]


# --- compare.py and a damaged stored run ------------------------------------------------------------------

def test_a_damaged_stored_run_is_trained_again(tmp_path, capsys):
    from comparison.runs import Store, train_job
    store = Store(tmp_path)
    args = ("numpy", "cpu", ["--epochs", "1"], False)
    store.put(train_job, args, {"epochs": [], "test_acc": 0.9})
    assert store.get(train_job, args) == {"epochs": [], "test_acc": 0.9}
    result = store.path(train_job, args) / "result.json"
    result.write_text(result.read_text()[:20])  # truncated, as by a crash of another tool or a full disk
    assert store.get(train_job, args) is None
    err = capsys.readouterr().err
    assert f"{store.path(train_job, args)}: damaged (JSONDecodeError" in err and "training that run again" in err


@pytest.mark.parametrize("impl", TRAINERS)
@pytest.mark.parametrize("damage, message", [
    (lambda meta: {**meta, "progress": {**meta["progress"], "epoch": "two"}}, "its recorded progress has epoch='two'"),
    (lambda meta: {**meta, "progress": {**meta["progress"], "step": -3}}, "its recorded progress has step=-3"),
    (lambda meta: {k: v for k, v in meta.items() if k != "progress"}, "its record lacks progress"),
    (lambda meta: {**meta, "trainer": {}}, "it is damaged: start the run again"),
    (lambda meta: {**meta, "trainer": {**meta["trainer"], "steps": -3,
                                       "scheduler": {**meta["trainer"].get("scheduler", {}), "last_epoch": -3}}},
     "=-3, not a position of this run's schedule"),
])
def test_a_checkpoint_whose_record_is_damaged(impl, damage, message, mnist_dir, tmp_path, monkeypatch, capsys):
    """Every value --resume reads from a checkpoint is checked: the progress it records, the trainer's state."""
    from test_survival import signal_at_step
    module = TRAINERS[impl]
    signal_at_step(monkeypatch, module, 5)
    assert run_train(module, [*QUICK, "--out", str(tmp_path)], mnist_dir)[0] == 130
    monkeypatch.undo()
    arrays, meta = weights.read_file(tmp_path / "checkpoint.safetensors")
    meta = damage({k: v for k, v in meta.items() if k != "format"})
    weights.write_file(tmp_path / "checkpoint.safetensors", arrays, meta)
    capsys.readouterr()
    assert run_train(module, ["--resume", str(tmp_path)], mnist_dir)[0] == 1
    err = one_line_error(capsys)
    assert str(tmp_path) in err and message in err, err


def _train_a_cnn(mnist_dir):
    """A CNN's trainer of the default processes, one step: how many processes shared the batch."""
    import numpy_nn.train
    args = flags.parse_args(_numpy_parser(), ["--model", "cnn", "--channels", "2", "--hidden", "4", "--threads", "2",
                                             "--data-dir", str(mnist_dir), "--limit-train", "64", "--val-size", "0"])
    trainer, data = numpy_nn.train.Trainer(args), cli.load_data(args)
    trainer.train_step(data.x_train[:8], data.y_train[:8])
    trainer.close()
    return trainer.processes


def _numpy_parser():
    p = flags.make_parser("t")
    flags.numpy_flags(p)
    return p


@pytest.mark.skipif(os.cpu_count() < 2, reason="two processes need two cores")
def test_a_trainer_in_a_worker_process(mnist_dir, monkeypatch):
    """In a worker of concurrent.futures (compare.py's), a CNN shares its batch over processes as anywhere; in a
    multiprocessing.Pool's, which may not start processes of its own (daemonic), it trains in one, and asked for
    more it says so in one line."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        assert pool.submit(_train_a_cnn, mnist_dir).result(timeout=120) == 2
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply_async(_train_a_cnn, (mnist_dir,)).get(timeout=120) == 1
    monkeypatch.setattr(multiprocessing.current_process(), "daemon", True)
    args = flags.parse_args(_numpy_parser(), ["--model", "cnn", "--threads", "2"])
    assert replicas.count(args) == 1
    args.processes = 2
    with pytest.raises(RunError, match="--processes 2: this process is a daemonic worker"):
        replicas.count(args)


@pytest.mark.parametrize("flag, tail", [("--out", ""), ("--data-dir", ""), ("--resume", ""),
                                        ("--evaluate", "/model.safetensors")])
@pytest.mark.parametrize("impl", ["numpy", "pytorch"])
def test_a_name_too_long_for_the_filesystem_is_one_line(flag, tail, impl, mnist_dir, tmp_path, capsys):
    """A path with a name over the filesystem's limit (255 bytes on most) ends in one line naming the flag, before
    anything is read or trained, as the read-only and full-disk cases do; so does a path over PATH_MAX."""
    module = {"numpy": numpy_nn.train, "pytorch": pytorch_nn.train}[impl]
    for path in (tmp_path / ("x" * 300), tmp_path.joinpath(*["y" * 200] * 25)):
        code, _ = run_train(module, [flag, f"{path}{tail}", "--epochs", "1"], mnist_dir)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and len(err) == 1 and err[0].startswith(f"error: {flag} "), err
        assert "this filesystem allows; use a shorter" in err[0], err


def test_compare_refuses_a_name_too_long_in_one_line(tmp_path, capsys):
    import compare
    for flag in ("--out", "--data-dir"):
        assert compare.main(["--quick", "--out", str(tmp_path / "report"), flag, str(tmp_path / ("z" * 300))]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith(f"error: {flag} ") and "use a shorter name" in err[-1], err
