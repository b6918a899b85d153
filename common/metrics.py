"""Scoring logits, the same function for both twins' predictions (so neither twin grades itself)."""
import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """(N, C) -> (N, C), by log-sum-exp after subtracting each row's max: stable for any finite logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the integer labels y (N,) under softmax(logits)."""
    return float(-log_softmax(logits)[np.arange(len(y)), y].mean())


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float((logits.argmax(axis=1) == y).mean())
