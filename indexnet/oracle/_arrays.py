"""The oracle's one conversion: caller arrays (NumPy, lists, CPU tensors) to fresh float64."""
from __future__ import annotations

from typing import Any

import numpy as np


def as_float64(name: str, x: Any) -> np.ndarray:
    """A fresh C-contiguous float64 copy of ``x``.

    Accepted: NumPy arrays, nested lists, scalars and CPU tensors (anything with
    ``.detach()``) of any float precision, of integers, unsigned integers or booleans.
    The conversion is explicit and documented: the oracle computes in float64 only.

    Raises
    ------
    TypeError
        Complex, string or object data.
    """
    if hasattr(x, "detach"):  # a torch tensor, possibly requiring grad
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name}: expected real numbers (float, int or bool), got dtype {arr.dtype}")
    return np.array(arr, dtype=np.float64, order="C", copy=True)
