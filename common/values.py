"""The argparse types of the flags: a number in a range, layer sizes, Adam's betas, a thread count, each with an
argparse-style message that names the value and what it must be."""
import argparse
import math

from common.machine import default_threads


def number(kind, low=None, high=None, low_open=False, high_open=False):
    """An argparse type: kind(text) within [low, high] (or open ends), with an argparse-style message."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}")
        bad_low = low is not None and (value <= low if low_open else value < low)
        bad_high = high is not None and (value >= high if high_open else value > high)
        if bad_low or bad_high or not math.isfinite(value):
            lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
            hi = "" if high is None else f"{'<' if high_open else '<='} {high}"
            raise argparse.ArgumentTypeError(f"{text} is out of range; must be {' and '.join(filter(None, [lo, hi]))}")
        return value
    parse.__name__ = kind.__name__
    return parse


def batch_sizes(text):
    """'64,128' -> [64, 128]: the benchmarks' --batch-sizes, one at least."""
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated batch sizes, e.g. 64,128") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: batch sizes must be positive, one at least")
    return values


def sizes(text):
    """'128,64' -> (128, 64); '' -> () (softmax regression)."""
    try:
        values = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated layer sizes, e.g. 128,64")
    if any(s < 1 for s in values):
        raise argparse.ArgumentTypeError(f"{text!r}: layer sizes must be positive")
    return values


def betas(text):
    """'0.9,0.999' -> (0.9, 0.999): Adam's two decay rates, each in [0, 1)."""
    try:
        values = tuple(float(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected two numbers, e.g. 0.9,0.999") from None
    if len(values) != 2 or not all(0 <= v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: expected two numbers in [0, 1), e.g. 0.9,0.999")
    return values


def threads(text):
    """--threads: a positive count, no more than this machine's cores (oversubscribing only slows the math)."""
    value = number(int, 1)(text)
    if value > default_threads():
        raise argparse.ArgumentTypeError(f"{value}: this machine has {default_threads()} cores; use at most "
                                         f"{default_threads()}")
    return value
