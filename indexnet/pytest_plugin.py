"""pytest plugin (entry point ``pytest11``): use indexnet as a gradient oracle in your tests.

Installed with indexnet and loaded by pytest automatically. Provides

- the fixture ``indexnet_oracle``: the :mod:`indexnet.oracle` module
  (``indexnet_oracle.dense(...)``, ``.network(...)``, ``.gradcheck(...)``);
- :func:`assert_gradients_match`, importable from here or from :mod:`indexnet.oracle`.

Kept import-light: importing this module imports neither NumPy nor Numba nor torch;
the fixture and the helper import them on first use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from types import ModuleType


@pytest.fixture
def indexnet_oracle() -> "ModuleType":
    """The :mod:`indexnet.oracle` module: ``dense``, ``network``, ``gradcheck``,
    ``assert_gradients_match``."""
    from indexnet import oracle

    return oracle


def assert_gradients_match(
    mine: Any,
    reference: Any,
    *,
    rtol: float = 1e-7,
    atol: float = 0.0,
    names: Sequence[str] | None = None,
) -> None:
    """Assert that nested gradients agree; see :func:`indexnet.oracle.compare.assert_gradients_match`.

    The failure message names each differing array by its path (``layer 1 / W``), how
    many of its elements are off, and the worst one: index, both values and the
    relative error; shape mismatches and missing entries are named too.
    """
    __tracebackhide__ = True
    from indexnet.oracle.compare import assert_gradients_match as _impl

    _impl(mine, reference, rtol=rtol, atol=atol, names=names)
