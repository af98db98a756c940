"""The pytest plugin: the fixture, assert_gradients_match's messages, and import lightness."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from indexnet import oracle
from indexnet.oracle.pytest_plugin import assert_gradients_match

pytest_plugins = ["pytester"]


def grads(rng):
    return {"layer 1": {"W": rng.standard_normal((3, 2)), "b": rng.standard_normal(3)},
            "layer 2": {"W": rng.standard_normal((1, 3)), "b": rng.standard_normal(1)}}


def copy(tree):
    return {k: {p: a.copy() for p, a in v.items()} for k, v in tree.items()}


def test_equal_gradients_pass_in_every_container(rng):
    """Identical nested dicts, lists with names, tuples, scalars and an OracleResult against
    its own grads_dict() all pass."""
    g = grads(rng)
    assert_gradients_match(g, copy(g))
    assert_gradients_match([g["layer 1"], g["layer 2"]], (g["layer 1"], g["layer 2"]), names=["layer 1", "layer 2"])
    assert_gradients_match({"loss": 1.5}, {"loss": 1.5 + 1e-9}, rtol=1e-8)
    r = oracle.dense([rng.standard_normal((2, 3))], [np.zeros(2)], ["tanh"], "mse", rng.standard_normal((4, 3)),
                     rng.standard_normal((4, 2)))
    assert_gradients_match(r.grads_dict(), r)


def test_failure_message_names_layer_parameter_index_values_and_relative_error(rng):
    """A deliberately wrong gradient fails with a message naming the layer, the parameter,
    the index of the worst element, both values, the relative error and how many elements
    are off."""
    ref = grads(rng)
    mine = copy(ref)
    mine["layer 2"]["W"][0, 1] += 0.25
    mine["layer 2"]["W"][0, 2] *= 1 + 1e-3
    with pytest.raises(AssertionError) as info:
        assert_gradients_match(mine, ref)
    msg = str(info.value)
    assert "1 of 4 array(s) differ, 2 of 13 element(s) off" in msg
    assert "layer 2 / W: 2 of 3 element(s) off; worst at index (0, 1)" in msg
    assert f"mine {float(mine['layer 2']['W'][0, 1])!r}" in msg and f"reference {float(ref['layer 2']['W'][0, 1])!r}" in msg
    rel = 0.25 / abs(ref["layer 2"]["W"][0, 1])
    assert f"rel error {rel:.3g}" in msg
    assert "layer 1" not in msg


def test_shape_and_structure_mismatches_are_named(rng):
    """A transposed weight, a missing and an extra entry are each named; NaN never passes."""
    ref = grads(rng)
    mine = copy(ref)
    mine["layer 1"]["W"] = mine["layer 1"]["W"].T
    del mine["layer 2"]["b"]
    mine["layer 3"] = {"W": np.zeros(1)}
    with pytest.raises(AssertionError) as info:
        assert_gradients_match(mine, ref)
    msg = str(info.value)
    assert "layer 1 / W: shape (2, 3) (mine) differs from (3, 2) (reference) (transposed" in msg
    assert "missing in mine (present in reference): layer 2 / b" in msg
    assert "extra in mine (absent from reference): layer 3 / W" in msg
    with pytest.raises(AssertionError, match=r"\[0\]: 1 of 2 element\(s\) off; worst at index \(1,\): mine nan"):
        assert_gradients_match([np.array([1.0, np.nan])], [np.array([1.0, 2.0])])


def test_tolerances_follow_the_stated_rule():
    """An element passes exactly when |mine - reference| <= atol + rtol·|reference|."""
    assert_gradients_match(np.array([1.0 + 1e-7]), np.array([1.0]), rtol=1.1e-7)
    with pytest.raises(AssertionError):
        assert_gradients_match(np.array([1.0 + 1e-7]), np.array([1.0]), rtol=0.9e-7)
    assert_gradients_match(np.array([1e-12]), np.array([0.0]), atol=1e-12)
    with pytest.raises(AssertionError, match="rel error inf"):
        assert_gradients_match(np.array([1e-12]), np.array([0.0]))
    with pytest.raises(ValueError, match="rtol, atol: expected non-negative"):
        assert_gradients_match(1.0, 1.0, rtol=-1)


def test_helper_is_the_same_from_oracle_and_plugin(rng):
    """`from indexnet.oracle import assert_gradients_match` and the plugin's helper give the
    same verdict and the same message."""
    ref = grads(rng)
    mine = copy(ref)
    mine["layer 1"]["b"][2] = 0.0
    messages = []
    for helper in (assert_gradients_match, oracle.assert_gradients_match):
        with pytest.raises(AssertionError) as info:
            helper(mine, ref)
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def test_plugin_fixture_and_failure_message_in_a_pytest_run(pytester):
    """In a project that merely installs indexnet, the entry-point plugin provides the
    `indexnet_oracle` fixture; a test with a deliberately wrong gradient fails and pytest
    shows which layer, parameter and index are off, while a correct one passes."""
    pytester.makepyfile(textwrap.dedent('''
        import numpy as np
        from indexnet.oracle.pytest_plugin import assert_gradients_match

        W = np.array([[0.5, -1.0], [2.0, 0.25]])
        X = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]])
        Y = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])

        def my_grads(bug):
            Z = X @ W.T
            H = (Z - Y) / len(X) * 2          # mse: (1/N) sum (z - y)^2
            dW = H.T @ X
            if bug:
                dW[1, 0] += 0.125
            return {"layer 1": {"W": dW, "b": H.sum(axis=0)}}

        def test_right(indexnet_oracle):
            ref = indexnet_oracle.dense([W], [np.zeros(2)], ["identity"], "mse", X, Y)
            assert_gradients_match(my_grads(False), ref)

        def test_wrong(indexnet_oracle):
            ref = indexnet_oracle.dense([W], [np.zeros(2)], ["identity"], "mse", X, Y)
            assert_gradients_match(my_grads(True), ref)
    '''))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*gradients do not match (rtol=1e-07, atol=0): 1 of 2 array(s) differ, 1 of 6 element(s) off*",
        "*layer 1 / W: 1 of 4 element(s) off; worst at index (1, 0): mine *, reference *, abs error 0.125, rel error *",
    ])


def test_plugin_module_is_import_light():
    """Importing the plugin (as pytest does at start-up in every project that installs
    indexnet) imports neither NumPy, Numba nor torch."""
    code = ("import sys, indexnet.oracle.pytest_plugin; "
            "print(sorted(m for m in ('numpy', 'numba', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
