"""PyTorch interop: the oracle agrees with autograd in float64; state dicts go both ways.

Every test that needs torch starts with ``pytest.importorskip("torch")`` and is skipped
cleanly where torch is not installed.
"""
import numpy as np
import pytest
from hypothesis import given

from indexnet import oracle
from indexnet.oracle import torch as interop_torch
from indexnet.nn.layers.conv import Conv2D
from indexnet.nn.layers.dense import Dense
from indexnet.nn.layers.flatten import Flatten
from indexnet.nn.layers.pooling import AvgPool2D, MaxPool2D
from indexnet.nn.network import Network
from test_oracle import dense_problems

#: PyTorch agrees with the oracle to this relative error, element by element, in float64;
#: the absolute floor only covers gradients that cancel to rounding level (|g| ~ 1e-17)
RTOL, ATOL = 1e-10, 1e-15


def torch_sequential(torch, Ws, bs, acts):
    """The PyTorch model of a dense net: Linear, then its activation module unless identity."""
    nn = torch.nn
    modules = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.01), "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
               "softmax": lambda: nn.Softmax(dim=1), "softplus": lambda: nn.Softplus(threshold=50.0)}
    layers = []
    for W, b, act in zip(Ws, bs, acts):
        lin = nn.Linear(W.shape[1], W.shape[0]).double()
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if act != "identity":
            layers.append(modules[act]())
    return nn.Sequential(*layers)


def test_dense_oracle_matches_torch_autograd():
    """For random dense networks over every activation and loss, the oracle's loss, every
    weight and bias gradient and ∂J/∂X equal PyTorch autograd's in float64 within rtol
    1e-10, each indexnet loss mapped to its exact PyTorch expression (CrossEntropyLoss on
    logits, mean over samples; sum-reduced MSE rescaled by 1/N, ½ or 1/(2N); BCE with
    logits, summed over outputs and averaged over samples)."""
    torch = pytest.importorskip("torch")

    @given(dense_problems())
    def check(problem):
        Ws, bs, acts, loss, X, Y = problem
        ours = oracle.dense(Ws, bs, acts, loss, X, Y)
        theirs = interop_torch.torch_autograd(torch_sequential(torch, Ws, bs, acts), loss, X, Y)
        oracle.assert_gradients_match({"loss": ours.loss, "dX": ours.dX, **ours.grads_dict("torch")},
                                      {"loss": theirs.loss, "dX": theirs.dX, **theirs.grads}, rtol=RTOL, atol=ATOL)

    check()


def conv_model(torch):
    """A float32 Sequential with every supported module kind."""
    nn = torch.nn
    torch.manual_seed(5)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(3, 4, 2, stride=1), nn.Tanh(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(4, 5), nn.LeakyReLU(0.2), nn.Identity(), nn.Linear(5, 3), nn.Softmax(dim=1),
    )


def test_conv_network_matches_torch_autograd():
    """A Sequential of Conv2d, MaxPool2d, AvgPool2d, Flatten, Linear and every activation
    module, given NCHW data, gives the oracle's loss, kernel/weight/bias gradients (keyed
    like its state_dict) and ∂J/∂X equal to autograd's within rtol 1e-10; the model is
    not modified."""
    torch = pytest.importorskip("torch")
    model = conv_model(torch)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    X = torch.randn(4, 2, 8, 8)
    labels = torch.tensor([0, 2, 1, 2])
    result = interop_torch.compare_with_torch(model, "cross_entropy", X, labels, rtol=RTOL, atol=ATOL)
    assert result.max_rel_error < RTOL
    assert set(result.oracle.grads_dict("torch")) == set(model.state_dict())
    assert result.oracle.dX.shape == (4, 2, 8, 8)
    assert all(torch.equal(before[k], v) and v.dtype == torch.float32 for k, v in model.state_dict().items())


@pytest.mark.parametrize("loss, last", [("mse", None), ("half_se", "Tanh"), ("euclidean", "Sigmoid"),
                                        ("binary_cross_entropy", "Sigmoid")])
def test_every_loss_through_a_conv_network_matches_torch(loss, last):
    """Each loss on a conv network's output agrees with its PyTorch expression and autograd."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(1)
    mods = [nn.Conv2d(1, 2, 3), nn.Sigmoid(), nn.Flatten(), nn.Linear(2 * 3 * 3, 3)] + ([getattr(nn, last)()] if last else [])
    X = torch.randn(3, 1, 5, 5)
    Y = torch.rand(3, 3)
    result = interop_torch.compare_with_torch(nn.Sequential(*mods), loss, X, Y, rtol=RTOL, atol=ATOL)
    assert result.max_rel_error < RTOL


def test_loss_correspondence_with_torch_modules():
    """The documented map from indexnet losses to PyTorch holds on one batch: mse is
    MSELoss (mean over all N·S elements) times S, half_se is ½ the summed MSE, euclidean the
    sum over 2N, cross_entropy is CrossEntropyLoss on logits with class labels, and
    binary_cross_entropy is BCEWithLogitsLoss (mean over all elements) times S."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    N, S = 5, 3
    W, b = rng.standard_normal((S, 4)), rng.standard_normal(S)
    X, Yr, labels = rng.standard_normal((N, 4)), rng.random((N, S)), rng.integers(0, S, N)
    z = torch.from_numpy(X @ W.T + b)
    y = torch.from_numpy(Yr)
    nn = torch.nn

    def J(act, loss, Y):
        return oracle.dense([W], [b], [act], loss, X, Y).loss

    assert J("identity", "mse", Yr) == pytest.approx(float(nn.MSELoss()(z, y)) * S, rel=1e-14)
    assert J("identity", "half_se", Yr) == pytest.approx(0.5 * float(nn.MSELoss(reduction="sum")(z, y)), rel=1e-14)
    assert J("identity", "euclidean", Yr) == pytest.approx(float(nn.MSELoss(reduction="sum")(z, y)) / (2 * N), rel=1e-14)
    assert J("softmax", "cross_entropy", labels) == pytest.approx(
        float(nn.CrossEntropyLoss()(z, torch.from_numpy(labels))), rel=1e-14)
    assert J("sigmoid", "binary_cross_entropy", Yr) == pytest.approx(float(nn.BCEWithLogitsLoss()(z, y)) * S, rel=1e-14)


def trained_conv_network(steps=3):
    """A small conv network after a few steps of gradient descent on random data."""
    rng = np.random.default_rng(7)
    net = Network([Conv2D(3, 3, pad=1, activation="relu"), MaxPool2D(2), Conv2D(2, 2, activation="leaky_relu", alpha=0.1),
                   AvgPool2D(2), Flatten(), Dense(4, "sigmoid"), Dense(3, "softmax")], (2, 8, 8), "cross_entropy", seed=3)
    X = rng.standard_normal((2, 8, 8, 6))
    Y = np.ascontiguousarray(np.eye(3)[:, rng.integers(0, 3, 6)])
    for _ in range(steps):
        g = net.gradients(X, Y)
        for p, gl, layer in zip(net.params, g, net.layers):
            for arr, name in zip(p, layer.param_names):
                arr -= 0.1 * gl[name]
    return net, X


def test_state_dict_round_trip_through_torch():
    """A trained indexnet network exports to a state_dict whose keys ("0.weight", ...) are
    those of the equivalent Sequential, which then computes the same outputs; importing the
    model (or the state_dict) back gives the same parameters bit for bit."""
    torch = pytest.importorskip("torch")
    net, X = trained_conv_network()
    sd = interop_torch.to_state_dict(net)
    model = interop_torch.to_torch(net)
    assert list(sd) == list(model.state_dict()) == ["0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias",
                                                   "9.weight", "9.bias"]
    nn = torch.nn
    fresh = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(3, 2, 2), nn.LeakyReLU(0.1),
                          nn.AvgPool2d(2), nn.Flatten(), nn.Linear(2, 4), nn.Sigmoid(), nn.Linear(4, 3),
                          nn.Softmax(dim=1)).double()
    fresh.load_state_dict(sd, strict=True)
    out = fresh(torch.from_numpy(np.ascontiguousarray(np.moveaxis(X, -1, 0)))).detach().numpy()
    np.testing.assert_allclose(out.T, net.predict(X), rtol=1e-12, atol=1e-15)
    back = interop_torch.load_state_dict(net, model.state_dict())
    again = interop_torch.from_torch(model, (2, 8, 8), "cross_entropy")
    for a, b, c in zip(net.flat_params(), back.flat_params(), again.flat_params()):
        assert a == b == c
    assert [layer.spec() for layer in again.layers] == [layer.spec() for layer in net.layers]


def test_state_dict_round_trip_through_npz_without_pickles(tmp_path):
    """The numpy state_dict survives np.savez / np.load(allow_pickle=False) and loads back
    into an identical network; wrong keys and shapes are named. Needs no torch."""
    net, _ = trained_conv_network(steps=1)
    path = tmp_path / "weights.npz"
    np.savez(path, **interop_torch.to_state_dict(net, as_numpy=True))
    with np.load(path, allow_pickle=False) as data:
        loaded = interop_torch.load_state_dict(net, dict(data))
    assert np.array_equal(loaded.flat_params(), net.flat_params())
    sd = interop_torch.to_state_dict(net, as_numpy=True)
    with pytest.raises(KeyError, match=r"missing \['9.bias'\]"):
        interop_torch.load_state_dict(net, {k: v for k, v in sd.items() if k != "9.bias"})
    with pytest.raises(ValueError, match=r"state_dict\['0.weight'\]: expected shape \(3, 2, 3, 3\), got \(1, 2, 3, 3\)"):
        interop_torch.load_state_dict(net, {**sd, "0.weight": sd["0.weight"][:1]})


def test_unsupported_modules_are_named():
    """A module indexnet cannot mirror is refused with its index and type."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    with pytest.raises(ValueError, match=r"model\[1\] \(Dropout\): this module is not supported"):
        interop_torch.describe(nn.Sequential(nn.Linear(2, 2), nn.Dropout()))
    with pytest.raises(ValueError, match=r"model\[0\] \(Conv2d\): groups=2"):
        interop_torch.describe(nn.Sequential(nn.Conv2d(2, 2, 3, groups=2)))
    with pytest.raises(ValueError, match=r"model\[0\] \(MaxPool2d\).*square"):
        interop_torch.oracle_from_torch(nn.Sequential(nn.MaxPool2d((2, 3)), nn.Flatten()), "mse",
                                        torch.randn(1, 1, 4, 6), torch.randn(1, 2))
    with pytest.raises(ValueError, match=r"loss 'cross_entropy' needs a final Softmax module"):
        interop_torch.torch_autograd(nn.Sequential(nn.Linear(2, 2)), "cross_entropy", np.ones((1, 2)), np.eye(2)[:1])


def test_oracle_network_accepts_a_torch_model_directly():
    """oracle.network(model, None, ...) reads a Sequential's modules and parameters and gives
    the same result as its explicit description; passing params as well is refused."""
    torch = pytest.importorskip("torch")
    model = conv_model(torch)
    X, labels = torch.randn(2, 2, 8, 8), np.array([1, 0])
    direct = oracle.network(model, None, "cross_entropy", X, labels)
    layers, params = interop_torch.describe(model)
    oracle.assert_gradients_match(direct.to_dict(), oracle.network(layers, params, "cross_entropy", X, labels).to_dict(),
                                  rtol=0)
    with pytest.raises(ValueError, match="params: expected None when layers is a torch model"):
        oracle.network(model, params, "cross_entropy", X, labels)


def test_by_module_equals_torch_hooks_per_module():
    """result.by_module() gives, for every module of a Sequential (activations that indexnet
    fuses into the layer before split back out), the module's output and the gradient of J
    with respect to it, equal to what PyTorch forward hooks and retained gradients see, plus
    each parameterised module's weight and bias gradients; the per-layer lists follow the
    one indexing scheme (layer l at l-1, X and dX separate)."""
    torch = pytest.importorskip("torch")
    model = conv_model(torch).double()
    X = torch.randn(4, 2, 8, 8, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 2, 1, 2])
    outputs = {}
    for key, mod in model.named_children():
        mod.register_forward_hook(lambda m, i, o, key=key: outputs.__setitem__(key, o))
    z = model[:-1](X)  # CrossEntropyLoss on the logits; the final Softmax module's output computed beside
    model[-1](z)
    for o in outputs.values():
        o.retain_grad()
    torch.nn.functional.cross_entropy(z, labels).backward()
    r = oracle.network(model, None, "cross_entropy", X.detach().numpy(), labels.numpy())
    assert len(r.Z) == len(r.A) == len(r.Delta) == len(r.H) == len(r.grads) == r.n_layers == 7
    assert np.array_equal(r.X, X.detach().numpy()) and r.dX.shape == r.X.shape
    view = r.by_module()
    assert set(view) == {k for k, _ in model.named_children()}
    for key, entry in view.items():
        np.testing.assert_allclose(entry["output"], outputs[key].detach().numpy(), rtol=1e-12, atol=1e-15)
        if key != "11":  # the Softmax module's output is not on autograd's path (the loss takes logits)
            np.testing.assert_allclose(entry["grad_output"], outputs[key].grad.numpy(), rtol=1e-10, atol=1e-15)
        mod = model[int(key)]
        for p in ("weight", "bias"):
            assert (p in entry) == hasattr(mod, p) and (p not in entry or
                                                         np.allclose(entry[p], getattr(mod, p).grad.numpy(), rtol=1e-10, atol=1e-15))
