"""Faults and bad inputs that real use brings (paths, a full disk, damaged files, an odd last batch): each ends in
one line that names the flag, file or value, or in a clean recovery."""
import signal
import subprocess

import pytest

import numpy_nn.train
import pytorch_nn.train
from common import cli
from conftest import QUICK, run_train

TRAINERS = {"numpy": numpy_nn.train, "pytorch": pytorch_nn.train}


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


# --- paths ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("impl", TRAINERS)
def test_out_under_a_file(impl, mnist_dir, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    assert run_train(TRAINERS[impl], [*QUICK, "--out", str(tmp_path / "notes.txt" / "sub")], mnist_dir)[0] == 1
    err = one_line_error(capsys)
    assert f"--out {tmp_path / 'notes.txt' / 'sub'}: {tmp_path / 'notes.txt'} is a file, not a folder" in err


def test_compare_out_under_a_file(mnist_dir, tmp_path, capsys):
    import compare
    (tmp_path / "notes.txt").write_text("x")
    assert compare.main(["--quick", "--out", str(tmp_path / "notes.txt" / "r"), "--data-dir", str(mnist_dir)]) == 1
    assert "is a file, not a folder; name a folder for the report" in one_line_error(capsys)


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
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


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
        free = subprocess.run(["df", "--output=avail", "-B1", str(tiny_disk)], capture_output=True, text=True)
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
