"""pytest plugin (entry point ``pytest11``): use indexnet as a gradient oracle in your tests.

Installed with indexnet and loaded by pytest automatically. Provides

- the fixture ``indexnet_oracle``: the :mod:`indexnet.oracle` module
  (``indexnet_oracle.dense(...)``, ``.network(...)``, ``.gradcheck(...)``);
- ``assert_gradients_match(mine, reference, *, rtol=1e-7, atol=0, names=None, dtype=None,
  bounds=None, kink=None)``, importable from here or from :mod:`indexnet.oracle`: the
  failure message names each differing array by its path (``layer 1 / W``), how many of
  its elements are off, and the worst one (index, both values, relative error; with
  ``dtype="float32"``, the element's rounding bound and how many times over it the error
  is); shape mismatches too.

Kept import-light: importing this module imports neither NumPy nor Numba nor torch;
the fixture and the helper import them on first use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from types import ModuleType


@pytest.fixture
def indexnet_oracle() -> "ModuleType":
    """The :mod:`indexnet.oracle` module: ``dense``, ``network``, ``gradcheck``,
    ``assert_gradients_match``."""
    from indexnet import oracle

    return oracle


def __getattr__(name: str) -> Any:
    """``assert_gradients_match`` is :func:`indexnet.oracle.compare.assert_gradients_match`,
    imported on first use so that loading the plugin stays light."""
    if name == "assert_gradients_match":
        from indexnet.oracle.compare import assert_gradients_match

        return assert_gradients_match
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["indexnet_oracle", "assert_gradients_match"]
