"""The exact build is independent of the thread count (DESIGN.md, "Numba facts"):
``prange`` only over output elements and every reduction sequential inside one
iteration, so 1 and 2 Numba threads give bit-identical results.
"""
import numba
import numpy as np
import pytest

from indexnet.kernels import activations, dense, losses

MODULES = {"dense": dense, "activations": activations, "losses": losses}
S, S_PREV, N = 64, 37, 53

pytestmark = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 Numba threads")


@pytest.fixture(scope="module")
def data():
    """One moderately sized input set shared by every kernel (S=64, S_prev=37, N=53)."""
    g = np.random.default_rng(7)
    Z = g.normal(0.0, 3.0, (S, N))
    E = np.exp(Z - Z.max(axis=0))
    return {
        "W": g.standard_normal((S, S_PREV)),
        "A_prev": g.standard_normal((S_PREV, N)),
        "b": g.standard_normal(S),
        "G": g.standard_normal((S, N)),
        "Z": Z,
        "S": E / E.sum(axis=0),
        "sig": 1 / (1 + np.exp(-Z)),
        "Y": np.eye(S)[:, g.integers(0, S, N)],
        "prob": g.uniform(0.0, 1.0, (S, N)),
    }


def calls(d):
    """kernel name -> list of (args, output buffer or None for a scalar value)."""
    sn, dw, prev = (S, N), (S, S_PREV), (S_PREV, N)

    def buf(shape):
        return np.full(shape, np.nan)

    elementwise = [
        ((d["Z"], code, 0.1), buf(sn)) for code in activations.CODES.values()
    ]
    grads = [
        ((d["Z"], d["sig"], code, 0.1), buf(sn)) for code in activations.CODES.values()
    ]
    return {
        "dense.forward": [((d["W"], d["A_prev"], d["b"]), buf(sn))],
        "dense.hadamard": [((d["G"], d["sig"]), buf(sn))],
        "dense.weight_grad": [((d["G"], d["A_prev"]), buf(dw))],
        "dense.bias_grad": [((d["G"],), buf(S))],
        "dense.input_grad": [((d["W"], d["G"]), buf(prev))],
        "activations.activation": elementwise,
        "activations.activation_grad": grads,
        "activations.softmax": [((d["Z"],), buf(sn))],
        "activations.softmax_jvp": [((d["S"], d["G"]), buf(sn))],
        "losses.squared_error_value": [((d["sig"], d["prob"], 1 / N), None)],
        "losses.squared_error_delta": [((d["sig"], d["prob"], 1 / N), buf(sn))],
        "losses.cross_entropy_value": [((d["Z"], d["Y"]), None)],
        "losses.cross_entropy_delta": [((d["S"], d["Y"]), buf(sn))],
        "losses.cross_entropy_delta_from_z": [((d["Z"], d["Y"], 1 / N), buf(sn))],
        "losses.cross_entropy_output_grad": [((d["S"], d["Y"]), buf(sn))],
        "losses.binary_cross_entropy_output_grad": [((d["sig"], d["prob"]), buf(sn))],
        "losses.binary_cross_entropy_value": [((d["Z"], d["prob"]), None)],
        "losses.binary_cross_entropy_delta": [((d["sig"], d["prob"]), buf(sn))],
        "losses.binary_cross_entropy_delta_from_z": [((d["Z"], d["prob"], 1 / N), buf(sn))],
    }


#: every public ``<formula>_loops`` of the three modules (not via eqmap.kernel_forms, which
#: imports every kernel module, including ones other topics are still writing)
LOOPS = sorted(
    f"{name}.{attr[: -len('_loops')]}"
    for name, module in MODULES.items()
    for attr in vars(module)
    if attr.endswith("_loops") and not attr.startswith("_")
)


def test_every_loops_kernel_is_covered(data):
    """The table below lists every loops kernel of dense, activations and losses."""
    assert sorted(calls(data)) == LOOPS


def run_with_threads(threads, fn, args, out):
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        if out is None:
            return np.array(fn(*args))
        return fn(*args, out.copy())
    finally:
        numba.set_num_threads(previous)


@pytest.mark.parametrize("kernel", LOOPS)
def test_one_and_two_threads_agree_bit_for_bit(kernel, data):
    """The loops form gives the same bits with 1 and with 2 Numba threads."""
    module, formula = kernel.split(".")
    fn = getattr(MODULES[module], f"{formula}_loops")
    for args, out in calls(data)[kernel]:
        one = run_with_threads(1, fn, args, out)
        two = run_with_threads(2, fn, args, out)
        assert np.all(np.isfinite(one))
        assert np.array_equal(one, two)
