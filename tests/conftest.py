"""Shared test set-up: hypothesis profile and small helpers."""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Numba compile time dominates the first example of each test; no per-example deadline.
settings.register_profile(
    "indexnet",
    deadline=None,
    max_examples=int(os.environ.get("INDEXNET_MAX_EXAMPLES", "25")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
settings.load_profile("indexnet")


@pytest.fixture
def rng():
    """A seeded generator, fresh for each test."""
    return np.random.default_rng(20261122)
