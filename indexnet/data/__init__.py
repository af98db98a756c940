"""Data sets for the trainer, samples last.

Every loader returns a :class:`Splits` of three :class:`Dataset` objects (train,
validation, test) whose ``X`` is ``(features, N)`` and ``T`` is ``(outputs, N)``.

========  ==============================================  =====================
name      source                                          default split
========  ==============================================  =====================
digits    scikit-learn's bundled 8×8 digits (embedded)    1257 / 180 / 360
mnist     four IDX files in ``data_dir``                  55000 / 5000 / 10000
fashion   the same for Fashion-MNIST                      55000 / 5000 / 10000
square    seed 003's f(x) = x² (regression)               700 / 100 / 200
sphere    seed 003's points on a sphere (regression)      1400 / 200 / 400
csv       a user's numeric CSV file                       ceil 10 % / 20 %
========  ==============================================  =====================
"""
from __future__ import annotations

from typing import Any, Callable

from indexnet._validate import check_choice

from .dataset import (
    Dataset,
    Splits,
    apply_scaling,
    batches,
    check_scaling,
    one_hot,
    split_indices,
    split_sizes,
    standardize_scaling,
)
from .digits import load_digits
from .idx import load_mnist, read_idx, write_idx
from .synthetic import load_sphere, load_square
from .tabular import load_csv, read_csv

__all__ = [
    "Dataset", "Splits", "apply_scaling", "batches", "check_scaling", "one_hot", "split_indices",
    "split_sizes", "standardize_scaling", "load_digits", "load_mnist", "read_idx", "write_idx",
    "load_sphere", "load_square", "load_csv", "read_csv", "load", "LOADERS",
]


def _fashion(data_dir, **opts: Any) -> Splits:
    return load_mnist(data_dir, "fashion", **opts)


#: data set name -> loader; ``load(name, **opts)`` calls ``LOADERS[name](**opts)``.
LOADERS: dict[str, Callable[..., Splits]] = {
    "digits": load_digits,
    "mnist": load_mnist,
    "fashion": _fashion,
    "square": load_square,
    "sphere": load_sphere,
    "csv": load_csv,
}


def load(name: str, **opts: Any) -> Splits:
    """Load a data set by name.

    Parameters
    ----------
    name : {"digits", "mnist", "fashion", "square", "sphere", "csv"}
    **opts
        Passed to the loader: ``data_dir=`` for mnist/fashion, ``path=`` for csv, and
        the loader's own options (``seed``, fractions, ``dtype``, ...).

    Returns
    -------
    Splits

    Raises
    ------
    ValueError
        An unknown name (the message lists the choices).
    TypeError
        An option the loader does not take, or a missing ``data_dir`` / ``path``.
    """
    check_choice("name", name, LOADERS)
    return LOADERS[name](**opts)
