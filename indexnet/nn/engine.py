"""Pick the compiled form of a formula for an engine.

``literal`` -> ``<formula>_literal``, ``loops`` -> ``<formula>_loops`` (the exact
build, everywhere), ``numpy`` -> ``<formula>_numpy``, ``fast`` -> ``<formula>_fast``
(the trainer's register-blocked form) where the kernel module has one, else the
fastmath twin of ``<formula>_loops``, compiled on first use.
"""
from __future__ import annotations

import functools
import importlib

from indexnet._jit import fast
from indexnet._validate import check_choice

ENGINES = ("literal", "loops", "numpy", "fast")


def check_engine(engine: str) -> str:
    """``engine`` is one of :data:`ENGINES`."""
    return check_choice("engine", engine, ENGINES)


@functools.lru_cache(maxsize=None)
def form(module: str, formula: str, engine: str):
    """The callable of ``indexnet.kernels.<module>.<formula>`` for ``engine``.

    Engines without a form of their own fall back in the order literal -> loops and
    fast -> the fastmath twin of loops (loss values, for example, have no literal form:
    a scalar sum has no Kronecker delta to keep).
    """
    mod = importlib.import_module(f"indexnet.kernels.{module}")
    if engine == "fast":
        if hasattr(mod, f"{formula}_fast"):
            return getattr(mod, f"{formula}_fast")
        return fast(getattr(mod, f"{formula}_loops"))
    name = f"{formula}_{engine}"
    if not hasattr(mod, name) and engine == "literal":
        name = f"{formula}_loops"
    return getattr(mod, name)
