"""How another project tests its own backprop against indexnet.

The project under test writes its networks the Keras way: samples in rows, weights
``(in, out)``, ``z = x W + b``. Installing indexnet registers a pytest plugin that
provides the fixture ``indexnet_oracle``; ``assert_gradients_match`` names the layer,
parameter and index of any gradient that is off.
"""
import numpy as np
import pytest

from indexnet.oracle.pytest_plugin import assert_gradients_match


def my_backward(W1, b1, W2, b2, X, Y, *, bug=False):
    """The code under test: tanh hidden layer, softmax output, mean cross-entropy."""
    A1 = np.tanh(X @ W1 + b1)
    Z2 = A1 @ W2 + b2
    E = np.exp(Z2 - Z2.max(axis=1, keepdims=True))
    S = E / E.sum(axis=1, keepdims=True)
    N = len(X)
    loss = -np.sum(Y * np.log(S)) / N
    H2 = (S - Y) / N                          # ∂J/∂Z2
    H1 = (H2 @ W2.T) * (1 - A1 ** 2)          # ∂J/∂Z1
    if bug:
        H1 = H2 @ W2.T                        # forgot tanh' — the oracle must catch this
    grads = {"layer 1": {"W": X.T @ H1, "b": H1.sum(axis=0)},
             "layer 2": {"W": A1.T @ H2, "b": H2.sum(axis=0)}}
    return loss, grads, H1 @ W1.T             # loss, parameter gradients, ∂J/∂X


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    W1, b1 = rng.standard_normal((4, 5)), rng.standard_normal(5)    # (in, out)
    W2, b2 = rng.standard_normal((5, 3)), rng.standard_normal(3)
    X = rng.standard_normal((8, 4))                                  # 8 samples, rows
    Y = np.eye(3)[rng.integers(0, 3, 8)]                             # one-hot rows
    return W1, b1, W2, b2, X, Y


def test_gradients_match_indexnet(indexnet_oracle, problem):
    W1, b1, W2, b2, X, Y = problem
    loss, grads, dX = my_backward(*problem)
    ref = indexnet_oracle.dense([W1, W2], [b1, b2], ["tanh", "softmax"], "cross_entropy", X, Y,
                                layout="samples_first", weight_layout="in_out")
    assert loss == pytest.approx(ref.loss, rel=1e-12)
    assert_gradients_match(grads, ref, rtol=1e-10)                   # {"layer 1": {"W", "b"}, ...}
    assert_gradients_match({"dX": dX, "A1": np.tanh(X @ W1 + b1)},
                           {"dX": ref.dX, "A1": ref.A[0]}, rtol=1e-10)  # A[l-1] is layer l; rows


def test_the_oracle_catches_a_wrong_gradient(indexnet_oracle, problem):
    W1, b1, W2, b2, X, Y = problem
    _, grads, _ = my_backward(*problem, bug=True)
    ref = indexnet_oracle.dense([W1, W2], [b1, b2], ["tanh", "softmax"], "cross_entropy", X, Y,
                                weight_layout="in_out")
    with pytest.raises(AssertionError, match=r"layer 1 / W: \d+ of 20 element\(s\) off; worst at index"):
        assert_gradients_match(grads, ref)


def test_finite_differences_of_my_loss(indexnet_oracle, problem):
    *params, X, Y = problem
    _, grads, dX = my_backward(*problem)
    report = indexnet_oracle.gradcheck(
        lambda W1, b1, W2, b2, X: my_backward(W1, b1, W2, b2, X, Y)[0],
        {"W1": params[0], "b1": params[1], "W2": params[2], "b2": params[3], "X": X},
        [grads["layer 1"]["W"], grads["layer 1"]["b"], grads["layer 2"]["W"], grads["layer 2"]["b"], dX],
    )
    assert report.ok, str(report)
