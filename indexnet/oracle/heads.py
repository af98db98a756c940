"""Loss heads of the oracle: indexnet's seed losses and PyTorch's, each with a batch reduction.

A head turns the output layer's Z^(L), A^(L) and the targets Y into J, Δ^(L) = ∂J/∂A^(L)
and, where the softmax / sigmoid cancels, H^(L) = ∂J/∂Z^(L) directly (L7, L7b). Every
head is one of the seed formulas times a stated factor c; N is the number of samples
and S the number of outputs of one sample (C·H·W for a feature map):

========================  ===============================  =========================  ==============
loss                      J                                c (``reduction="mean"``)   c (``"sum"``)
========================  ===============================  =========================  ==============
``mse``                   c Σ_n Σ_i (A - Y)²   (L1a)       1/N                        1
``half_se``               c Σ_n Σ_i (A - Y)²   (L2)        1/(2N)                     ½ (default)
``euclidean``             c Σ_n Σ_i (A - Y)²   (L3)        1/(2N) (default)           ½
``cross_entropy``         -c Σ_n Σ_i Y ln S    (L5)        1/N                        1
``binary_cross_entropy``  c Σ_n Σ_i [softplus(Z) - Y Z]    1/N                        1
                          (L8)
``MSELoss``               c Σ_n Σ_i (A - Y)²   (L1)        1/(N S)                    1
``CrossEntropyLoss``      -c Σ_n Σ_i Y ln softmax(Z) (L5)  1/N                        1
                          on logits: the model ends in
                          a linear / conv layer
``NLLLoss``               -c Σ_n Σ_i Y ln S    (L5), the   1/N                        1
                          model ends in LogSoftmax
``BCELoss``               c Σ_n Σ_i [softplus(Z) - Y Z]    1/(N S)                    1
                          (L8), the model ends in Sigmoid
``BCEWithLogitsLoss``     the same on logits   (L8)        1/(N S)                    1
========================  ===============================  =========================  ==============

``reduction=None`` keeps each loss's own reduction: ``"sum"`` for ``half_se``, ``"mean"``
for every other. PyTorch's names mean exactly what ``torch.nn.<Name>(reduction=...)``
computes (targets: class labels or class probabilities for ``CrossEntropyLoss`` and
``NLLLoss``, no class weights, no label smoothing, ``ignore_index`` unused).

``grad_output=G`` (no loss) is the head J = Σ G ⊙ A^(L): Δ^(L) = G, to check one layer or
block in isolation.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np

from indexnet._validate import check_choice
from indexnet.nn.engine import form
from indexnet.nn.losses import _rows, get_loss


@dataclass(frozen=True)
class Head:
    """A loss as the oracle computes it.

    Attributes
    ----------
    name : str
        As the caller named it.
    base : str
        The indexnet loss it is (``mse``, ``half_se``, ``euclidean``, ``cross_entropy``,
        ``binary_cross_entropy``): its formula and output activation.
    per_element : bool
        The mean divides by N·S (PyTorch's mean over all elements) instead of N.
    input : str
        What the caller's model ends in: ``"probabilities"`` (softmax / sigmoid module),
        ``"logits"`` (the loss applies softmax / sigmoid) or ``"log_probabilities"``
        (LogSoftmax, for NLLLoss); ``"any"`` for the squared losses.
    formula : str
        The seed formula it equals.
    """

    name: str
    base: str
    per_element: bool
    input: str
    formula: str

    @property
    def output_activation(self) -> str | None:
        return get_loss(self.base).output_activation

    @property
    def classes(self) -> bool:
        """Targets may be class labels (N,)."""
        return self.base == "cross_entropy"

    def default_reduction(self) -> str:
        return "sum" if self.base == "half_se" and not self.per_element else "mean"

    def over_mean(self, reduction: str, N: int, S: int) -> float:
        """c divided by the factor of the seed loss's own mean (1/N, or 1/(2N)): N for a sum,
        1/S for PyTorch's mean over all elements, 1 otherwise (exactly, no rounding)."""
        if reduction == "sum":
            return float(N)
        return 1.0 / S if self.per_element else 1.0

    def factor(self, reduction: str, N: int, S: int) -> float:
        """c in J = c Σ_n Σ_i (...) (the table of the module docstring)."""
        half = 0.5 if self.base in ("half_se", "euclidean") else 1.0
        if reduction == "sum":
            return half
        return half / (N * S if self.per_element else N)


HEADS = {h.name: h for h in (
    Head("mse", "mse", False, "any", "L1a: (1/N) Σ_n Σ_i (A - Y)² (seed 000 eq. 2)"),
    Head("half_se", "half_se", False, "any", "L2: ½ Σ_n Σ_i (A - Y)² (seed 002 §5)"),
    Head("euclidean", "euclidean", False, "any", "L3: 1/(2N) Σ_n ‖a_n - t_n‖² (seed 004 eq. 2.16)"),
    Head("cross_entropy", "cross_entropy", False, "probabilities", "L5: -(1/N) Σ Y ln S (seed 001 §4)"),
    Head("binary_cross_entropy", "binary_cross_entropy", False, "probabilities",
         "L8: (1/N) Σ [softplus(Z) - Y Z] (seeds 000/002)"),
    Head("MSELoss", "mse", True, "any", "L1 with scale 1/(N S): the mean over all N·S elements"),
    Head("CrossEntropyLoss", "cross_entropy", False, "logits", "L5 on the logits Z (softmax inside the loss)"),
    Head("NLLLoss", "cross_entropy", False, "log_probabilities", "L5 after LogSoftmax: -(1/N) Σ Y ln S"),
    Head("BCELoss", "binary_cross_entropy", True, "probabilities", "L8 with 1/(N S): mean over all elements"),
    Head("BCEWithLogitsLoss", "binary_cross_entropy", True, "logits", "L8 on the logits, 1/(N S)"),
)}

REDUCTIONS = ("mean", "sum")


def get_head(name: str) -> Head:
    """The head called ``name`` (indexnet or PyTorch spelling)."""
    return HEADS[check_choice("loss", name, HEADS)]


def check_reduction(head: Head, reduction: str | None) -> str:
    """``reduction`` resolved (None: the loss's own)."""
    if reduction is None:
        return head.default_reduction()
    return check_choice("reduction", reduction, REDUCTIONS)


def check_targets(head: Head, Y: np.ndarray) -> None:
    """Targets of a cross-entropy are non-negative (one-hot rows or class probabilities)."""
    if not np.all(np.isfinite(Y)):
        raise ValueError(f"Y: expected finite targets for loss {head.name!r}, got NaN or inf")
    if head.base == "cross_entropy" and np.any(Y < 0):
        raise ValueError(f"Y: expected class labels, one-hot rows or class probabilities (>= 0) for loss "
                         f"{head.name!r}, got a minimum of {Y.min()!r}")


def evaluate(head: Head, reduction: str, Z: np.ndarray, A: np.ndarray, Y: np.ndarray, engine: str):
    """J, Δ^(L) and H^(L) (or None) of ``head`` on samples-last arrays.

    Δ^(L) is exact and finite at saturation (L6b, L9b). H^(L) is returned for the
    cross-entropies when the softmax / sigmoid cancels (L7: each target column sums to 1;
    L7b: always), as (A - Y)·c; otherwise the network takes Δ^(L) through σ'.
    """
    N = A.shape[-1]
    S = prod(A.shape[:-1])
    c = head.factor(reduction, N, S)
    loss = get_loss(head.base)
    Z2, A2, Y2 = _rows(Z), _rows(A), _rows(Y)
    Delta = np.empty_like(A)
    if loss.squared:
        J = float(form("losses", "squared_error_value", engine)(A2, Y2, c))
        form("losses", "squared_error_delta", engine)(A2, Y2, c, _rows(Delta))
        return J, Delta, None
    scale = head.over_mean(reduction, N, S)
    J = float(form("losses", f"{head.base}_value", engine)(Z2, Y2))  # the mean over samples, c = 1/N
    if scale != 1:
        J *= scale
    form("losses", f"{head.base}_delta_from_z", engine)(Z2, Y2, c, _rows(Delta))
    H = None
    if head.base == "binary_cross_entropy" or np.all(np.abs(Y2.sum(axis=0) - 1) <= 1e-12):
        H = loss.fused_H(A, Y, engine)
        if scale != 1:
            H *= scale
    return J, Delta, H
