"""The flag reference, docs/flags.md, written from the parsers themselves (`python -m comparison.reference`), so that
it cannot drift from what the commands take; tests/test_docs.py checks that the committed file is current."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import flags

PATH = Path(__file__).resolve().parents[1] / "docs" / "flags.md"


def parsers() -> dict[str, argparse.ArgumentParser]:
    """Each command's parser: the twins' train.py (shared flags and each twin's own) and compare.py."""
    import compare
    numpy_p, torch_p = flags.make_parser("numpy_nn"), flags.make_parser("pytorch_nn")
    flags.numpy_flags(numpy_p)
    flags.pytorch_flags(torch_p)
    return {"numpy_nn/train.py": numpy_p, "pytorch_nn/train.py": torch_p, "compare.py": compare.make_parser()}


def cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def described(action: argparse.Action) -> str:
    """An action's help with its defaults filled in, its choices named when the help does not."""
    text = (action.help or "") % {"default": action.default, "prog": ""} if action.help else ""
    if action.choices and not any(str(c) in text for c in action.choices):
        text = f"one of {', '.join(map(str, action.choices))}; {text}" if text else f"one of {', '.join(map(str, action.choices))}"
    return text


def markdown() -> str:
    found: dict[str, dict] = {}  # flag -> {"commands": [...], "help": ...}, in the order the parsers list them
    for command, parser in parsers().items():
        for action in parser._actions:
            if not action.option_strings or action.dest == "help":
                continue
            flag = ", ".join(action.option_strings)
            entry = found.setdefault(flag, {"commands": [], "help": described(action), "metavar": action.metavar})
            entry["commands"].append(command)
    lines = ["# Flags", "",
             "Every flag of the three commands, written from their parsers by `python -m comparison.reference` (the "
             "tests check that this file is current). `--help` on any command says the same. A flag that does not fit "
             "the chosen model (`--channels` for an MLP) is refused in one line; `--preset` fills in flags that were "
             "not given (common/presets.py).", "",
             "| flag | numpy_nn/train.py | pytorch_nn/train.py | compare.py | what it does |", "|---|---|---|---|---|"]
    for flag, entry in found.items():
        marks = ["yes" if c in entry["commands"] else "" for c in ("numpy_nn/train.py", "pytorch_nn/train.py",
                                                                      "compare.py")]
        lines.append(f"| `{flag}` | " + " | ".join(marks) + f" | {cell(entry['help'])} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    PATH.parent.mkdir(exist_ok=True)
    PATH.write_text(markdown())
    print(f"wrote {PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
