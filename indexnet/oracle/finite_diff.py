"""Gradient checks for any callable: central differences and seed 002's directional test.

``derivations/gradcheck.md``: G1 compares each analytic ∂J/∂θ_i with
(J(θ + ε e_i) - J(θ - ε e_i)) / 2ε; G2 compares the total differential
Σ_i ∂J/∂θ_i d_i with (J(θ + ε d) - J(θ - ε d)) / 2ε for seeded random directions d,
which checks every component at once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from indexnet._validate import check_positive_int, check_real


#: elements checked one by one by default (a seeded random sample when there are more)
DEFAULT_MAX_ELEMENTS = 200


@dataclass(frozen=True)
class Mismatch:
    """One compared value: where it is, both values, and the errors.

    ``rel_error`` is ``|analytic - numeric| / |numeric|`` (the numeric value is the
    reference): 0 when both are equal, inf when only the reference is 0, NaN when either
    value is not finite.
    """

    argument: str
    index: tuple
    analytic: float
    numeric: float
    abs_error: float
    rel_error: float

    def __str__(self) -> str:
        return (f"{self.argument}{list(self.index)}: analytic {self.analytic:.17g}, "
                f"numeric {self.numeric:.17g}, abs error {self.abs_error:.3g}, rel error {self.rel_error:.3g}")


@dataclass
class GradcheckReport:
    """The result of :func:`check_gradients`.

    ``worst`` is the element with the largest error relative to its tolerance (a
    non-finite value counts as worst of all); ``worst_abs`` the element with the largest
    absolute error (reported too when ``worst`` sits on a zero reference, whose relative
    error is inf); ``failures`` every element outside ``atol + rtol·|numeric|`` or not
    finite; ``non_finite`` the places where the function's value, the analytic gradient or
    a difference is NaN or ±inf; ``directions`` the directional tests (analytic Σ g·d
    against the central difference along d). ``n_elements`` is the number of elements of
    all arguments, ``n_checked`` how many were checked one by one.
    """

    ok: bool
    worst: Mismatch | None
    failures: list = field(default_factory=list)
    directions: list = field(default_factory=list)
    n_checked: int = 0
    eps: float = 0.0
    atol: float = 0.0
    rtol: float = 0.0
    n_elements: int = 0
    worst_abs: Mismatch | None = None
    non_finite: list = field(default_factory=list)
    seed: int = 0

    def __str__(self) -> str:
        verdict = "gradients match" if self.ok else (
            f"gradients DO NOT match: {len(self.failures)} element(s) or direction(s) off"
            + (f", {len(self.non_finite)} non-finite" if self.non_finite else ""))
        sampled = ("every element" if self.n_checked == self.n_elements else
                   f"a random sample (seed {self.seed}) of {self.n_checked} of {self.n_elements} elements")
        lines = [verdict,
                 f"  checked: {sampled} by central differences (eps={self.eps:g}), "
                 f"{len(self.directions)} random direction(s) over all elements",
                 f"  tolerance: |analytic - numeric| <= {self.atol:g} + {self.rtol:g}·|numeric|"]
        lines += [f"  NOT FINITE: {text}" for text in self.non_finite[:10]]
        if self.worst is not None:
            lines.append(f"  worst element:  {self.worst}")
        if self.worst_abs is not None and self.worst_abs != self.worst:
            lines.append(f"  worst absolute: {self.worst_abs}")
        lines += [f"  random {d}" for d in self.directions]
        shown = [m for m in self.failures if m != self.worst and m.argument != "direction"][:10]
        if shown:
            lines.append(f"  other elements off (first {len(shown)}):")
            lines += [f"    {m}" for m in shown]
        return "\n".join(lines)


def _finite(*values: float) -> bool:
    return all(np.isfinite(v) for v in values)


def _passes(m: Mismatch, atol: float, rtol: float, scale: float | None = None) -> bool:
    """Within ``atol + rtol·scale`` (scale: |numeric|), and both values finite."""
    ref = abs(m.numeric) if scale is None else scale
    return _finite(m.analytic, m.numeric) and m.abs_error <= atol + rtol * ref


def _score(m: Mismatch, atol: float, rtol: float) -> float:
    if not _finite(m.analytic, m.numeric):
        return np.inf
    tol = atol + rtol * abs(m.numeric)
    if tol == 0:
        return np.inf if m.abs_error > 0 else 0.0
    return m.abs_error / tol


def _mismatch(name, index, a, n) -> Mismatch:
    a, n = float(a), float(n)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        err = abs(a - n)
        rel = 0.0 if err == 0 else (err / abs(n) if n != 0 else (np.inf if np.isfinite(err) else np.nan))
    return Mismatch(name, tuple(int(i) for i in index), a, n, float(err), float(rel))


def check_gradients(
    f: Callable[..., float],
    args: Sequence[np.ndarray],
    grads: Sequence[np.ndarray] | Callable[..., Sequence[np.ndarray]],
    *,
    names: Sequence[str] | None = None,
    eps: float = 1e-6,
    atol: float = 1e-8,
    rtol: float = 1e-6,
    n_directions: int = 3,
    seed: int = 0,
    max_elements: int | None = DEFAULT_MAX_ELEMENTS,
    raise_on_failure: bool = False,
) -> GradcheckReport:
    """Check analytic gradients of a scalar function against finite differences.

    A NaN or ±inf anywhere in what is compared — f's value at the point or at a step, an
    analytic gradient, a difference quotient — fails the check, and the report names
    where it is.

    Parameters
    ----------
    f : callable
        ``f(*args) -> float``. Called with perturbed float64 copies of ``args``.
    args : sequence of ndarray
        The point θ at which to check (one array per argument). Not modified.
    grads : sequence of ndarray, or callable
        The analytic ∂f/∂arg for each argument, same shapes as ``args``, or a callable
        ``grads(*args)`` returning them.
    names : sequence of str, optional
        Names of the arguments for the report (default ``arg0``, ``arg1``, ...).
    eps : float
        Step of the central differences (eq. G1) and of the directional test (G2).
    atol, rtol : float
        An element passes when ``|analytic - numeric| <= atol + rtol * |numeric|``.
    n_directions : int
        Number of seeded random directions for the directional test (0 to skip).
    seed : int
        Seed of the random directions and of the element sample.
    max_elements : int or None
        Check at most this many elements one by one by central differences (default
        200, 2 calls of f each): a random sample drawn with ``seed`` when the arguments
        have more elements in all. The directional test still covers every element.
        ``None`` checks every element.
    raise_on_failure : bool
        Raise AssertionError with the report instead of returning a failing one.

    Returns
    -------
    GradcheckReport
    """
    args = [np.array(a, dtype=np.float64, copy=True) for a in args]
    names = list(names) if names is not None else [f"arg{k}" for k in range(len(args))]
    if len(names) != len(args):
        raise ValueError(f"names: expected {len(args)} names (one per argument), got {len(names)}")
    if callable(grads):
        grads = grads(*[a.copy() for a in args])
    grads = [np.asarray(g, dtype=np.float64) for g in grads]
    if len(grads) != len(args):
        raise ValueError(f"grads: expected {len(args)} arrays (one per argument), got {len(grads)}")
    for name, a, g in zip(names, args, grads):
        if g.shape != a.shape:
            raise ValueError(f"grads for {name}: expected shape {a.shape} (the argument's), got {g.shape}")
    eps = check_real("eps", eps, lo=0, lo_open=True)
    n_directions = check_positive_int("n_directions", n_directions, minimum=0)
    if max_elements is not None:
        max_elements = check_positive_int("max_elements", max_elements, minimum=1)
    rng = np.random.default_rng(seed)

    def J() -> float:
        return float(f(*args))

    non_finite = []
    for name, g in zip(names, grads):
        bad = np.argwhere(~np.isfinite(g))
        if len(bad):
            idx = tuple(int(i) for i in bad[0])
            non_finite.append(f"analytic gradient of {name}: {len(bad)} element(s) NaN or inf, first at "
                              f"{name}{list(idx)} = {float(g[idx])}")
    base_value = J()
    if not np.isfinite(base_value):
        non_finite.append(f"f at the given point returns {base_value!r}")

    elements = [(k, idx) for k, a in enumerate(args) for idx in np.ndindex(a.shape)]
    n_elements = len(elements)
    if max_elements is not None and len(elements) > max_elements:
        pick = np.sort(rng.choice(len(elements), size=max_elements, replace=False))
        elements = [elements[i] for i in pick]

    checked, failures = [], []
    for k, idx in elements:
        a = args[k]
        old = a[idx]
        a[idx] = old + eps
        up = J()
        a[idx] = old - eps
        down = J()
        a[idx] = old
        numeric = (up - down) / (2 * eps)
        m = _mismatch(names[k], idx, grads[k][idx], numeric)
        checked.append(m)
        if not _passes(m, atol, rtol):
            failures.append(m)
            if not np.isfinite(numeric):
                non_finite.append(f"central difference at {names[k]}{list(idx)}: f(θ+ε) = {up!r}, f(θ-ε) = {down!r}")

    directions = []
    base = [a.copy() for a in args]
    for d_k in range(n_directions):
        d = [rng.standard_normal(a.shape) for a in args]
        with np.errstate(invalid="ignore", over="ignore"):
            analytic = float(sum(np.sum(g * di) for g, di in zip(grads, d)))
        for a, b0, di in zip(args, base, d):
            a[...] = b0 + eps * di
        up = J()
        for a, b0, di in zip(args, base, d):
            a[...] = b0 - eps * di
        down = J()
        for a, b0 in zip(args, base):
            a[...] = b0
        numeric = (up - down) / (2 * eps)
        m = _mismatch("direction", (d_k,), analytic, numeric)
        directions.append(m)
        with np.errstate(invalid="ignore", over="ignore"):
            scale = float(np.sqrt(sum(np.sum(g * g) for g in grads) * sum(np.sum(di * di) for di in d)))
        if not _passes(m, atol, rtol, max(abs(numeric), scale) if np.isfinite(scale) else 0.0):
            failures.append(m)

    worst = max(checked, key=lambda m: _score(m, atol, rtol)) if checked else None
    worst_abs = max(checked, key=lambda m: m.abs_error if np.isfinite(m.abs_error) else np.inf) if checked else None
    if worst is not None and failures and failures[0] != worst and worst in failures:
        failures.remove(worst)
        failures.insert(0, worst)
    report = GradcheckReport(ok=not failures and not non_finite, worst=worst, failures=failures,
                             directions=directions, n_checked=len(checked), eps=eps, atol=atol, rtol=rtol,
                             n_elements=n_elements, worst_abs=worst_abs, non_finite=non_finite, seed=seed)
    if raise_on_failure and not report.ok:
        raise AssertionError(str(report))
    return report


def check_network(net, X: np.ndarray, Y: np.ndarray, engine: str = "loops", **kwargs) -> GradcheckReport:
    """Check a :class:`indexnet.Network`'s gradients (every parameter and ∂J/∂X) in float64.

    The network must be float64; ``kwargs`` go to :func:`check_gradients`.
    """
    if net.dtype != np.float64:
        raise TypeError(f"net: expected a float64 network for finite differences, got {net.dtype}")
    work = net.copy()
    result = work.backward(X, Y, engine)
    names, args, grads = [], [], []
    for l, (layer, p, g) in enumerate(zip(work.layers, work.params, result.grads), start=1):
        for pname, arr in zip(layer.param_names, p):
            names.append(f"layer {l} {pname}")
            args.append(arr)
            grads.append(g[pname])
    names.append("X")
    args.append(X)
    grads.append(result.dX)

    def J(*values):
        k = 0
        for p in work.params:
            for arr in p:
                arr[...] = values[k]
                k += 1
        return work.loss(np.ascontiguousarray(values[-1]), Y, engine)

    return check_gradients(J, args, grads, names=names, **kwargs)
