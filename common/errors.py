"""The expected failures of a run. Each is said in one line by the CLIs (`error: ...`), never a traceback."""


class RunError(Exception):
    """A run cannot go on: a checkpoint that does not fit, a missing device, a flag that contradicts a file."""


class Diverged(Exception):
    """The training loss stopped being finite."""
