"""scikit-learn's bundled 8×8 handwritten digits: the embedded default data set.

1797 images of 8×8 pixels with values 0..16, ten classes, shipped inside
scikit-learn (``sklearn.datasets.load_digits``), so no download is needed.
"""
from __future__ import annotations

import numpy as np

from .dataset import Splits, make_splits, split_indices


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
    from sklearn.datasets import load_digits as _sklearn_digits  # imported on use: slow to import

    images, labels = _sklearn_digits(return_X_y=True)  # (1797, 64) float64 in 0..16, (1797,)
    parts = split_indices(labels.shape[0], val_fraction, test_fraction, seed, labels=labels)
    info = {"method": "stratified", "seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction}
    return make_splits(
        images.T, parts, info, labels=labels, name="digits", scaling={"method": "divide", "value": 16.0},
        n_classes=10, image_shape=(1, 8, 8), dtype=dtype,
    )
