"""Compare nested gradients and say exactly where they differ.

Light on purpose: NumPy only, so the pytest plugin can call it without compiling a kernel.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np


def _leaves(tree: Any, path: tuple, out: dict, names: Sequence[str] | None) -> None:
    """Flatten nested dicts / lists / tuples into ``{path: leaf}``."""
    if hasattr(tree, "grads_dict") and callable(tree.grads_dict):  # an OracleResult
        tree = tree.grads_dict()
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            _leaves(value, path + (str(key),), out, None)
    elif isinstance(tree, (list, tuple)):
        if names is not None and len(names) != len(tree):
            raise ValueError(f"names: expected {len(tree)} names (one per top-level entry), got {len(names)}")
        for k, value in enumerate(tree):
            _leaves(value, path + ((names[k] if names is not None else f"[{k}]"),), out, None)
    else:
        out[path] = tree


def _as_array(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _label(path: tuple) -> str:
    return " / ".join(path) if path else "(value)"


def relative_error(mine: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Elementwise ``|mine - reference| / |reference|``: 0 where both are equal (also both 0),
    inf where only the reference is 0."""
    mine, reference = _as_array(mine), _as_array(reference)
    diff = np.abs(mine - reference)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = diff / np.abs(reference)
    return np.where(diff == 0, 0.0, rel)


def _describe(label: str, m: np.ndarray, r: np.ndarray, rtol: float, atol: float) -> tuple[int, str | None]:
    """Number of elements out of tolerance in one array, and a line naming the worst."""
    diff = np.abs(m - r)
    tol = atol + rtol * np.abs(r)
    off = ~(diff <= tol)  # NaN counts as off
    n_off = int(off.sum())
    if not n_off:
        return 0, None
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(off, np.where(np.isnan(diff), np.inf, diff / tol), -1.0)
    worst = np.unravel_index(int(np.argmax(score)), m.shape) if m.ndim else ()
    idx = tuple(int(i) for i in worst)
    rel = float(relative_error(m[idx], r[idx]))
    where = f"index {idx}" if idx else "the value"
    return n_off, (
        f"{label}: {n_off} of {m.size} element(s) off; worst at {where}: mine {float(m[idx])!r}, "
        f"reference {float(r[idx])!r}, abs error {float(diff[idx]):.3g}, rel error {rel:.3g}"
    )


def _describe_bound(label: str, m: np.ndarray, r: np.ndarray, bound: np.ndarray, kink: np.ndarray,
                    atol: float, what: str) -> tuple[int, str | None]:
    """Number of elements over their rounding bound in one array (kink-sensitive ones
    skipped), and a line naming the worst: index, values, error, bound, times over."""
    diff = np.abs(m - r)
    tol = bound + atol
    off = ~(diff <= tol) & ~kink  # NaN counts as off
    n_off = int(off.sum())
    if not n_off:
        return 0, None
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(off, np.where(np.isnan(diff), np.inf, diff / tol), -1.0)
    idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(score)), m.shape)) if m.ndim else ()
    where = f"index {idx}" if idx else "the value"
    skipped = f" ({int(kink.sum())} kink-sensitive skipped)" if kink.any() else ""
    return n_off, (
        f"{label}: {n_off} of {m.size} element(s) over the {what} bound{skipped}; worst at {where}: "
        f"mine {float(m[idx])!r}, reference {float(r[idx])!r}, abs error {float(diff[idx]):.3g}, "
        f"bound {float(tol[idx]):.3g} ({float(score[idx]):.3g} times the bound)"
    )


def _bound_trees(reference: Any, dtype: str | None, bounds: Any, kink: Any, names) -> tuple[dict, dict, str]:
    """The bound and kink leaves for a bound-based comparison, and the words for the bound."""
    precision = getattr(reference, "precision", None)
    if bounds is None:
        bounds = getattr(reference, "bounds", None)
        if bounds is None:
            raise ValueError(
                f"reference: expected an OracleResult computed with bounds, e.g. oracle.dense(..., "
                f"bounds={dtype or 'float32'!r}), or bounds=...; got {type(reference).__name__} without bounds"
            )
        if kink is None:
            kink = getattr(reference, "kink", None)
        if dtype is not None and precision is not None and str(dtype) != precision:
            raise ValueError(f"dtype: the reference's bounds are for {precision!r}, got dtype={dtype!r}")
    what = " ".join(w for w in (precision or dtype or "rounding", getattr(reference, "bound_method", "") or "") if w)
    b: dict = {}
    k: dict = {}
    _leaves(bounds, (), b, names)
    if kink is not None:
        _leaves(kink, (), k, names)
    return b, k, what.replace("_", "-")


def assert_gradients_match(
    mine: Any,
    reference: Any,
    *,
    rtol: float = 1e-7,
    atol: float = 0.0,
    names: Sequence[str] | None = None,
    dtype: str | None = None,
    bounds: Any = None,
    kink: Any = None,
) -> None:
    """Assert that two sets of gradients agree element by element.

    An element passes when ``|mine - reference| <= atol + rtol * |reference|`` (the
    reference is the trusted side; NaN never passes). With ``dtype`` or ``bounds``, it
    passes instead when ``|mine - reference| <= bound + atol``, the elementwise rounding
    bound of a correct ``dtype`` implementation (derivations/rounding.md); kink-sensitive
    elements, which have no bound, are skipped and counted.

    Parameters
    ----------
    mine, reference : array, scalar, nested dict / list / tuple of them, or OracleResult
        For example ``{"layer 1": {"W": dW1, "b": db1}, "layer 2": {...}}``. Both must
        have the same keys and shapes. An :class:`~indexnet.oracle.OracleResult` stands
        for its :meth:`~indexnet.oracle.OracleResult.grads_dict`. Torch tensors are
        accepted. Everything is compared in float64.
    rtol, atol : float
        Relative and absolute tolerance.
    names : sequence of str, optional
        Labels for the top-level entries when ``mine`` and ``reference`` are lists
        (e.g. ``["layer 1", "layer 2"]``); default ``[0]``, ``[1]``, ...
    dtype : str, optional
        ``"float32"`` (``"float16"``, ``"bfloat16"``): check against the rounding bounds
        that ``reference`` carries, an :class:`~indexnet.oracle.OracleResult` computed
        with ``bounds=dtype``. ``rtol`` is then not used.
    bounds, kink : same structure as ``reference``, optional
        Explicit bounds (e.g. ``result.bounds.to_dict()`` beside ``result.to_dict()``) and
        the masks of kink-sensitive elements (``result.kink.to_dict()``).

    Raises
    ------
    AssertionError
        Naming every array that differs (its path, e.g. ``layer 1 / W``), how many of
        its elements are off, and the worst one: index, both values, absolute and
        relative error (with bounds: the bound and how many times over it the error
        is); also missing or extra entries and shape mismatches.
    ValueError
        ``dtype`` given but ``reference`` carries no bounds (or bounds for another dtype).
    """
    __tracebackhide__ = True
    if not (rtol >= 0 and atol >= 0):
        raise ValueError(f"rtol, atol: expected non-negative tolerances, got rtol={rtol!r}, atol={atol!r}")
    use_bounds = dtype is not None or bounds is not None
    if use_bounds:
        bound_leaves, kink_leaves, what = _bound_trees(reference, dtype, bounds, kink, names)
    a: dict = {}
    b: dict = {}
    _leaves(mine, (), a, names)
    _leaves(reference, (), b, names)
    problems = []
    missing = [p for p in b if p not in a]
    extra = [p for p in a if p not in b]
    if missing:
        problems.append("missing in mine (present in reference): " + ", ".join(_label(p) for p in missing))
    if extra:
        problems.append("extra in mine (absent from reference): " + ", ".join(_label(p) for p in extra))
    n_arrays = n_bad_arrays = n_elements = n_off_total = 0
    for path in (p for p in b if p in a):
        m, r = _as_array(a[path]), _as_array(b[path])
        n_arrays += 1
        if m.shape != r.shape:
            n_bad_arrays += 1
            hint = " (transposed: (in, out) against (out, in)?)" if m.ndim == 2 and m.shape == r.shape[::-1] else ""
            problems.append(f"{_label(path)}: shape {m.shape} (mine) differs from {r.shape} (reference){hint}")
            continue
        n_elements += m.size
        if use_bounds:
            if path not in bound_leaves:
                raise ValueError(f"bounds: no bound for {_label(path)} (bounds must have the structure of reference)")
            bound = np.broadcast_to(_as_array(bound_leaves[path]), m.shape)
            mask = np.broadcast_to(np.asarray(kink_leaves.get(path, False), dtype=bool), m.shape)
            n_off, line = _describe_bound(_label(path), m, r, bound, mask, atol, what)
        else:
            n_off, line = _describe(_label(path), m, r, rtol, atol)
        if n_off:
            n_bad_arrays += 1
            n_off_total += n_off
            problems.append(line)
    if problems:
        tolerance = f"within the {what} rounding bound, atol={atol:g}" if use_bounds else f"rtol={rtol:g}, atol={atol:g}"
        head = (f"gradients do not match ({tolerance}): {n_bad_arrays} of {n_arrays} array(s) "
                f"differ, {n_off_total} of {n_elements} element(s) off")
        raise AssertionError("\n  ".join([head, *problems]))
