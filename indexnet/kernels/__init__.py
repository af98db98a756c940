"""Kernels: every formula of the derivations in three forms.

``<formula>_literal``  the sum as the derivation writes it, Kronecker deltas and all
                       (serial ``njit``);
``<formula>_loops``    the collapsed index sum, ``prange`` over output elements
                       (``njit(parallel=True)``, exact build);
``<formula>_numpy``    the matrix form in vectorized NumPy.

Kernels do not check their inputs: shapes, dtypes and finiteness are checked once at the
public boundary (:class:`indexnet.Network`, :mod:`indexnet.oracle`, :mod:`indexnet.nn.losses`).
Arrays are samples-last and C-contiguous. Every form writes its result into ``out`` and
returns it, so the trainer can reuse buffers.
"""
