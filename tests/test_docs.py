"""The documents that quote the code stay true to it: the flag reference is the parsers' own."""
from comparison import reference


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
