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
        """J from the output layer's Z and A (eqs. L1-L3, L5, L8)."""
        if self.squared:
            return float(form("losses", "squared_error_value", engine)(A, Y, self.scale(A.shape[1])))
        return float(form("losses", f"{self.name}_value", engine)(Z, Y))

    def delta(self, A: np.ndarray, Y: np.ndarray, engine: str = "loops", out=None) -> np.ndarray:
        """Δ^(L) = ∂J/∂A^(L) (eqs. L4, L6, L9)."""
        out = np.empty_like(A) if out is None else out
        if self.squared:
            return form("losses", "squared_error_delta", engine)(A, Y, self.scale(A.shape[1]), out)
        return form("losses", f"{self.name}_delta", engine)(A, Y, out)

    def fused_H(self, A: np.ndarray, Y: np.ndarray, engine: str = "loops", out=None) -> np.ndarray:
        """H^(L) = ∂J/∂Z^(L) = (A - Y)/N for softmax + cross-entropy (eq. L7) and sigmoid + BCE (L7b)."""
        if self.output_activation is None:
            raise ValueError(f"loss {self.name!r} has no fused output gradient")
        out = np.empty_like(A) if out is None else out
        return form("losses", f"{self.name}_output_grad", engine)(A, Y, out)


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
