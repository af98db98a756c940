"""Gradient check for any callable the user brings (a thin front to :func:`indexnet.oracle.finite_diff.check_gradients`)."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from indexnet.oracle.finite_diff import DEFAULT_MAX_ELEMENTS, GradcheckReport, check_gradients
from indexnet.oracle._arrays import as_float64


def _scalar(value: Any) -> float:
    """f's value as a float; f must return a scalar."""
    arr = as_float64("f(*args)", value)
    if arr.size != 1:
        raise TypeError(f"f: expected a scalar value (float or size-1 array), got shape {arr.shape}")
    return float(arr.reshape(()))


def gradcheck(
    f: Callable[..., Any],
    args: Sequence | Mapping[str, Any],
    grads: Sequence | Mapping[str, Any] | Callable[..., Sequence] | None = None,
    *,
    eps: float = 1e-6,
    atol: float = 1e-8,
    rtol: float = 1e-6,
    seed: int = 0,
    n_directions: int = 3,
    max_elements: int | None = DEFAULT_MAX_ELEMENTS,
    raise_on_failure: bool = False,
) -> GradcheckReport:
    """Check a scalar function's analytic gradients by central differences and random directions.

    In the manner of ``torch.autograd.gradcheck`` and JAX's ``check_grads``: bring
    ``f`` and its gradients; every element is compared with the central difference
    (derivations/gradcheck.md, G1) and ``n_directions`` seeded random directions with the
    total differential (G2). Arguments are copied to float64 (ints accepted).

    By default at most ``max_elements=200`` elements are checked one by one (a random
    sample drawn with ``seed`` when there are more; 2 calls of ``f`` each), so a model of
    any size is checked in seconds; the random directions still cover every element.
    Pass ``max_elements=None`` to check every element. A NaN or ±inf in f's value, in an
    analytic gradient or in a difference fails the check and is named in the report.

    Parameters
    ----------
    f : callable
        ``f(*args) -> float``; or, when ``grads`` is None, ``f(*args) -> (value, grads)``
        with ``grads`` a sequence (or a dict keyed like ``args``) of arrays.
    args : sequence of array, or dict name -> array
        The point to check at; a dict names the arguments in the report.
    grads : sequence, dict, callable or None
        ∂f/∂arg for each argument (same shapes), a callable ``grads(*args)``, or None
        (``f`` returns them).
    eps, atol, rtol, seed, n_directions, max_elements, raise_on_failure
        As in :func:`indexnet.oracle.finite_diff.check_gradients`: step, tolerances (an element
        passes when ``|analytic - numeric| <= atol + rtol·|numeric|``), seed of the
        directions and of the element sample, number of directions, the number of
        elements checked one by one (default 200; None for all), raise AssertionError
        instead of returning.

    Returns
    -------
    GradcheckReport
        ``ok``, ``failures``, ``non_finite``, ``worst`` (the element furthest outside its
        tolerance: argument, index, analytic and numeric values, absolute and relative
        error) and ``worst_abs`` (largest absolute error, useful when the worst relative
        error sits on a zero reference); ``str(report)`` prints them.

    Examples
    --------
    >>> import numpy as np
    >>> report = gradcheck(lambda x: float(np.sum(x ** 3)), {"x": np.array([1.0, 2.0])},
    ...                    {"x": np.array([3.0, 12.0])})
    >>> report.ok
    True
    """
    names = list(args) if isinstance(args, Mapping) else None
    values = [as_float64(f"args[{n!r}]" if names else f"args[{k}]", a)
              for k, (n, a) in enumerate(zip(names or range(len(args)), args.values() if names else args))]

    def ordered(gs: Sequence | Mapping) -> list:
        if isinstance(gs, Mapping):
            if names is None or set(gs) != set(names):
                raise ValueError(f"grads: expected keys {names} (those of args), got {sorted(gs)}")
            return [gs[n] for n in names]
        return list(gs)

    if grads is None:
        value_only = lambda *a: _scalar(f(*a)[0])  # noqa: E731
        grads = ordered(f(*[v.copy() for v in values])[1])
    else:
        value_only = lambda *a: _scalar(f(*a))  # noqa: E731
        grads = ordered(grads(*[v.copy() for v in values]) if callable(grads) else grads)
    grads = [as_float64(f"grads[{k}]", g) for k, g in enumerate(grads)]
    return check_gradients(value_only, values, grads, names=names, eps=eps, atol=atol, rtol=rtol,
                           n_directions=n_directions, seed=seed, max_elements=max_elements,
                           raise_on_failure=raise_on_failure)
