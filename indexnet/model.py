"""A trained model for use from Python: load it, predict with it, or train one.

::

    import indexnet

    model = indexnet.fit(data="digits", epochs=20)          # or fit(preset=..., csv=..., out=...)
    model = indexnet.load_model("runs/digits-digits-.../")  # a run folder or a model .npz
    labels = model.predict(X)                                # X: raw inputs, one sample per row
    P = model.predict_proba(X)                               # class probabilities, one row per sample

Inputs are **raw** values, as in the data files (pixels 0..16 or 0..255, CSV
numbers), one sample per row: ``(N, features)``, or images ``(N, H, W)`` /
``(N, C, H, W)``. The model applies the input scaling it was trained with (stored in
its file). This is the one place of the library where samples come first, as rows of a
file do; the network underneath (:attr:`Model.net`) works samples last.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Model", "load_model", "fit"]


class Model:
    """A network with the record of its data: scaling, classes and their names.

    Parameters
    ----------
    net : indexnet.Network
    meta : dict
        The model file's JSON metadata (``data``: scaling, kind, class names; ``config``).

    Attributes
    ----------
    net : Network
    meta : dict
    kind : {"classification", "regression"}
    class_names : list of str
        The classes' names (a CSV file's text labels, else ``"0"``, ``"1"``, ...);
        empty for regression.
    history : list of dict
        Per-epoch records when the model comes from :func:`fit` (else empty).
    test_metrics : dict or None
        The test-split figures when the model comes from :func:`fit`.
    """

    def __init__(self, net, meta: dict[str, Any]):
        data = meta.get("data")
        if not isinstance(data, dict) or "scaling" not in data:
            raise ValueError("model: the file has no data record (input scaling); it was not written by "
                             "indexnet train or indexnet.fit")
        self.net, self.meta = net, meta
        self.kind = data.get("kind", "classification")
        self.scaling = data["scaling"]
        k = int(data.get("n_classes") or 0)
        self.class_names = list(data.get("class_names") or [str(i) for i in range(k)]) if self.kind == "classification" else []
        self.history: list[dict] = []
        self.test_metrics: dict | None = None

    def __repr__(self) -> str:
        spec = self.meta.get("layers_spec", "")
        return f"Model({spec!r}, {self.kind}, {self.net.n_params} parameters, {self.net.dtype})"

    @property
    def n_features(self) -> int:
        """Input values per sample."""
        return int(np.prod(self.net.input_shape))

    def _inputs(self, X) -> np.ndarray:
        """Raw rows -> scaled network inputs, samples last."""
        from indexnet.data import apply_scaling

        X = np.asarray(X)
        if X.dtype.kind not in "uif":
            raise TypeError(f"X: expected numbers, got an array of dtype {X.dtype}")
        if X.ndim == 1 and X.size == self.n_features:
            X = X[None]
        if X.ndim < 2 or int(np.prod(X.shape[1:])) != self.n_features:
            raise ValueError(f"X: expected raw inputs with {self.n_features} values per sample, one sample per row "
                             f"(shape (N, {self.n_features}) or (N, {', '.join(map(str, self.net.input_shape))})), "
                             f"got shape {X.shape}")
        if X.shape[0] == 0:
            raise ValueError("X: expected at least one sample, got 0 rows")
        flat = np.ascontiguousarray(X.reshape(X.shape[0], -1).T)
        scaled = apply_scaling(flat, self.scaling, self.net.dtype)
        if not np.isfinite(scaled).all():
            raise ValueError("X: expected finite values, got NaN or Inf")
        return scaled

    def outputs(self, X, *, engine: str = "fast", batch_size: int = 1000) -> np.ndarray:
        """The network's output for raw inputs ``X``: ``(N, outputs)`` (probabilities for a softmax output)."""
        from indexnet.train.metrics import predict

        return predict(self.net, self._inputs(X), engine, batch_size).T.copy()

    def predict_proba(self, X, **kw) -> np.ndarray:
        """Class probabilities ``(N, classes)`` (the softmax or sigmoid output) of a classifier."""
        if self.kind != "classification":
            raise ValueError("predict_proba: this model is a regression model; use predict or outputs")
        return self.outputs(X, **kw)

    def predict(self, X, **kw) -> np.ndarray:
        """Class indices ``(N,)`` for a classifier (names: ``model.class_names[i]``), outputs ``(N, outputs)``
        for a regression model.

        Parameters
        ----------
        X : array_like
            Raw inputs, one sample per row (see the module docstring).
        engine : str, optional
            ``fast`` (default), ``loops`` or ``numpy``.
        batch_size : int, optional
        """
        out = self.outputs(X, **kw)
        return out.argmax(axis=1) if self.kind == "classification" else out

    def save(self, path) -> Path:
        """Write the model (atomically, no pickle) to ``path``."""
        from indexnet.io import save_model

        meta = {k: v for k, v in self.meta.items() if k not in ("format", "format_version", "architecture", "kind")}
        return save_model(self.net, path, **meta)


def model_file(path) -> Path:
    """A model file, or the model of a run folder: model.npz, else best.npz, else checkpoint.npz."""
    path = Path(path)
    if path.is_dir():
        for name in ("model.npz", "best.npz", "checkpoint.npz"):
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f"model: {path} is a folder without model.npz, best.npz or checkpoint.npz; "
                                "expected a run folder of indexnet train or a model file")
    return path


def load_model(path) -> Model:
    """Load a trained model from a run folder or a ``.npz`` written by ``indexnet train`` / :func:`fit`.

    Parameters
    ----------
    path : path-like
        A run folder (its ``model.npz``) or a model, best or checkpoint file.

    Returns
    -------
    Model

    Raises
    ------
    FileNotFoundError, ValueError
        No such file, or not an indexnet model (the message says what is wrong).
    """
    from indexnet.io import load_model as _load

    net, meta = _load(model_file(path))
    return Model(net, meta)


def fit(preset: str | None = None, *, out=None, log=None, **options: Any) -> Model:
    """Train a network as ``indexnet train`` does, from Python, and return it as a :class:`Model`.

    Parameters
    ----------
    preset : str, optional
        A preset name (``digits``, ``seed001``, ``cnn``, ...); default: the data set's.
    out : path-like, optional
        A run folder to write (model.npz, checkpoint, history, plots); None writes nothing.
    log : callable, optional
        Receives the per-epoch lines (e.g. ``print``); default silent.
    **options
        Any ``indexnet train`` option by its Python name: ``data``, ``csv``, ``target``,
        ``task``, ``data_dir``, ``layers``, ``optimizer``, ``lr``, ``batch_size``,
        ``epochs``, ``seed``, ``engine``, ``dtype``, ... Each overrides only itself.

    Returns
    -------
    Model
        With ``history`` and ``test_metrics`` (loss and accuracy or RMSE on the test split).

    Raises
    ------
    ValueError
        A bad option (named as on the command line), or a bad data file.
    """
    from indexnet.train.trainer import Trainer, _plain, resolve_config

    config = resolve_config(preset, **options)
    trainer = Trainer(config, out=out, log=log, progress=False)
    trainer.fit()
    test = trainer.evaluate("test")
    if out is not None:
        trainer.save_outputs(test, plots=False)
    model = Model(trainer.net.copy(), {**trainer._meta(), "kind": "model"})
    model.history = [dict(r) for r in trainer.history]
    model.test_metrics = _plain(test)
    return model
