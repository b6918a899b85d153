"""The one weight format both twins share: torch's state_dict names and layouts, as NumPy arrays."""
from __future__ import annotations

import numpy as np


def check_match(arrays: dict, own: dict) -> None:
    """Raise ValueError, in one line, unless arrays has exactly own's names and shapes."""
    if set(arrays) != set(own):
        missing, extra = sorted(set(own) - set(arrays)), sorted(set(arrays) - set(own))
        raise ValueError("tensors do not match this model's: " + "; ".join(filter(None, [
            f"missing {', '.join(missing)}" if missing else "", f"unexpected {', '.join(extra)}" if extra else ""])))
    for name, v in own.items():
        if tuple(np.shape(arrays[name])) != tuple(v.shape):
            raise ValueError(f"{name} has shape {tuple(np.shape(arrays[name]))}, this model's is {tuple(v.shape)}")
