"""indexnet as a reference oracle for other projects' tests.

- :func:`dense` — loss, every gradient, ∂J/∂X and every intermediate (Z, A, Δ, H) of a
  dense network given in your layouts (samples first or last, weights (out, in) or
  (in, out)), computed in float64 with the exact, thread-count-independent build; with
  indexnet's seed losses or PyTorch's (:mod:`indexnet.oracle.heads`), ``reduction=``, or an
  upstream gradient ``grad_output=``.
- :func:`network` — the same for networks with conv2d, pooling and flatten layers, from
  a PyTorch-like description or a ``torch.nn.Sequential``, NCHW or NHWC inputs.
- :class:`OracleResult` — what both return; one indexing scheme, layer l at ``[l-1]``
  (:mod:`indexnet.oracle.result`), and ``by_module()`` per torch module.
- :func:`gradcheck` — central differences (200 sampled elements by default) and random
  directions for any callable; NaN and Inf fail.
- ``bounds="float32"`` on :func:`dense` / :func:`network` — elementwise rounding bounds of
  every quantity (derivations/rounding.md); :func:`network_bounds` computes them for a
  :class:`~indexnet.nn.network.Network` pass, :class:`Precision` says which.
- :func:`assert_gradients_match` — compare nested gradients; the failure names the
  layer, the parameter, the index, both values and the relative error.

The same helpers are reachable from the pytest plugin (:mod:`indexnet.oracle.pytest_plugin`),
whose fixture ``indexnet_oracle`` returns this module.
"""
from __future__ import annotations

import importlib

#: public name -> the module that defines it; imported on first use, so that loading the
#: pytest plugin (:mod:`indexnet.oracle.pytest_plugin`, inside this package) imports
#: neither NumPy nor Numba
_EXPORTS = {
    "as_float64": "indexnet.oracle._arrays",
    **{name: "indexnet.oracle._core" for name in (
        "LAYOUTS", "ORACLE_ENGINES", "WEIGHT_LAYOUTS", "IMAGE_LAYOUTS", "dense", "network", "parse_layers",
        "torch_indices")},
    "HEADS": "indexnet.oracle.heads",
    "OracleResult": "indexnet.oracle.result",
    **{name: "indexnet.oracle.bounds" for name in ("Bounds", "Precision", "network_bounds")},
    "gradcheck": "indexnet.oracle.check",
    "assert_gradients_match": "indexnet.oracle.compare",
    "relative_error": "indexnet.oracle.compare",
}

__all__ = [
    "LAYOUTS", "WEIGHT_LAYOUTS", "IMAGE_LAYOUTS", "ORACLE_ENGINES", "HEADS", "OracleResult", "as_float64", "dense", "network",
    "parse_layers", "torch_indices", "gradcheck", "assert_gradients_match", "relative_error",
    "Bounds", "Precision", "network_bounds",
]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'indexnet.oracle' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__():
    return sorted(__all__)
