"""PNG figures with matplotlib: training curves, confusion matrix, fitted functions.

Figures are built with :class:`matplotlib.figure.Figure` directly (no ``pyplot``, no
global backend switch), rendered by the Agg canvas into memory and written atomically.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from indexnet.io import write_bytes_atomic

__all__ = ["history_figure", "plot_history", "plot_confusion", "plot_square_fit", "plot_sphere_fit", "plot_fit"]


def _figure(width: float, height: float, layout: str | None = None):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path) -> Path:
    """Render ``fig`` to PNG and write it atomically. A figure with a layout engine
    (constrained) already fits its canvas and is drawn once; others are cropped to their
    content (``bbox_inches="tight"``, which draws the figure twice)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches=None if fig.get_layout_engine() is not None else "tight")
    return write_bytes_atomic(path, buf.getvalue())


def history_figure(history: Sequence[dict], title: str = "", best_epoch: int | None = None):
    """The figure of :func:`plot_history` (for tests and callers that add to it).

    Every point is marked when the run has at most 40 epochs (a one-epoch run is a
    visible point, not an invisible line), and so is every point of a metric measured
    only after some epochs (the training accuracy, ``train_eval_every``; its legend says
    how many), the epoch axis has integer ticks, the loss
    axis is logarithmic only when the losses span more than a decade, the best epoch is
    a dotted vertical line, and a long title wraps above the panels' titles.
    """
    from matplotlib.ticker import MaxNLocator

    if not history:
        raise ValueError("history: expected at least one epoch to plot, got none")
    epochs = [r["epoch"] for r in history]
    key = "acc" if "val_acc" in history[0] else "rmse"
    fig = _figure(10, 3.8, layout="constrained")
    ax_loss, ax_metric = fig.subplots(1, 2)
    marker = "o" if len(epochs) <= 40 else None
    scale = 100.0 if key == "acc" else 1.0
    for split, style in (("train", "-"), ("val", "--")):
        ax_loss.plot(epochs, [r[f"{split}_loss"] for r in history], style, marker=marker, ms=4,
                     label="train (running mean over the epoch)" if split == "train" else split)
        # the training accuracy / RMSE is measured only after some epochs (TrainConfig.train_eval_every)
        measured = [r for r in history if f"{split}_{key}" in r]
        sparse = len(measured) < len(history)
        label = f"{split} (measured after {len(measured)} of {len(epochs)} epochs)" if sparse else split
        ax_metric.plot([r["epoch"] for r in measured], [scale * r[f"{split}_{key}"] for r in measured], style,
                       marker="o" if sparse else marker, ms=4, label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss per example", title="loss")
    losses = [r[f"{s}_loss"] for r in history for s in ("train", "val")]
    if all(v > 0 for v in losses) and max(losses) / min(losses) > 10:
        ax_loss.set_yscale("log")
    ax_metric.set(xlabel="epoch", ylabel="accuracy (%)" if key == "acc" else "RMSE",
                  title="accuracy" if key == "acc" else "RMSE")
    for ax in (ax_loss, ax_metric):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(epochs) == 1:
            ax.set_xlim(epochs[0] - 1, epochs[0] + 1)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="0.4", ls=":", lw=1, label=f"best (epoch {best_epoch})")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(_wrap(title, 100))
    return fig


def _wrap(text: str, width: int) -> str:
    """``text`` in lines of at most ``width`` characters, broken after commas or at spaces."""
    lines, line = [], ""
    for piece in text.replace(",", ",\0").replace(" ", " \0").split("\0"):
        if line and len(line) + len(piece) > width:
            lines.append(line.rstrip())
            line = ""
        line += piece
    return "\n".join(lines + [line.rstrip()])


def plot_history(history: Sequence[dict], path, title: str = "", best_epoch: int | None = None) -> Path:
    """Loss (left) and accuracy or RMSE (right) per epoch, train and validation.

    Parameters
    ----------
    history : list of dict
        The trainer's history records.
    path : path-like
        The PNG to write.
    title : str
    best_epoch : int, optional
        Marked with a dotted line.
    """
    return _save(history_figure(history, title, best_epoch), path)


def plot_confusion(cm: np.ndarray, path, title: str = "", class_names: Sequence[str] | None = None) -> Path:
    """A confusion matrix (rows: true class, columns: predicted) with counts in the cells."""
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"cm: expected a square matrix, got shape {cm.shape}")
    k = cm.shape[0]
    names = [str(i) for i in range(k)] if class_names is None else list(class_names)
    size = max(4.0, 0.45 * k + 2)
    fig = _figure(size, size)
    ax = fig.subplots()
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set(xticks=range(k), yticks=range(k), xticklabels=names, yticklabels=names,
           xlabel="predicted class", ylabel="true class", title=title or "confusion matrix")
    if max(len(n) for n in names) > 3:  # long class names would run into each other
        for label in ax.get_xticklabels():
            label.set(rotation=45, ha="right", rotation_mode="anchor")
    if k <= 20:
        threshold = cm.max() / 2 if cm.size else 0
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > threshold else "black")
    return _save(fig, path)


def plot_square_fit(x_data: np.ndarray, t_data: np.ndarray, x_grid: np.ndarray, y_grid: np.ndarray, path,
                    title: str = "") -> Path:
    """Seed 003's Figure 2: the data of f(x) = x² and the network's curve."""
    fig = _figure(6, 4.2)
    ax = fig.subplots()
    ax.scatter(x_data, t_data, s=8, alpha=0.5, label="test data: x²")
    ax.plot(x_grid, x_grid**2, "k:", lw=1, label="f(x) = x²")
    ax.plot(x_grid, y_grid, "r-", lw=2, label="network")
    ax.set(xlabel="x", ylabel="y", title=title or "approximating f(x) = x²")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_sphere_fit(true_points: np.ndarray, predicted: np.ndarray, path, title: str = "") -> Path:
    """Seed 003's Figure 1: predicted points (coloured by error) beside the unit sphere."""
    fig = _figure(6, 6)
    ax = fig.add_subplot(projection="3d")
    u, v = np.meshgrid(np.linspace(0, 2 * math.pi, 30), np.linspace(0, math.pi, 15))
    ax.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="0.8", linewidth=0.5)
    err = np.linalg.norm(predicted - true_points, axis=0)
    sc = ax.scatter(predicted[0], predicted[1], predicted[2], c=err, cmap="viridis", s=10)
    # below the axes: at the right the colour bar's label ran into the z label
    fig.colorbar(sc, ax=ax, shrink=0.6, pad=0.12, location="bottom", label="distance to the true point")
    ax.set(xlabel="x", ylabel="y", zlabel="z", title=title or "approximation points on a sphere")
    ax.set_box_aspect((1, 1, 1))
    return _save(fig, path)


def plot_fit(net, splits, path, engine: str = "numpy") -> Path | None:
    """The fitted-function figure for seed 003's sets (square, sphere); None for others."""
    from indexnet.data import apply_scaling
    from indexnet.train.metrics import predict

    test = splits.test
    if test.name == "square":
        low, high = splits.info.get("low", -1.0), splits.info.get("high", 1.0)
        grid = np.linspace(low, high, 400)[None, :]
        y = predict(net, apply_scaling(grid, test.scaling, net.dtype), engine)
        raw_x = _unscale(test.X, test.scaling)
        rmse = float(np.sqrt(np.mean((predict(net, np.ascontiguousarray(test.X), engine) - test.T) ** 2)))
        return plot_square_fit(raw_x[0], test.T[0], grid[0], y[0], path,
                               title=f"f(x) = x²: test RMSE {rmse:.4f}")
    if test.name == "sphere":
        pred = predict(net, np.ascontiguousarray(test.X), engine).astype(np.float64)
        rmse = float(np.sqrt(np.mean((pred - test.T) ** 2)))
        return plot_sphere_fit(np.asarray(test.T, dtype=np.float64), pred, path,
                               title=f"points on a sphere: test RMSE {rmse:.4f}")
    return None


def _unscale(X: np.ndarray, scaling: dict) -> np.ndarray:
    """Raw inputs back from scaled ones (for axis labels in data units)."""
    X = np.asarray(X, dtype=np.float64)
    if scaling["method"] == "divide":
        return X * scaling["value"]
    if scaling["method"] == "standardize":
        return X * np.asarray(scaling["std"])[:, None] + np.asarray(scaling["mean"])[:, None]
    return X
