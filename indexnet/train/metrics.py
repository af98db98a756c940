"""Evaluation: batched forward passes, loss per example, accuracy, confusion matrix.

Losses are reported *per example*, so numbers of splits of different sizes compare:
for a mean-reduced loss (``mse``, ``euclidean``, ``cross_entropy``,
``binary_cross_entropy``) that is J itself; for the sum-reduced ``half_se`` (seed 002's
½ Σ (h − o)²) it is J / N. The loss's own definition is never changed, only divided
by the number of examples it summed.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from indexnet._validate import check_positive_int

__all__ = ["per_example", "predict", "evaluate", "accuracy", "confusion_matrix", "format_metrics"]


def per_example(loss_fn, J: float, n: int) -> float:
    """J of ``n`` examples as a per-example value (J/n for a sum-reduced loss, else J)."""
    return J / n if loss_fn.reduction == "sum" else J


def _image_view(net, X: np.ndarray) -> np.ndarray:
    """``X`` (features, N) reshaped to the network's input shape (a view)."""
    return X.reshape(net.input_shape + (X.shape[-1],))


def _slices(n: int, batch_size: int):
    batch_size = check_positive_int("batch_size", batch_size)
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def predict(net, X: np.ndarray, engine: str = "numpy", batch_size: int = 1000) -> np.ndarray:
    """The network's output A^(L) for ``X`` (features, N), computed in batches.

    Parameters
    ----------
    net : Network
    X : ndarray, shape (features, N)
        Flat inputs, samples last; reshaped to ``net.input_shape`` for image networks.
    engine : str
        ``fast``, ``loops``, ``numpy`` or ``literal``.
    batch_size : int
        Examples per forward pass (bounds the memory of the intermediates).

    Returns
    -------
    ndarray, shape (outputs, N)
    """
    Xv = _image_view(net, X)
    out = np.empty(net.output_shape + (X.shape[-1],), dtype=net.dtype)
    for s in _slices(X.shape[-1], batch_size):
        out[..., s] = net.forward(np.ascontiguousarray(Xv[..., s]), engine, check=False)[-1].A
    return out


def fast_forward(net):
    """The fast engine's forward composer of ``net``
    (:func:`indexnet.train.fastpath.make_fast_forward`), made once per network, or None
    when the network is not one it runs (then the layers' ``fast`` forms are used)."""
    cache = net.__dict__.setdefault("_fast_forward", {})
    if "f" not in cache:
        from indexnet.train.fastpath import make_fast_forward

        cache["f"] = make_fast_forward(net)
    return cache["f"]


def evaluate(net, dataset, engine: str = "numpy", batch_size: int = 1000, *, limit: int | None = None) -> dict[str, Any]:
    """Loss per example (and accuracy for classifiers, RMSE for regression) on a data set.

    Parameters
    ----------
    net : Network
    dataset : indexnet.data.Dataset
        Its ``X`` and ``T`` must have the network's dtype.
    engine : str
        The engine of the forward passes. ``fast`` runs a dense network the fast step
        supports through the step's own kernels (:func:`fast_forward`: D1.5 per layer
        and the fused output pass), so evaluating compiles nothing more than training.
    batch_size : int
        Examples per forward pass. The result does not depend on it beyond rounding.
    limit : int, optional
        Use only the first ``limit`` examples.

    Returns
    -------
    dict
        ``n``, ``loss`` and, for classification, ``accuracy`` (fraction correct) and
        ``predictions`` (int64 class indices); for regression ``rmse`` (root of the mean
        squared error per output) and ``outputs``.
    """
    n = dataset.n_samples if limit is None else min(limit, dataset.n_samples)
    if n < 1:
        raise ValueError(f"dataset: expected at least one example to evaluate, got {n}")
    Xv = _image_view(net, dataset.X)
    total = 0.0
    outputs = np.empty((dataset.n_outputs, n), dtype=net.dtype)
    fast = fast_forward(net) if engine == "fast" else None
    for s in _slices(n, batch_size):
        if fast is not None:  # the training step's own forward kernels and fused output pass
            J, A = fast(dataset.X[:, s], dataset.T[:, s])
            outputs[:, s] = A
        else:
            Y = np.ascontiguousarray(dataset.T[:, s])
            last = net.forward(np.ascontiguousarray(Xv[..., s]), engine, check=False)[-1]
            J = net.loss_fn.value(last.Z, last.A, Y, engine)
            outputs[:, s] = last.A
        m = s.stop - s.start
        # back to a sum over examples, so batches of unequal size combine exactly
        total += J if net.loss_fn.reduction == "sum" else J * m
    result: dict[str, Any] = {"n": n, "loss": total / n}
    if dataset.kind == "classification":
        pred = outputs.argmax(axis=0)
        result["accuracy"] = accuracy(pred, dataset.labels[:n])
        result["predictions"] = pred
    else:
        err = outputs.astype(np.float64) - dataset.T[:, :n]
        result["rmse"] = float(np.sqrt(np.mean(err * err)))
        result["outputs"] = outputs
    return result


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of ``predictions`` equal to ``labels`` (1-D integer arrays of one length)."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.shape != labels.shape or predictions.ndim != 1:
        raise ValueError(f"predictions, labels: expected 1-D arrays of one length, got {predictions.shape} and {labels.shape}")
    return float(np.mean(predictions == labels)) if labels.size else float("nan")


def confusion_matrix(predictions: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """``C[i, j]`` = number of examples of true class i predicted as class j.

    Raises
    ------
    ValueError
        A label or prediction outside ``[0, n_classes)``.
    """
    from indexnet.data.dataset import check_labels

    n_classes = check_positive_int("n_classes", n_classes)
    labels = check_labels(np.asarray(labels), n_classes, "labels")
    predictions = check_labels(np.asarray(predictions), n_classes, "predictions")
    C = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(C, (labels, predictions), 1)
    return C


def format_metrics(prefix: str, m: dict) -> str:
    """``"test loss 0.0812  acc 97.50%"`` (or ``rmse`` for regression)."""
    text = f"{prefix} loss {m['loss']:.4g}"
    if "accuracy" in m:
        text += f"  acc {100 * m['accuracy']:.2f}%"
    if "rmse" in m:
        text += f"  rmse {m['rmse']:.4g}"
    return text
