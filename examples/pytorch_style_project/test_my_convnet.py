"""How a project written the PyTorch way tests its hand-written backprop against indexnet.

The project under test keeps PyTorch's conventions: samples first, images NCHW, kernels
``(C_out, C_in, kh, kw)``, a ``Linear`` head (weight ``(out, in)``) that outputs logits,
and ``CrossEntropyLoss`` with its default mean reduction on integer class labels. The oracle
is told exactly that, under PyTorch's names; nothing is rescaled by hand.
"""
import numpy as np
import pytest

from indexnet.oracle.pytest_plugin import assert_gradients_match

# The model, as a torch.nn.Sequential would list it (module indices 0..4)
LAYERS = [{"type": "conv2d", "kernel_size": 3}, "relu", {"type": "maxpool2d", "kernel_size": 2},
          "flatten", {"type": "linear", "out_features": 3}]


def conv2d(X, K, b):
    """Valid cross-correlation, NCHW: out[n, o, i, j] = Σ_c Σ_p Σ_q K[o, c, p, q] X[n, c, i+p, j+q] + b[o]."""
    N, C, H, W = X.shape
    O, _, kh, kw = K.shape
    patches = np.lib.stride_tricks.sliding_window_view(X, (kh, kw), axis=(2, 3))  # (N, C, H', W', kh, kw)
    return np.einsum("ncijpq,ocpq->noij", patches, K) + b[None, :, None, None], patches


def my_forward_backward(K, b, W, c, X, labels, *, bug=False):
    """The code under test: conv → ReLU → 2×2 max-pool → flatten → Linear (logits) → mean CE."""
    N = len(X)
    Z1, patches = conv2d(X, K, b)
    A1 = np.maximum(Z1, 0)
    n, o, h, w = A1.shape
    windows = A1.reshape(n, o, h // 2, 2, w // 2, 2)
    P = windows.max(axis=(3, 5))
    F = P.reshape(N, -1)
    logits = F @ W.T + c
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(N), labels].mean()
    # backward
    dlogits = np.exp(log_probs)
    dlogits[np.arange(N), labels] -= 1
    dlogits /= N                                        # mean reduction
    dW, dc = dlogits.T @ F, dlogits.sum(axis=0)
    dP = (dlogits @ W).reshape(P.shape)
    is_max = windows == P[:, :, :, None, :, None]       # (no ties with random data)
    dA1 = (is_max * dP[:, :, :, None, :, None]).reshape(A1.shape)
    dZ1 = dA1 if bug else dA1 * (Z1 > 0)                # bug: forgot ReLU'
    dK = np.einsum("noij,ncijpq->ocpq", dZ1, patches)
    db = dZ1.sum(axis=(0, 2, 3))
    kh, kw = K.shape[2:]
    dX = np.zeros_like(X)
    for p in range(kh):
        for q in range(kw):
            dX[:, :, p:p + h, q:q + w] += np.einsum("noij,oc->ncij", dZ1, K[:, :, p, q])
    grads = {"0.weight": dK, "0.bias": db, "4.weight": dW, "4.bias": dc}  # keyed like state_dict()
    return loss, grads, dX, {"conv output": Z1, "logits": logits}


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    K, b = rng.standard_normal((4, 2, 3, 3)) * 0.5, rng.standard_normal(4) * 0.1   # (C_out, C_in, kh, kw)
    W, c = rng.standard_normal((3, 4 * 3 * 3)) * 0.3, rng.standard_normal(3) * 0.1  # Linear: (out, in)
    X = rng.standard_normal((5, 2, 8, 8))                                            # NCHW
    labels = rng.integers(0, 3, 5)                                                   # class indices
    return K, b, W, c, X, labels


def test_my_convnet_matches_indexnet(indexnet_oracle, problem):
    K, b, W, c, X, labels = problem
    loss, grads, dX, inner = my_forward_backward(*problem)
    ref = indexnet_oracle.network(LAYERS, [(K, b), (W, c)], "CrossEntropyLoss", X, labels)  # mean, on logits
    assert loss == pytest.approx(ref.loss, rel=1e-12)
    assert_gradients_match(grads, ref.grads_dict("torch"), rtol=1e-10)
    modules = ref.by_module()                           # per torch module index, as hooks would see it
    assert_gradients_match({"dX": dX, "conv output": inner["conv output"], "logits": inner["logits"]},
                           {"dX": ref.dX, "conv output": modules["0"]["output"], "logits": modules["4"]["output"]},
                           rtol=1e-10)


def test_the_oracle_catches_a_wrong_gradient(indexnet_oracle, problem):
    K, b, W, c, X, labels = problem
    _, grads, _, _ = my_forward_backward(*problem, bug=True)
    ref = indexnet_oracle.network(LAYERS, [(K, b), (W, c)], "CrossEntropyLoss", X, labels)
    with pytest.raises(AssertionError, match=r"0\.weight: \d+ of 72 element\(s\) off; worst at index"):
        assert_gradients_match(grads, ref.grads_dict("torch"), rtol=1e-10)


def test_finite_differences_of_my_loss(indexnet_oracle, problem):
    K, b, W, c, X, labels = problem
    _, grads, dX, _ = my_forward_backward(*problem)
    report = indexnet_oracle.gradcheck(                 # a seeded sample of 200 elements, plus random directions
        lambda K, b, W, c, X: my_forward_backward(K, b, W, c, X, labels)[0],
        {"K": K, "b": b, "W": W, "c": c, "X": X},
        [grads["0.weight"], grads["0.bias"], grads["4.weight"], grads["4.bias"], dX],
    )
    assert report.ok, str(report)
