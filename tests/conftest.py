"""Shared test set-up: hypothesis profile and small helpers.

Hypothesis draws new examples on every run (no ``derandomize``), 40 per property test by
default (``INDEXNET_MAX_EXAMPLES`` overrides). One seed drives the whole session; it is
printed in the header and beside every failing test, and ``pytest --hypothesis-seed=N``
(or ``INDEXNET_HYPOTHESIS_SEED=N``) replays that run. Failing examples are also printed
with a ``@reproduce_failure`` blob.
"""
import os
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Numba compile time dominates the first example of each test; no per-example deadline.
settings.register_profile(
    "indexnet",
    deadline=None,
    max_examples=int(os.environ.get("INDEXNET_MAX_EXAMPLES", "40")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=False,
    database=None,
    print_blob=True,
)
settings.load_profile("indexnet")

#: the session's hypothesis seed (set in pytest_configure)
SEED = {"value": None}


def pytest_configure(config):
    """Choose the session's hypothesis seed unless --hypothesis-seed gave one."""
    from hypothesis import core

    given = config.getoption("hypothesis_seed", default=None)
    seed = given if given is not None else os.environ.get("INDEXNET_HYPOTHESIS_SEED")
    seed = int(seed) if seed is not None else random.SystemRandom().randrange(2**32)
    core.global_force_seed = seed
    SEED["value"] = seed


def pytest_report_header(config):
    return f"hypothesis seed: {SEED['value']} (replay with --hypothesis-seed={SEED['value']})"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        report.sections.append(
            ("hypothesis seed", f"{SEED['value']}: rerun with pytest --hypothesis-seed={SEED['value']} {item.nodeid}")
        )


@pytest.fixture
def rng():
    """A seeded generator, fresh for each test."""
    return np.random.default_rng(20261122)
