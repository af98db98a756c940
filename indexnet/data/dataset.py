"""The containers every loader returns, and the helpers around them.

A :class:`Dataset` holds one split in the samples-last layout of the kernels: inputs
``X`` of shape ``(features, N)``, targets ``T`` of shape ``(outputs, N)``. Its arrays are
made read-only, so a loaded set cannot be rescaled twice by accident; take
``ds.X.copy()`` for a buffer of your own.

Scaling
-------
Every loader states how raw inputs become ``X`` in a ``scaling`` record made of plain
JSON numbers, so a trainer can store it beside the weights and an evaluator can apply
exactly the same transformation with :func:`apply_scaling`:

``{"method": "none"}``
    ``X = raw``.
``{"method": "divide", "value": v}``
    ``X = raw / v`` (digits: 16, MNIST: 255).
``{"method": "standardize", "mean": [m_0, ...], "std": [s_0, ...]}``
    ``X[f] = (raw[f] - m_f) / s_f`` per feature ``f``; computed on the training split
    only (CSV).

Targets are never scaled.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np

from indexnet._validate import check_array, check_choice, check_positive_int

KINDS = ("classification", "regression")
SCALING_METHODS = ("none", "divide", "standardize")
INT_DTYPES = tuple(np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64))


# --------------------------------------------------------------------------- scaling


def _finite_floats(name: str, values: Sequence[float]) -> list[float]:
    out = [float(v) for v in values]
    for i, v in enumerate(out):
        if not math.isfinite(v):
            raise ValueError(f"{name}: expected finite numbers, got {v} at index {i}")
    return out


def check_scaling(scaling: Mapping[str, Any], n_features: int | None = None) -> dict:
    """Validate a scaling record and return it as a plain, JSON-able ``dict``.

    Parameters
    ----------
    scaling : mapping
        ``{"method": "none"}``, ``{"method": "divide", "value": v}`` or
        ``{"method": "standardize", "mean": [...], "std": [...]}``.
    n_features : int, optional
        When given, the length ``mean`` and ``std`` must have (method "standardize").

    Returns
    -------
    dict
        A fresh dict of Python floats and lists (safe to ``json.dumps``).

    Raises
    ------
    ValueError
        Unknown method, missing or non-finite values, a zero divisor, a non-positive
        standard deviation or a length that does not match ``n_features``.
    """
    if not isinstance(scaling, Mapping):
        raise TypeError(f"scaling: expected a mapping with a 'method' key, got {type(scaling).__name__}")
    method = check_choice("scaling['method']", scaling.get("method"), SCALING_METHODS)
    if method == "none":
        return {"method": "none"}
    if method == "divide":
        if "value" not in scaling:
            raise ValueError(f"scaling: method 'divide' needs a 'value', got keys {sorted(scaling)}")
        (value,) = _finite_floats("scaling['value']", [scaling["value"]])
        if value == 0.0:
            raise ValueError("scaling['value']: expected a non-zero divisor, got 0.0")
        return {"method": "divide", "value": value}
    for key in ("mean", "std"):
        if key not in scaling:
            raise ValueError(f"scaling: method 'standardize' needs 'mean' and 'std', got keys {sorted(scaling)}")
    mean = _finite_floats("scaling['mean']", np.ravel(scaling["mean"]))
    std = _finite_floats("scaling['std']", np.ravel(scaling["std"]))
    if len(mean) != len(std):
        raise ValueError(f"scaling: expected 'mean' and 'std' of equal length, got {len(mean)} and {len(std)}")
    if n_features is not None and len(mean) != n_features:
        raise ValueError(f"scaling['mean']: expected {n_features} values (one per feature), got {len(mean)}")
    for i, s in enumerate(std):
        if s <= 0.0:
            raise ValueError(f"scaling['std']: expected positive values, got {s} at index {i}")
    return {"method": "standardize", "mean": mean, "std": std}


def standardize_scaling(raw_X: np.ndarray) -> dict:
    """The standardization record of ``raw_X`` (features × N), one mean/std per feature.

    A feature with zero spread gets ``std = 1.0`` (it is only centred), so the record
    never divides by zero.
    """
    raw = np.asarray(raw_X, dtype=np.float64)
    mean = raw.mean(axis=1)
    std = raw.std(axis=1)
    std[std == 0.0] = 1.0
    return {"method": "standardize", "mean": mean.tolist(), "std": std.tolist()}


def apply_scaling(raw_X: np.ndarray, scaling: Mapping[str, Any], dtype=np.float64) -> np.ndarray:
    """Turn raw inputs into network inputs exactly as the loaders do.

    The one code path for train and eval time: a loader calls it on its raw values,
    and an evaluator calls it with the record stored beside a trained model.

    Parameters
    ----------
    raw_X : ndarray, shape (features, N)
        Raw inputs, samples last, any integer or float dtype (e.g. uint8 pixels).
    scaling : mapping
        A record accepted by :func:`check_scaling`.
    dtype : float32 or float64
        dtype of the result.

    Returns
    -------
    ndarray, shape (features, N)
        A new C-contiguous array of ``dtype``.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype: expected float32 or float64, got {dtype}")
    if not isinstance(raw_X, np.ndarray):
        raise TypeError(f"raw_X: expected a numpy.ndarray, got {type(raw_X).__name__}")
    if raw_X.ndim != 2:
        raise ValueError(f"raw_X: expected a 2-D array (features, N), samples last, got shape {raw_X.shape}")
    if raw_X.dtype.kind not in "uif":
        raise TypeError(f"raw_X: expected an integer or float dtype, got {raw_X.dtype}")
    record = check_scaling(scaling, raw_X.shape[0])
    # Work in float64 and round once at the end, so float32 results equal float64 ones
    # rounded, whatever dtype the caller asks for.
    X = np.array(raw_X, dtype=np.float64, order="C", copy=True)
    if record["method"] == "divide":
        X /= record["value"]
    elif record["method"] == "standardize":
        X -= np.asarray(record["mean"])[:, None]
        X /= np.asarray(record["std"])[:, None]
    return X if dtype == np.float64 else X.astype(dtype, order="C")


# --------------------------------------------------------------------------- labels


def one_hot(labels: np.ndarray, n_classes: int, dtype=np.float64) -> np.ndarray:
    """One-hot targets, samples last.

    Parameters
    ----------
    labels : ndarray of int, shape (N,)
        Class indices in ``[0, n_classes)``.
    n_classes : int
        Number of classes (rows of the result).
    dtype : float32 or float64

    Returns
    -------
    ndarray, shape (n_classes, N)
        ``T[k, n] = 1`` if ``labels[n] == k`` else 0; C-contiguous.

    Raises
    ------
    ValueError
        A label outside ``[0, n_classes)`` (the message gives the value and its index),
        or ``labels`` not 1-D.
    TypeError
        ``labels`` not an integer array.
    """
    n_classes = check_positive_int("n_classes", n_classes)
    labels = check_labels(labels, n_classes)
    T = np.zeros((n_classes, labels.shape[0]), dtype=dtype)
    T[labels, np.arange(labels.shape[0])] = 1
    return T


def check_labels(labels: np.ndarray, n_classes: int, name: str = "labels") -> np.ndarray:
    """``labels`` is a 1-D integer array with values in ``[0, n_classes)``; return it."""
    check_array(name, labels, ndim=1, dtype=INT_DTYPES, contiguous=False, min_samples=None)
    bad = np.flatnonzero((labels < 0) | (labels >= n_classes))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{name}: expected integers in [0, {n_classes}), got {labels[i]} at index {i}"
            + (f" ({bad.size} such labels in all)" if bad.size > 1 else "")
        )
    return labels


def batches(n: int, batch_size: int, rng: np.random.Generator | None, *, drop_last: bool = False) -> list[np.ndarray]:
    """Index batches over ``n`` samples, shuffled by ``rng``.

    Parameters
    ----------
    n : int
        Number of samples.
    batch_size : int
        Samples per batch; the last batch is smaller when ``batch_size`` does not divide
        ``n`` (unless ``drop_last``).
    rng : numpy.random.Generator or None
        Source of the shuffle; ``None`` keeps the order ``0 .. n-1`` (evaluation).
    drop_last : bool
        Drop a final batch shorter than ``batch_size``.

    Returns
    -------
    list of ndarray of int64
        Every index in ``range(n)`` exactly once (minus a dropped tail), in batches;
        use them as ``X[:, idx]``.
    """
    n = check_positive_int("n", n, minimum=0)
    batch_size = check_positive_int("batch_size", batch_size)
    if rng is None:
        order = np.arange(n, dtype=np.int64)
    elif isinstance(rng, np.random.Generator):
        order = rng.permutation(n).astype(np.int64, copy=False)
    else:
        raise TypeError(f"rng: expected a numpy.random.Generator or None, got {type(rng).__name__}")
    stop = n - n % batch_size if drop_last else n
    return [order[i : i + batch_size] for i in range(0, stop, batch_size)]


# --------------------------------------------------------------------------- splits


def _allocate(counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over classes in proportion to ``counts`` (largest remainder).

    Integer arithmetic only, so the result is exact and platform-independent; ties go
    to the lower class index.
    """
    s = int(counts.sum())
    if s == 0:
        return np.zeros_like(counts)
    base, rem = np.divmod(counts * total, s)
    extra = total - int(base.sum())
    order = np.argsort(-rem, kind="stable")
    base[order[:extra]] += 1
    return base


def split_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """``(n_train, n_val, n_test)``: test and validation sizes are ``ceil(n · fraction)``.

    Rounding up follows scikit-learn's ``train_test_split``. Raises ValueError when a
    fraction is outside ``[0, 1)`` or nothing would be left to train on.
    """
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not (isinstance(f, (int, float)) and 0.0 <= f < 1.0):
            raise ValueError(f"{name}: expected a number in [0, 1), got {f!r}")
    n_test = math.ceil(n * test_fraction)
    n_val = math.ceil(n * val_fraction)
    if n_test + n_val >= n:
        raise ValueError(
            f"val_fraction + test_fraction: expected to leave at least one training sample of {n}, "
            f"got {n_val} validation + {n_test} test"
        )
    return n - n_val - n_test, n_val, n_test


def split_indices(
    n: int,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded train / validation / test index sets, each sorted ascending.

    Sizes are those of :func:`split_sizes`. With ``labels`` the split is stratified:
    each class's test and validation quotas are proportional to its size (largest
    remainder), its members drawn at random by ``seed``. Without labels the split is a
    plain seeded permutation.
    """
    n_train, n_val, n_test = split_sizes(n, val_fraction, test_fraction)
    rng = np.random.default_rng(seed)
    if labels is None:
        perm = rng.permutation(n)
        parts = (perm[n_test + n_val :], perm[n_test : n_test + n_val], perm[:n_test])
        return tuple(np.sort(p) for p in parts)
    _, inverse = np.unique(labels, return_inverse=True)
    counts = np.bincount(inverse)
    test_q = _allocate(counts, n_test)
    val_q = _allocate(counts - test_q, n_val)
    train, val, test = [], [], []
    for c in range(counts.size):
        members = rng.permutation(np.flatnonzero(inverse == c))
        test.append(members[: test_q[c]])
        val.append(members[test_q[c] : test_q[c] + val_q[c]])
        train.append(members[test_q[c] + val_q[c] :])
    return tuple(np.sort(np.concatenate(p)) for p in (train, val, test))


# --------------------------------------------------------------------------- containers


def _readonly(a: np.ndarray) -> np.ndarray:
    """A read-only view of ``a``; ``a`` itself keeps its flags."""
    view = a.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, eq=False)
class Dataset:
    """One split of a data set, samples last.

    Attributes
    ----------
    X : ndarray, shape (features, N)
        Scaled inputs, C-contiguous, float64 unless converted with :meth:`astype`.
    T : ndarray, shape (outputs, N)
        Targets: one-hot ``(n_classes, N)`` for classification, the regression outputs
        otherwise; same dtype as ``X``.
    kind : {"classification", "regression"}
    name : str
        The data set's name, e.g. ``"digits"`` or ``"csv:path.csv"``.
    scaling : dict
        The record that turned raw inputs into ``X`` (see :func:`apply_scaling`).
    labels : ndarray of int64, shape (N,), or None
        Class indices (classification only).
    n_classes : int
        Number of classes (0 for regression).
    image_shape : (C, H, W) or None
        For image sets: ``X.reshape(C, H, W, N)`` is a free view (:meth:`images`).
    """

    X: np.ndarray
    T: np.ndarray
    kind: str
    name: str
    scaling: dict
    labels: np.ndarray | None = None
    n_classes: int = 0
    image_shape: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, KINDS)
        check_array("X", self.X, ndim=2, min_samples=0)
        n = self.X.shape[1]
        check_array("T", self.T, shape=(None, n), dtype=self.X.dtype, min_samples=0)
        object.__setattr__(self, "scaling", check_scaling(self.scaling, self.X.shape[0]))
        if self.kind == "classification":
            n_classes = check_positive_int("n_classes", self.n_classes)
            if self.labels is None:
                raise ValueError("labels: expected an integer array for a classification set, got None")
            check_labels(self.labels, n_classes)
            if self.labels.shape[0] != n:
                raise ValueError(f"labels: expected {n} labels (one per sample of X), got {self.labels.shape[0]}")
            if self.T.shape[0] != n_classes:
                raise ValueError(f"T: expected {n_classes} rows (one-hot, one per class), got {self.T.shape[0]}")
        elif self.labels is not None or self.n_classes != 0:
            raise ValueError(
                f"labels, n_classes: expected None and 0 for a regression set, got "
                f"{type(self.labels).__name__} and {self.n_classes!r}"
            )
        if self.image_shape is not None:
            shape = tuple(int(s) for s in self.image_shape)
            if len(shape) != 3 or math.prod(shape) != self.X.shape[0]:
                raise ValueError(
                    f"image_shape: expected (C, H, W) with C·H·W = {self.X.shape[0]} features, got {self.image_shape}"
                )
            object.__setattr__(self, "image_shape", shape)
        for field_name in ("X", "T", "labels"):
            a = getattr(self, field_name)
            if a is not None:
                object.__setattr__(self, field_name, _readonly(a))

    @property
    def n_samples(self) -> int:
        """N, the number of samples (last axis)."""
        return self.X.shape[1]

    @property
    def n_features(self) -> int:
        """Rows of ``X``."""
        return self.X.shape[0]

    @property
    def n_outputs(self) -> int:
        """Rows of ``T``."""
        return self.T.shape[0]

    def images(self) -> np.ndarray:
        """``X`` viewed as ``(C, H, W, N)`` (no copy). Raises ValueError for non-image sets."""
        if self.image_shape is None:
            raise ValueError(f"images(): data set {self.name!r} has no image shape (features {self.n_features})")
        return self.X.reshape(self.image_shape + (self.n_samples,))

    def astype(self, dtype) -> "Dataset":
        """The same set with ``X`` and ``T`` in ``dtype`` (float32 or float64)."""
        dtype = np.dtype(dtype)
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"dtype: expected float32 or float64, got {dtype}")
        if dtype == self.X.dtype:
            return self
        return replace(self, X=self.X.astype(dtype, order="C"), T=self.T.astype(dtype, order="C"))

    def subset(self, index: np.ndarray) -> "Dataset":
        """The samples ``index`` (an integer array) as a new Dataset."""
        return replace(
            self,
            X=np.ascontiguousarray(self.X[:, index]),
            T=np.ascontiguousarray(self.T[:, index]),
            labels=None if self.labels is None else self.labels[index].copy(),
        )


def _plain(value: Any) -> Any:
    """JSON fallback for NumPy scalars and arrays."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"info: expected JSON-able values, got {type(value).__name__}")


@dataclass(frozen=True, eq=False)
class Splits:
    """The train / validation / test Datasets of one data set.

    ``info`` records how the split was made (JSON-able: method, seed, fractions or
    sizes) so a trainer can store it beside a model.
    """

    train: Dataset
    validation: Dataset
    test: Dataset
    info: dict

    def __post_init__(self) -> None:
        first = self.train
        for part in ("validation", "test"):
            ds = getattr(self, part)
            if (ds.n_features, ds.n_outputs, ds.kind, ds.X.dtype) != (first.n_features, first.n_outputs, first.kind, first.X.dtype):
                raise ValueError(
                    f"{part}: expected features/outputs/kind/dtype {first.n_features}/{first.n_outputs}/"
                    f"{first.kind}/{first.X.dtype} like train, got {ds.n_features}/{ds.n_outputs}/{ds.kind}/{ds.X.dtype}"
                )
        # a plain JSON copy: NumPy scalars become Python numbers, nothing is shared
        object.__setattr__(self, "info", json.loads(json.dumps(dict(self.info), default=_plain)))

    @property
    def sizes(self) -> tuple[int, int, int]:
        """``(n_train, n_validation, n_test)``."""
        return self.train.n_samples, self.validation.n_samples, self.test.n_samples

    def astype(self, dtype) -> "Splits":
        """All three Datasets in ``dtype`` (float32 or float64)."""
        return replace(self, train=self.train.astype(dtype), validation=self.validation.astype(dtype), test=self.test.astype(dtype))


def make_dataset(
    raw_X: np.ndarray,
    *,
    name: str,
    scaling: Mapping[str, Any],
    labels: np.ndarray | None = None,
    n_classes: int = 0,
    T: np.ndarray | None = None,
    image_shape: tuple[int, int, int] | None = None,
    dtype=np.float64,
) -> Dataset:
    """Build a Dataset from raw inputs (features × N): scale them, one-hot the labels.

    Give ``labels`` and ``n_classes`` for a classification set, ``T`` (outputs × N)
    for a regression set.
    """
    X = apply_scaling(raw_X, scaling, dtype)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.dtype.kind in "iu":
            labels = labels.astype(np.int64)
        return Dataset(X, one_hot(labels, n_classes, X.dtype), "classification", name, dict(scaling),
                       labels, n_classes, image_shape)
    if T is None:
        raise ValueError("T: expected regression targets (outputs, N) when labels is None, got None")
    T = np.array(T, dtype=X.dtype, order="C", ndmin=2)
    return Dataset(X, T, "regression", name, dict(scaling), None, 0, image_shape)


def make_splits(
    raw_X: np.ndarray,
    parts: Sequence[np.ndarray],
    info: Mapping[str, Any],
    *,
    labels: np.ndarray | None = None,
    T: np.ndarray | None = None,
    **dataset_options: Any,
) -> Splits:
    """Cut ``raw_X`` (features × N) and its targets by the index arrays ``parts``.

    ``parts`` is ``(train, validation, test)``; every other keyword goes to
    :func:`make_dataset`.
    """

    def take(index: np.ndarray) -> Dataset:
        return make_dataset(
            raw_X[:, index],
            labels=None if labels is None else labels[index],
            T=None if T is None else T[:, index],
            **dataset_options,
        )

    train, val, test = (take(p) for p in parts)
    info = dict(info)
    info.setdefault("sizes", [train.n_samples, val.n_samples, test.n_samples])
    return Splits(train, val, test, info)
