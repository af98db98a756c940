"""What one oracle call returns: :class:`OracleResult`.

Indexing — the one scheme of every per-layer list, here and in
:class:`indexnet.nn.network.Backprop`: position ``l-1`` holds layer l = 1..L.

==============  =====================================================================
``Z[l-1]``      Z^(l), the layer's pre-activation
``A[l-1]``      A^(l) = σ(Z^(l)), the layer's output (``A[-1]`` is the network output)
``Delta[l-1]``  Δ^(l) = ∂J/∂A^(l)
``H[l-1]``      H^(l) = ∂J/∂Z^(l) = Δ^(l) ⊙ σ'(Z^(l)) (through the Jacobian for softmax)
``grads[l-1]``  ``{"W": ∂J/∂W^(l), "b": ∂J/∂b^(l)}`` (dense), ``{"K", "b"}`` (conv),
                ``{}`` (pooling, flatten)
``X``, ``dX``   the input A^(0) and ∂J/∂X = Δ^(0): separate fields, in no list
==============  =====================================================================

Every activation-shaped array is in the caller's layout (``layout``, ``image_layout``);
dense weight gradients in the caller's ``weight_layout``; bias gradients in the shape
the caller gave the bias.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from indexnet._validate import check_choice

_PARAM_TORCH_NAMES = {"W": "weight", "K": "weight", "b": "bias"}


@dataclass(frozen=True)
class OracleResult:
    """Loss, gradients and every intermediate of one exact float64 pass, in the caller's layouts.

    Per-layer lists are indexed ``l-1`` for layer l (see the module docstring for the
    table); ``X`` and ``dX`` are separate fields.

    Attributes
    ----------
    loss : float
        J.
    X : ndarray
        The input as the oracle read it (float64, caller's layout).
    dX : ndarray
        ∂J/∂X, shaped like X.
    Z, A, Delta, H : list of ndarray
        Pre-activations, activations, Δ = ∂J/∂A and H = ∂J/∂Z, layer l at ``l-1``.
    grads : list of dict
        Per layer ``{"W": ∂J/∂W, "b": ∂J/∂b}`` (dense) or ``{"K": ..., "b": ...}``
        (conv); empty for pooling and flatten.
    layer_names : tuple of str
        ``"layer 1"``, ``"layer 2"``, ...
    torch_names : tuple of str
        The index of each layer's module in the equivalent ``torch.nn.Sequential`` (the
        keys' prefix in its ``state_dict``).
    activation_modules : tuple of (str or None)
        The index of the activation module fused into each layer, None when the layer
        has none (identity, or a logits head whose softmax / sigmoid is in the loss).
    layout, weight_layout, image_layout : str
        The layouts of the returned arrays (``image_layout``: ``"channels_first"`` or
        ``"channels_last"``).
    loss_name : str
        The loss as the caller named it (e.g. ``"CrossEntropyLoss"``).
    reduction : str
        ``"mean"`` or ``"sum"``.
    identity_modules : tuple
        ``(module index, layer position, what)`` for each ``Identity`` module: it passes
        on X (``what`` "X"), or Z / A of the layer at that position.
    head_input : str
        What the caller's model ends in: ``"probabilities"`` (a softmax / sigmoid module),
        ``"logits"`` (``CrossEntropyLoss``, ``BCEWithLogitsLoss``: the loss applies the
        softmax / sigmoid, so ``A[-1]`` is σ(Z^(L)) as the derivation has it and the
        module's own output is ``Z[-1]`` with gradient ``H[-1]``), ``"log_probabilities"``
        (LogSoftmax + ``NLLLoss``), ``"any"`` (squared losses) or ``"grad_output"``.
    loss_factor : float
        c of J = c Σ ... (:mod:`indexnet.oracle.heads`); 1 for grad_output.
    Y : ndarray or None
        The targets as the oracle read them (one-hot for class labels), or G.
    bounds : OracleResult or None
        With ``bounds="float32"`` (``"float16"``, ``"bfloat16"``): the same structure,
        holding for every element a bound on how far a correct implementation in that
        precision may be from this result (derivations/rounding.md, R31); None otherwise.
    kink : OracleResult or None
        The same structure of boolean masks: the kink-sensitive elements (a ReLU or
        leaky-ReLU pre-activation, or a max-pool tie, within its perturbation, R10, R29),
        which have no bound and are skipped by ``assert_gradients_match(..., dtype=...)``.
    precision, bound_method : str or None
        The precision of the bounds and ``"worst_case"`` or ``"probabilistic"``.
    """

    loss: float
    X: np.ndarray = field(repr=False)
    dX: np.ndarray = field(repr=False)
    Z: list = field(repr=False)
    A: list = field(repr=False)
    Delta: list = field(repr=False)
    H: list = field(repr=False)
    grads: list = field(repr=False)
    layer_names: tuple
    torch_names: tuple
    activation_modules: tuple
    layout: str
    weight_layout: str
    image_layout: str = "channels_first"
    loss_name: str = ""
    reduction: str = "mean"
    identity_modules: tuple = ()
    head_input: str = "probabilities"
    loss_factor: float = 1.0
    Y: np.ndarray | None = field(default=None, repr=False)
    # further optional fields (with defaults) go below this line
    bounds: "OracleResult | None" = field(default=None, repr=False)
    kink: "OracleResult | None" = field(default=None, repr=False)
    precision: str | None = None
    bound_method: str | None = None

    @property
    def n_layers(self) -> int:
        """L, the number of layers."""
        return len(self.layer_names)

    def grads_dict(self, style: str = "indexnet") -> dict:
        """The parameter gradients by name.

        Parameters
        ----------
        style : {"indexnet", "torch"}
            ``indexnet``: ``{"layer 1": {"W": ..., "b": ...}, ...}`` (layers without
            parameters left out). ``torch``: ``{"0.weight": ..., "0.bias": ...}``, the
            keys of the equivalent Sequential's ``state_dict``.
        """
        check_choice("style", style, ("indexnet", "torch"))
        if style == "torch":
            return {f"{t}.{_PARAM_TORCH_NAMES[p]}": g for t, gs in zip(self.torch_names, self.grads) for p, g in gs.items()}
        return {name: dict(gs) for name, gs in zip(self.layer_names, self.grads) if gs}

    @property
    def grads_flat(self) -> np.ndarray:
        """Every parameter gradient in one vector: layer by layer, W (or K) before b, row-major
        in the caller's layouts."""
        parts = [g.ravel() for gs in self.grads for g in gs.values()]
        return np.concatenate(parts) if parts else np.zeros(0)

    def to_dict(self) -> dict:
        """Everything, nested for comparison: ``{"loss": J, "dX": ..., "layer 1": {"W", "b",
        "Z", "A", "Delta", "H"}, ...}`` (layer l's entries are ``Z[l-1]``, ``A[l-1]``, ...)."""
        out: dict = {"loss": self.loss, "dX": self.dX}
        for i, name in enumerate(self.layer_names):
            out[name] = {**self.grads[i], "Z": self.Z[i], "A": self.A[i], "Delta": self.Delta[i], "H": self.H[i]}
        return out

    def by_module(self) -> dict:
        """The result per module of the equivalent ``torch.nn.Sequential``, keyed by module index.

        indexnet fuses an activation into the linear or conv layer before it; this view
        splits them again. A linear / conv module's entry is ``{"output": Z, "grad_output":
        ∂J/∂Z, "weight": ∂J/∂weight, "bias": ∂J/∂bias}``; its activation module's entry is
        ``{"output": A, "grad_output": Δ}``. A module without a fused activation (pooling,
        flatten, a linear layer with no activation or a logits head) has ``output`` A and
        ``grad_output`` Δ (= H); an ``Identity`` module repeats what it passes on.
        ``grad_output`` is the gradient of J with respect to the module's output, as
        ``retain_grad`` or a full backward hook would see it.
        """
        out: dict = {}
        for i, (t, act) in enumerate(zip(self.torch_names, self.activation_modules)):
            params = {_PARAM_TORCH_NAMES[p]: g for p, g in self.grads[i].items()}
            last = i == len(self.torch_names) - 1
            if last and self.head_input == "log_probabilities":
                feature = 1 if self.layout == "samples_first" else 0
                Z = self.Z[i]
                m = Z.max(axis=feature, keepdims=True)
                log_s = Z - m - np.log(np.exp(Z - m).sum(axis=feature, keepdims=True))
                out[t] = {"output": Z, "grad_output": self.H[i], **params}
                out[act] = {"output": log_s, "grad_output": -self.loss_factor * self.Y}
            elif act is None and last and self.head_input == "logits":
                out[t] = {"output": self.Z[i], "grad_output": self.H[i], **params}
            elif act is None:
                out[t] = {"output": self.A[i], "grad_output": self.Delta[i], **params}
            else:
                out[t] = {"output": self.Z[i], "grad_output": self.H[i], **params}
                out[act] = {"output": self.A[i], "grad_output": self.Delta[i]}
        for key, i, what in self.identity_modules:
            if what == "X":
                out[key] = {"output": self.X, "grad_output": self.dX}
            elif what == "Z":
                out[key] = {"output": self.Z[i], "grad_output": self.H[i]}
            else:
                out[key] = {"output": self.A[i], "grad_output": self.Delta[i]}
        return dict(sorted(out.items(), key=lambda kv: int(kv[0])))
