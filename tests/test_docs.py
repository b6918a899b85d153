"""The documents stay true to what they quote: the flag reference is the parsers' own, ANALYSIS.md's figures are the
committed reports', and what it says in words holds in them."""
import re
from pathlib import Path

import pandas as pd

from comparison import reference

ROOT = Path(__file__).resolve().parents[1]


def test_the_flag_reference_is_current():
    """docs/flags.md is what `python -m comparison.reference` writes from the parsers today: a flag added, removed or
    reworded without rewriting it fails here."""
    assert reference.PATH.read_text() == reference.markdown(), "docs/flags.md is stale: python -m comparison.reference"


def test_the_flag_reference_names_every_flag_of_every_command():
    text = reference.PATH.read_text()
    for command, parser in reference.parsers().items():
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                assert f"`{', '.join(action.option_strings)}`" in text, (command, action.option_strings)


def test_analysis_is_written_from_the_reports():
    """Every table of ANALYSIS.md is what `python -m comparison.analysis` writes from the committed reports today: a
    report regenerated without rewriting ANALYSIS.md, or a figure edited by hand, fails here."""
    from comparison import analysis
    text = analysis.ANALYSIS.read_text()
    assert text == analysis.render(text), "ANALYSIS.md is stale: python -m comparison.analysis"
    blocks = set(re.findall(r"<!-- begin ([\w-]+) -->", text))
    assert blocks == set(analysis.BLOCKS), blocks ^ set(analysis.BLOCKS)


def test_analysis_is_short_and_has_no_history():
    text = (ROOT / "ANALYSIS.md").read_text()
    assert len(text.splitlines()) <= 300
    assert max(len(line) for line in text.splitlines() if not line.startswith("|")) <= 120


STRETCH = "sess" + "ion"  # a stretch of work, spelled in two pieces so that this file does not name it itself


def test_no_project_file_speaks_of_stretches_of_work():
    """Project files say what is, not who worked on it when: no stretch or round of work named in code, docs,
    reports or notebooks (pytest's fixture scope of that name aside)."""
    words = re.compile(rf"\b({STRETCH}s?|rounds? of work|this round|last round|next round|the \w+ {STRETCH})\b", re.I)
    found = []
    for path in ROOT.rglob("*"):
        if path.suffix not in {".py", ".md", ".ipynb", ".csv", ".json"} or {".git", "runs"} & set(path.parts) \
                or path == Path(__file__):  # (this file spells out the phrases it looks for)
            continue
        for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if words.search(line.replace(f'scope="{STRETCH}"', "")):
                found.append(f"{path.relative_to(ROOT)}:{i}")
    assert not found, found


def test_what_analysis_says_in_words_holds_in_the_reports():
    """The directions ANALYSIS.md states in prose, checked against the reports it reads: numpy_nn ahead on the MLPs
    and the ViT, behind on the CNNs and LSTMs; the twins' accuracies within the seeds' spread of each other; sharing
    the batch over processes paying for the CNNs, the LSTM and the ViT and not for the MLP; float64 costing pytorch_nn
    more than numpy_nn on the CNNs; the float64 lockstep drifting no further than the control; the LSTM's
    order (one process, then two, then pytorch_nn) and the attention kernels' (reference slowest, then one process,
    then two)."""
    from comparison import analysis, speed
    text = analysis.ANALYSIS.read_text()
    for name in analysis.REPORTS:
        t = analysis.cpu_rows(name)
        kernels = pd.read_csv(analysis.report(name) / "comparison.csv")["runs_with"].str.contains("kernels").any()
        ratio = t.loc["numpy", "median_epoch_s"] / t.loc["pytorch", "median_epoch_s"]
        assert (ratio > 1) == (kernels and name != "vit"), (name, ratio)  # behind on the CNNs and the LSTMs
        spread = max(t["test_acc_std"].max(), 0.0005)
        assert abs(t.loc["numpy", "test_acc_mean"] - t.loc["pytorch", "test_acc_mean"]) <= 2 * spread, name
        if name in ("lenet", "cnn", "cnn-fast"):
            p = pd.read_csv(analysis.report(name) / "precision.csv").set_index("dtype")
            assert (p.loc["float64", "pytorch_epoch_s"] / p.loc["float32", "pytorch_epoch_s"]
                    > p.loc["float64", "numpy_epoch_s"] / p.loc["float32", "numpy_epoch_s"]), name
        steps = pd.read_csv(analysis.report(name) / "parity.csv")  # the 11th digit, or the control drifts as far
        twins = steps[steps["case"].str.startswith("float64")]["rel_diff"].max()  # (within a few tens)
        control = steps["rel_diff_kernels"].max() if "rel_diff_kernels" in steps else 0.0
        assert twins < 1e-11 or twins <= 30 * control, (name, twins, control)
    for name in ("cnn", "cnn-fast", "lstm", "vit"):
        for row in speed.bench(name, "own")["rows"]:
            if row["variant"] == "numpy_nn one process":
                shared = next(r for r in speed.bench(name, "own")["rows"]
                              if r["variant"] == "numpy_nn" and r["batch_size"] == row["batch_size"])
                assert row["median_s"] > shared["median_s"], (name, row["batch_size"])
    levers = pd.read_csv(analysis.RESULTS / "levers.csv")
    mlp = levers[levers["network"] == "default MLP"].iloc[0]
    assert mlp["with_ms"] > mlp["without_ms"] and "not used" in mlp["verdict"]
    assert "numpy_nn's bare calls into NumPy and BLAS cost less than PyTorch's" in text
    recipe, searched = analysis.cpu_rows("mnist-rnn"), analysis.cpu_rows("lstm")  # "stops well short of the LSTM preset"
    assert recipe["test_acc_mean"].max() + 0.02 < searched["test_acc_mean"].min()
    median = {r["variant"]: r["median_s"] for r in speed.bench("lstm", "own")["rows"]}
    assert median["numpy_nn one process"] > median["numpy_nn"] > median["pytorch_nn"]
    median = {r["variant"]: r["median_s"] for r in speed.bench("vit", "own")["rows"]}
    assert median["numpy_nn reference"] > median["numpy_nn one process"] > median["numpy_nn"]
    assert median["pytorch_nn"] > median["numpy_nn"]
