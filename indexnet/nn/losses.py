"""Losses by name: value, output error Δ^(L) and the fused output gradient.

Each loss is its seed's definition with a stated batch reduction
(``derivations/losses.md``); none is rescaled to look like another.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from indexnet._validate import check_choice, check_one_hot, check_range
from indexnet.nn.engine import form


@dataclass(frozen=True)
class Loss:
    """A named loss.

    Attributes
    ----------
    name : str
        ``mse``, ``half_se``, ``euclidean``, ``cross_entropy`` or ``binary_cross_entropy``.
    formula : str
        J as written in the derivation.
    seed : str
        Where the seeds define it.
    reduction : str
        How samples are combined: ``mean`` or ``sum``.
    output_activation : str or None
        The output activation the loss requires (its value is computed stably from that
        layer's Z), or None for any.
    targets : str
        ``real``, ``one_hot`` (columns are one-hot) or ``unit`` (values in [0, 1]).
    """

    name: str
    formula: str
    seed: str
    reduction: str
    output_activation: str | None
    targets: str

    def scale(self, N: int) -> float:
        """The factor in front of Σ (A - Y)² for the squared-error losses."""
        return {"mse": 1.0 / N, "half_se": 0.5, "euclidean": 1.0 / (2 * N)}[self.name]

    @property
    def squared(self) -> bool:
        return self.name in ("mse", "half_se", "euclidean")

    def check_targets(self, Y: np.ndarray, argname: str = "Y") -> None:
        """Targets fit this loss (one-hot columns, or values in [0, 1])."""
        if self.targets == "one_hot":
            check_one_hot(argname, Y)
        elif self.targets == "unit":
            check_range(argname, Y, 0.0, 1.0)

    def value(self, Z: np.ndarray, A: np.ndarray, Y: np.ndarray, engine: str = "loops") -> float:
        """J from the output layer's Z and A (eqs. L1-L3, L5, L8).

        Feature-map outputs ``(C, H, W, N)`` are summed over C×H×W like the rows of a
        dense output.
        """
        Z, A, Y = _rows(Z), _rows(A), _rows(Y)
        if self.squared:
            return float(form("losses", "squared_error_value", engine)(A, Y, self.scale(A.shape[1])))
        return float(form("losses", f"{self.name}_value", engine)(Z, Y))

    def delta(self, Z: np.ndarray, A: np.ndarray, Y: np.ndarray, engine: str = "loops", out=None,
              c: float | None = None) -> np.ndarray:
        """Δ^(L) = ∂J/∂A^(L) (eqs. L4, L6b, L9b), exact and finite at saturation.

        The cross-entropies take Δ^(L) from Z (L6b, L9b), never dividing by an output
        that has rounded to 0 or 1. ``c`` overrides the batch factor (1/N for the mean;
        1 for a sum over samples; the squared losses' own scale otherwise).
        """
        out = np.empty_like(A) if out is None else out
        N = A.shape[-1]
        if self.squared:
            scale = self.scale(N) if c is None else c
            form("losses", "squared_error_delta", engine)(_rows(A), _rows(Y), scale, _rows(out))
            return out
        c = 1.0 / N if c is None else c
        form("losses", f"{self.name}_delta_from_z", engine)(_rows(Z), _rows(Y), c, _rows(out))
        return out

    def fused_H(self, A: np.ndarray, Y: np.ndarray, engine: str = "loops", out=None) -> np.ndarray:
        """H^(L) = ∂J/∂Z^(L) = (A - Y)/N for softmax + cross-entropy (eq. L7) and sigmoid + BCE (L7b)."""
        if self.output_activation is None:
            raise ValueError(f"loss {self.name!r} has no fused output gradient")
        out = np.empty_like(A) if out is None else out
        # The literal forms of L7/L7b are the unreduced chain rule; they divide by A (and
        # 1 - A), so they are undefined at saturation and differ from (A - Y)/N by rounding.
        # The literal engine therefore takes the collapsed result, bit-identical to loops;
        # tests/test_losses_kernels.py compares the unreduced literal forms with it.
        kernel_engine = "loops" if engine == "literal" else engine
        form("losses", f"{self.name}_output_grad", kernel_engine)(_rows(A), _rows(Y), _rows(out))
        return out


def _rows(a: np.ndarray) -> np.ndarray:
    """A samples-last array as rows × samples: ``(..., N)`` -> ``(prod(...), N)``, a view."""
    return a if a.ndim == 2 else a.reshape(-1, a.shape[-1])


LOSSES = {
    loss.name: loss
    for loss in (
        Loss("mse", "(1/N) Σ_n Σ_i (A_in - Y_in)²", "seed 000 eq. 2", "mean", None, "real"),
        Loss("half_se", "½ Σ_n Σ_i (A_in - Y_in)²", "seed 002 §5", "sum", None, "real"),
        Loss("euclidean", "1/(2N) Σ_n ‖a_n - t_n‖²", "seed 004 eq. 2.16", "mean", None, "real"),
        Loss("cross_entropy", "-(1/N) Σ_n Σ_i Y_in ln S_in", "seed 001 §4", "mean", "softmax", "one_hot"),
        Loss(
            "binary_cross_entropy", "-(1/N) Σ_n Σ_i [Y ln A + (1-Y) ln(1-A)]",
            "seed 000 eq. 11 (sign corrected), seed 002 §8", "mean", "sigmoid", "unit",
        ),
    )
}


def get_loss(name: str) -> Loss:
    """The loss called ``name``; a ValueError lists the choices otherwise."""
    return LOSSES[check_choice("loss", name, LOSSES)]
