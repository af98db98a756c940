"""Each kernel's throughput and its fraction of standalone BLAS.

For the dense layer's forward (D1.4), weight gradient (D2.5) and input gradient (D2.25),
at seed 001's layer 1 (800 × 784) with N = 100 (the trainer's batch) and N = 1024, and
for the small CNN's conv layers (derivations/conv2d.md), every engine's form is timed: ``numpy`` (BLAS or
``einsum``), ``loops`` (the exact build) and ``fast`` (the trainer's form), each through
:func:`indexnet.nn.engine.form`, the same lookup the network uses. A row gives GFLOP/s
(2 flops per multiply-add) and the fraction of the standalone BLAS rate of its dtype
(:func:`indexnet.bench.blas.blas_gflops` on 1024³), which is the figure to read: a
ratio to the ``numpy`` column would flatter a form whenever BLAS runs below its own
peak at that shape.

Arguments are passed by the kernel's parameter names, so a form whose signature the
bench does not know is reported as skipped with its parameters, never called wrongly.
"""
from __future__ import annotations

import inspect

import numpy as np

from indexnet.bench.blas import gemm_flops
from indexnet.bench.timing import blocked

FORMS = ("numpy", "loops", "fast")

#: parameter names that mean the same array in different kernels' signatures
ALIASES = {"X": "A_prev", "dX": "dA_prev", "Delta_prev": "dA_prev"}


def bind(fn, arrays: dict):
    """``fn`` with its arguments taken from ``arrays`` by parameter name, or a reason it cannot be."""
    py = getattr(fn, "py_func", fn)
    try:
        names = list(inspect.signature(py).parameters)
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return None, "no inspectable signature"
    missing = [n for n in names if n not in arrays and ALIASES.get(n) not in arrays]
    if missing:
        return None, f"unknown parameters {missing} in {py.__name__}{tuple(names)}"
    args = [arrays[n] if n in arrays else arrays[ALIASES[n]] for n in names]
    return (lambda: fn(*args)), None


def _form(module: str, formula: str, engine: str):
    from indexnet.nn.engine import form

    try:
        return form(module, formula, engine), None
    except (AttributeError, ImportError) as err:
        return None, f"no {engine} form: {err}"


def time_forms(module: str, formula: str, arrays: dict, flops: float, forms=FORMS, repeats: int = 5,
               pause: float = 0.0) -> dict:
    """Time each engine's form of ``indexnet.kernels.<module>.<formula>`` on ``arrays``.

    Returns ``{form: timing summary + gflops}`` and ``skipped: {form: reason}``.
    """
    calls, skipped = {}, {}
    for engine in forms:
        fn, why = _form(module, formula, engine)
        if fn is not None:
            call, why = bind(fn, arrays)
            if call is not None:
                calls[engine] = call
                continue
        skipped[engine] = why
    out = {}
    for engine, t in blocked(calls, repeats, warmup=1, pause=pause).items():
        out[engine] = t.summary() | {"gflops": flops / t.median / 1e9,
                                     "gflops_range": [flops / t.hi / 1e9, flops / t.lo / 1e9]}
    if skipped:
        out["skipped"] = skipped
    return out


def dense_arrays(S: int, S_prev: int, N: int, dtype, seed: int = 0) -> dict:
    """Random operands of the dense kernels, by their parameter names (the fused forms' too:
    ReLU as the activation, a tiny learning rate so repeated SGD updates stay harmless)."""
    from indexnet.kernels.activations import CODES

    rng = np.random.default_rng(seed)
    return {
        "kind": CODES["relu"], "alpha": dtype(0.0), "eta": dtype(1e-9),
        "A": np.empty((S, N), dtype),
        "W": rng.standard_normal((S, S_prev)).astype(dtype),
        "A_prev": rng.random((S_prev, N)).astype(dtype),
        "b": rng.standard_normal(S).astype(dtype),
        "Z": np.empty((S, N), dtype),
        "H": rng.standard_normal((S, N)).astype(dtype),
        "dW": np.empty((S, S_prev), dtype),
        "dA_prev": np.empty((S_prev, N), dtype),
        "AT": np.empty((N, S_prev), dtype),  # the packing buffer of dense.weight_grad_fast (short batches)
    }


#: the dense formulas timed in every form, and the fused ones the trainer runs (fast form only:
#: forward with bias and activation in the store, weight gradient with the SGD update folded in)
DENSE_FORMULAS = ("forward", "weight_grad", "input_grad")
DENSE_FUSED = ("forward_activation", "weight_grad_sgd")


def dense_module():
    from indexnet.kernels import dense

    return dense


def dense_rows(dtypes=(np.float32, np.float64), Ns=(100, 1024), S: int = 800, S_prev: int = 784,
               repeats: int = 5, pause: float = 0.0, forms=FORMS) -> list[dict]:
    """Forward, weight gradient and input gradient of a dense layer: every form, GFLOP/s."""
    rows = []
    for dt in dtypes:
        for N in Ns:
            arrays = dense_arrays(S, S_prev, N, dt)
            flops = gemm_flops(S, N, S_prev)
            for formula in DENSE_FORMULAS:
                rows.append({"name": f"dense.{formula}", "dtype": np.dtype(dt).name,
                             "shape": f"{S}x{S_prev} N={N}", "flops": flops,
                             **time_forms("dense", formula, arrays, flops, forms, repeats, pause)})
            for formula in DENSE_FUSED:
                if "fast" in forms and hasattr(dense_module(), f"{formula}_fast"):
                    rows.append({"name": f"dense.{formula}", "dtype": np.dtype(dt).name,
                                 "shape": f"{S}x{S_prev} N={N}", "flops": flops,
                                 **time_forms("dense", formula, arrays, flops, ("fast",), repeats, pause)})
    return rows


#: the small CNN's conv layers (preset cnn on MNIST): (C_in, C_out, size) with 3×3 kernels, pad 1
CNN_CONVS = ((1, 8, 28), (8, 16, 14))


def conv_arrays(C_in: int, C_out: int, size: int, N: int, dtype, seed: int = 1) -> dict:
    """Random operands of the conv2d kernels (3×3, stride 1, pad 1), by their parameter names."""
    rng = np.random.default_rng(seed)
    return {
        "A_prev": rng.random((C_in, size, size, N)).astype(dtype),
        "K": (rng.standard_normal((C_out, C_in, 3, 3)) * 0.3).astype(dtype),
        "b": rng.standard_normal(C_out).astype(dtype),
        "stride": 1, "pad": 1,
        "Z": np.empty((C_out, size, size, N), dtype),
        "H": rng.standard_normal((C_out, size, size, N)).astype(dtype),
        "dK": np.empty((C_out, C_in, 3, 3), dtype),
        "dA_prev": np.empty((C_in, size, size, N), dtype),
    }


def conv_rows(dtypes=(np.float32,), N: int = 100, convs=CNN_CONVS, repeats: int = 5, pause: float = 0.0,
              forms=FORMS) -> list[dict]:
    """conv2d forward, kernel gradient and input gradient at the small CNN's shapes."""
    rows = []
    for dt in dtypes:
        for C_in, C_out, size in convs:
            arrays = conv_arrays(C_in, C_out, size, N, dt)
            flops = 2.0 * C_out * C_in * 9 * size * size * N
            for formula in ("forward", "kernel_grad", "input_grad"):
                rows.append({"name": f"conv2d.{formula}", "dtype": np.dtype(dt).name,
                             "shape": f"{C_out}@3x3 C_in={C_in} {size}x{size} N={N}", "flops": flops,
                             **time_forms("conv2d", formula, arrays, flops, forms, repeats, pause)})
    return rows


def add_blas_fractions(rows: list[dict], blas: dict) -> None:
    """Set ``of_blas`` (GFLOP/s ÷ standalone BLAS GFLOP/s of the row's dtype) on every timed form."""
    for row in rows:
        peak = blas.get(row["dtype"], {}).get("gflops")
        for f in FORMS:
            if f in row and peak:
                row[f]["of_blas"] = row[f]["gflops"] / peak
