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


@dataclass(frozen=True)
class Mismatch:
    """One compared value: where it is, both values, and the errors."""

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

    ``worst`` is the element with the largest error relative to its tolerance;
    ``failures`` every element outside ``atol + rtol·|numeric|``; ``directions`` the
    directional tests (analytic Σ g·d against the central difference along d).
    """

    ok: bool
    worst: Mismatch | None
    failures: list = field(default_factory=list)
    directions: list = field(default_factory=list)
    n_checked: int = 0
    eps: float = 0.0
    atol: float = 0.0
    rtol: float = 0.0

    def __str__(self) -> str:
        head = "gradients match" if self.ok else f"gradients DO NOT match ({len(self.failures)} element(s) or direction(s) off)"
        lines = [f"{head}: {self.n_checked} element(s) by central differences (eps={self.eps:g}), "
                 f"{len(self.directions)} random direction(s); tolerance atol={self.atol:g} + rtol={self.rtol:g}·|numeric|"]
        if self.worst is not None:
            lines.append(f"  worst: {self.worst}")
        lines += [f"  direction {k}: {d}" for k, d in enumerate(self.directions)]
        return "\n".join(lines)


def _score(a: float, n: float, atol: float, rtol: float) -> float:
    return abs(a - n) / (atol + rtol * abs(n))


def _mismatch(name, index, a, n) -> Mismatch:
    err = abs(a - n)
    scale = max(abs(a), abs(n))
    return Mismatch(name, tuple(int(i) for i in index), float(a), float(n), float(err), float(err / scale) if scale else 0.0)


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
    max_elements: int | None = None,
    raise_on_failure: bool = False,
) -> GradcheckReport:
    """Check analytic gradients of a scalar function against finite differences.

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
    max_elements : int, optional
        Check at most this many elements by central differences (a seeded random
        sample); the directional test still covers all of them.
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
    rng = np.random.default_rng(seed)

    def J() -> float:
        return float(f(*args))

    elements = [(k, idx) for k, a in enumerate(args) for idx in np.ndindex(a.shape)]
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
        checked.append((_score(m.analytic, numeric, atol, rtol), m))
        if m.abs_error > atol + rtol * abs(numeric):
            failures.append(m)

    directions = []
    base = [a.copy() for a in args]
    for d_k in range(n_directions):
        d = [rng.standard_normal(a.shape) for a in args]
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
        scale = float(np.sqrt(sum(np.sum(g * g) for g in grads) * sum(np.sum(di * di) for di in d)))
        if m.abs_error > atol + rtol * max(abs(numeric), scale):
            failures.append(m)

    worst = max(checked, key=lambda t: t[0])[1] if checked else None
    report = GradcheckReport(ok=not failures, worst=worst, failures=failures, directions=directions,
                             n_checked=len(checked), eps=eps, atol=atol, rtol=rtol)
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
