"""The Kronecker delta as the literal forms use it."""
from indexnet._jit import serial


@serial
def kron(i, j, one):
    """δ_ij (derivations/dense.md#D2.4) as a number of the dtype of ``one``: ``one`` if i == j, else zero.

    Multiplying by the returned value is exact: ``x * 1`` is ``x`` and ``x * 0`` is a
    (signed) zero, so a literal sum that keeps its deltas adds only exact zeros to the
    collapsed sum.
    """
    if i == j:
        return one
    return one - one
