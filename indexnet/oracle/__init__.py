"""indexnet as a reference oracle for other projects' tests.

- :func:`dense` — loss, every gradient, ∂J/∂X and every intermediate (Z, A, Δ, H) of a
  dense network given in your layouts (samples first or last, weights (out, in) or
  (in, out)), computed in float64 with the exact, thread-count-independent build.
- :func:`network` — the same for networks with conv2d, pooling and flatten layers, from
  a PyTorch-like description and NCHW inputs.
- :func:`gradcheck` — central differences and random directions for any callable.
- :func:`assert_gradients_match` — compare nested gradients; the failure names the
  layer, the parameter, the index, both values and the relative error.

The same helpers are reachable from the pytest plugin (:mod:`indexnet.pytest_plugin`),
whose fixture ``indexnet_oracle`` returns this module.
"""
from indexnet.oracle._core import (
    LAYOUTS,
    ORACLE_ENGINES,
    WEIGHT_LAYOUTS,
    OracleResult,
    as_float64,
    dense,
    network,
    parse_layers,
    torch_indices,
)
from indexnet.oracle.check import gradcheck
from indexnet.oracle.compare import assert_gradients_match, relative_error

__all__ = [
    "LAYOUTS", "WEIGHT_LAYOUTS", "ORACLE_ENGINES", "OracleResult", "as_float64", "dense", "network",
    "parse_layers", "torch_indices", "gradcheck", "assert_gradients_match", "relative_error",
]
