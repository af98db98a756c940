"""Temporary aliases for the old benchmark (indexnet/bench/bench.py) until its rewrite lands.

The register-blocked sums are now the fast forms of :mod:`indexnet.kernels.dense`
(derivations/dense.md D1.4, D2.5, D2.25); this module only forwards to them and goes
when the benchmark stops importing it.
"""
from indexnet.kernels.dense import forward_fast, input_grad_fast, weight_grad_fast


def forward_work(W, A_prev):
    """No work buffer: ``dense.forward_fast`` (derivations/dense.md#D1.4) packs nothing."""
    return None


def weight_grad_work(H, A_prev):
    """No work buffer: ``dense.weight_grad_fast`` (derivations/dense.md#D2.5) packs nothing."""
    return None


def input_grad_work(W, H):
    """No work buffer: ``dense.input_grad_fast`` (derivations/dense.md#D2.25) packs nothing."""
    return None


def forward_tiled(W, A_prev, b, Z, work=None):
    """``dense.forward_fast`` (derivations/dense.md#D1.4)."""
    return forward_fast(W, A_prev, b, Z)


def weight_grad_tiled(H, A_prev, dW, work=None):
    """``dense.weight_grad_fast`` (derivations/dense.md#D2.5)."""
    return weight_grad_fast(H, A_prev, dW, A_prev.T.copy())


def input_grad_tiled(W, H, Delta_prev, work=None):
    """``dense.input_grad_fast`` (derivations/dense.md#D2.25)."""
    return input_grad_fast(W, H, Delta_prev)
