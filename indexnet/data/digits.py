"""The 8×8 handwritten digits: the embedded default data set.

1797 images of 8×8 pixels with values 0..16, ten classes: the UCI optdigits set as
scikit-learn ships it (``sklearn.datasets.load_digits``), stored in this package as
``digits.npz`` (45 kB, read without pickle; source and licence in ``DIGITS.md``), so no
download and no scikit-learn are needed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .dataset import Splits, make_splits, split_indices

DIGITS_FILE = Path(__file__).with_name("digits.npz")


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The raw set: pixels (1797, 64) float64 in 0..16 and labels (1797,) int64."""
    with np.load(DIGITS_FILE, allow_pickle=False) as data:
        images, labels = data["images"], data["labels"]
    return images.reshape(images.shape[0], -1).astype(np.float64), labels.astype(np.int64)


def load_digits(
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    *,
    dtype=np.float64,
) -> Splits:
    """The 8×8 digits, split train / validation / test, stratified and seeded.

    Split: test and validation sizes are ``ceil(1797 · fraction)``; with the defaults
    that is **1257 / 180 / 360** (train / validation / test). Each class contributes to
    the test and validation sets in proportion to its size (largest remainder), and
    which of its images go where is drawn by ``seed``; the same seed gives the same
    split on every platform.

    Inputs: ``X = pixels / 16`` (scaling ``{"method": "divide", "value": 16.0}``),
    shape (64, N), ``image_shape = (1, 8, 8)``; targets one-hot over 10 classes.

    Parameters
    ----------
    seed : int
        Seed of the split.
    val_fraction, test_fraction : float
        Fractions in [0, 1) of the 1797 images for validation and test.
    dtype : float32 or float64

    Returns
    -------
    Splits
    """
    images, labels = digits_arrays()  # (1797, 64) float64 in 0..16, (1797,)
    parts = split_indices(labels.shape[0], val_fraction, test_fraction, seed, labels=labels)
    info = {"method": "stratified", "seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction}
    return make_splits(
        images.T, parts, info, labels=labels, name="digits", scaling={"method": "divide", "value": 16.0},
        n_classes=10, image_shape=(1, 8, 8), dtype=dtype,
    )
