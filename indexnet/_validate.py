"""Input checks for the public boundary.

Kernels trust their inputs; everything a user can call checks them here first and
raises an error that names the argument, what was expected and what was given.
Nothing is coerced silently: a float32 array passed where float64 is required is an
error, not a copy.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _shape_str(shape: Sequence) -> str:
    return "(" + ", ".join("*" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def check_array(
    name: str,
    x,
    *,
    ndim: int | None = None,
    shape: Sequence[int | None] | None = None,
    dtype=None,
    finite: bool = True,
    contiguous: bool = True,
    min_samples: int | None = 1,
) -> np.ndarray:
    """Check one array argument and return it unchanged.

    Parameters
    ----------
    name : str
        The argument's name, used in the error message.
    x : array
        The value to check. Must already be a ``numpy.ndarray``.
    ndim, shape : optional
        Expected number of dimensions, or an exact shape where ``None`` matches any
        extent.
    dtype : dtype or tuple of dtypes, optional
        Accepted dtypes. Default: float32 or float64.
    finite : bool
        Reject NaN and Inf.
    contiguous : bool
        Require C-contiguous memory (the kernels index the last axis with unit stride).
    min_samples : int or None
        Minimum extent of the last axis (samples-last layout); ``None`` skips it.

    Raises
    ------
    TypeError
        Not an ndarray, or a dtype that is not accepted.
    ValueError
        Wrong ndim or shape, non-contiguous, too few samples, or non-finite values.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(x).__name__}")
    accepted = FLOAT_DTYPES if dtype is None else tuple(np.dtype(d) for d in np.atleast_1d(dtype))
    if x.dtype not in accepted:
        names = " or ".join(str(d) for d in accepted)
        raise TypeError(f"{name}: expected dtype {names}, got {x.dtype}")
    if shape is not None:
        ndim = len(shape)
    if ndim is not None and x.ndim != ndim:
        want = _shape_str(shape) if shape is not None else f"{ndim}-D"
        raise ValueError(f"{name}: expected a {ndim}-D array of shape {want}, got shape {x.shape}")
    if shape is not None:
        for want, got in zip(shape, x.shape):
            if want is not None and want != got:
                raise ValueError(f"{name}: expected shape {_shape_str(shape)}, got {x.shape}")
    if min_samples is not None and x.ndim >= 1 and x.shape[-1] < min_samples:
        raise ValueError(
            f"{name}: expected at least {min_samples} sample(s) on the last axis "
            f"(samples-last layout), got shape {x.shape}"
        )
    if contiguous and not x.flags.c_contiguous:
        raise ValueError(
            f"{name}: expected a C-contiguous array, got strides {x.strides} for shape "
            f"{x.shape}; pass np.ascontiguousarray({name})"
        )
    if finite and x.dtype.kind == "f" and x.size and not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(
            f"{name}: expected finite values, got {x[tuple(bad)]} at index {tuple(int(i) for i in bad)}"
        )
    return x


def check_choice(name: str, value: str, choices: Iterable[str]) -> str:
    """``value`` is one of ``choices``; otherwise a ValueError listing them."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_one_hot(name: str, Y: np.ndarray) -> np.ndarray:
    """Each column of ``Y`` (samples last) is a one-hot vector."""
    ok_values = np.all((Y == 0) | (Y == 1))
    sums = Y.sum(axis=0)
    if not ok_values or not np.all(sums == 1):
        bad = int(np.flatnonzero(~(((Y == 0) | (Y == 1)).all(axis=0) & (sums == 1)))[0])
        raise ValueError(
            f"{name}: expected one-hot columns (one 1, the rest 0, samples last), "
            f"got column {bad} = {Y[:, bad].tolist()[:12]}"
        )
    return Y


def check_range(name: str, Y: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """All values of ``Y`` lie in ``[lo, hi]``."""
    if Y.size and (Y.min() < lo or Y.max() > hi):
        raise ValueError(f"{name}: expected values in [{lo}, {hi}], got range [{Y.min()}, {Y.max()}]")
    return Y


def check_positive_int(name: str, value, *, minimum: int = 1) -> int:
    """An integer of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def check_real(name: str, value, *, lo: float | None = None, hi: float | None = None,
                lo_open: bool = False, hi_open: bool = False) -> float:
    """A finite real number in the interval given; returns it as a float.

    Raises
    ------
    ValueError
        Not a real number (bools included), not finite, or outside the interval; the
        message names the argument, the interval and the value.
    """
    lo_s = "" if lo is None else ("(" if lo_open else "[") + repr(lo)
    hi_s = "" if hi is None else repr(hi) + (")" if hi_open else "]")
    if lo is not None and hi is not None:
        want = f"a number in {lo_s}, {hi_s}"
    elif lo is not None:
        want = f"a number {'>' if lo_open else '>='} {lo!r}"
    elif hi is not None:
        want = f"a number {'<' if hi_open else '<='} {hi!r}"
    else:
        want = "a finite number"
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if ok:
        x = float(value)
        ok = math.isfinite(x)
        ok = ok and (lo is None or (x > lo if lo_open else x >= lo))
        ok = ok and (hi is None or (x < hi if hi_open else x <= hi))
    if not ok:
        raise ValueError(f"{name}: expected {want}, got {value!r}")
    return x
