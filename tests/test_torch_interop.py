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
#: the absolute floor covers elements that cancel: a sum of terms of order one carries
#: rounding of order 1e-16 per term whatever its value (a weight gradient of -5.2e-6 from
#: such terms differed by 2.7e-15, 5e-10 relative, in a CI run). The problems' gradients are
#: of order 1e-2 to 10, so the floor hides no relative error above 1e-11.
RTOL, ATOL = 1e-10, 1e-13


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


# ------------------------------------------------------------------ the big cross-check
#: heads of the random cross-check: loss name, what the model must end in, target kind
CROSS_HEADS = [
    ("mse", "any", "real"), ("half_se", "any", "real"), ("euclidean", "any", "real"), ("MSELoss", "any", "real"),
    ("cross_entropy", "Softmax", "classes"), ("binary_cross_entropy", "Sigmoid", "unit"),
    ("CrossEntropyLoss", "logits", "classes"), ("CrossEntropyLoss", "logits", "soft"),
    ("NLLLoss", "LogSoftmax", "labels"), ("BCELoss", "Sigmoid", "unit"), ("BCEWithLogitsLoss", "logits", "unit"),
    (None, "any", "grad_output"),
]
HIDDEN = ["identity", "relu", "leaky_relu", "sigmoid", "tanh"]


def _activation_module(nn, name, rng):
    return {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
            "leaky_relu": lambda: nn.LeakyReLU(float(rng.uniform(0.01, 0.5)))}[name]()


def _targets(torch, kind, N, S, rng, out_shape):
    """Targets for a head, and how the oracle gets them (the same values)."""
    if kind == "real":
        return torch.from_numpy(rng.standard_normal((N, *out_shape)))
    if kind == "unit":
        return torch.from_numpy(rng.uniform(0, 1, (N, *out_shape)))
    if kind == "labels":
        return torch.from_numpy(rng.integers(0, S, N))
    if kind == "classes":  # labels or one-hot rows, alternately
        labels = rng.integers(0, S, N)
        return torch.from_numpy(labels) if rng.random() < 0.5 else torch.from_numpy(np.eye(S)[labels])
    p = rng.uniform(0, 1, (N, S))  # soft labels: normalised rows, or (sometimes) rows that do not sum to 1
    return torch.from_numpy(p / p.sum(axis=1, keepdims=True) if rng.random() < 0.7 else p)


def _random_case(torch, rng, conv: bool):
    """A random float64 Sequential, its head, data, and the oracle's layouts to try."""
    nn = torch.nn
    loss, end, kind = CROSS_HEADS[rng.integers(len(CROSS_HEADS))]
    mods = []
    if conv:
        C, HW = int(rng.integers(1, 3)), int(rng.integers(5, 8))
        shape = (C, HW, HW)
        for _ in range(int(rng.integers(1, 3))):
            k, s, p = int(rng.integers(1, 4)), int(rng.integers(1, 3)), int(rng.integers(0, 2))
            if (shape[1] + 2 * p - k) // s + 1 < 2:
                k, s, p = 1, 1, 0
            C_out = int(rng.integers(1, 4))
            mods.append(nn.Conv2d(shape[0], C_out, k, stride=s, padding=p))
            shape = (C_out, (shape[1] + 2 * p - k) // s + 1, (shape[2] + 2 * p - k) // s + 1)
            act = HIDDEN[rng.integers(len(HIDDEN))]
            if act != "identity":
                mods.append(_activation_module(nn, act, rng))
            if rng.random() < 0.6 and shape[1] >= 2:
                mods.append((nn.MaxPool2d if rng.random() < 0.5 else nn.AvgPool2d)(2))
                shape = (shape[0], shape[1] // 2, shape[2] // 2)
                if rng.random() < 0.4:  # an activation after pooling: a layer of its own
                    mods.append(_activation_module(nn, HIDDEN[1 + rng.integers(len(HIDDEN) - 1)], rng))
        image_end = end == "any" and kind in ("real", "grad_output") and rng.random() < 0.4
        if image_end:  # the network ends in a feature map: squared loss over C×H×W, or G
            out_shape = shape
        else:
            mods.append(nn.Flatten())
            S = int(rng.integers(1, 4)) if kind not in ("classes", "soft", "labels") else int(rng.integers(2, 4))
            mods.append(nn.Linear(int(np.prod(shape)), S))
            out_shape = (S,)
        in_shape = (C, HW, HW)
    else:
        sizes = [int(rng.integers(1, 6)) for _ in range(int(rng.integers(2, 5)))]
        if kind in ("classes", "soft", "labels"):
            sizes[-1] = max(sizes[-1], 2)
        for l, (i, o) in enumerate(zip(sizes[:-1], sizes[1:])):
            mods.append(nn.Linear(i, o))
            if l < len(sizes) - 2:
                act = HIDDEN[rng.integers(len(HIDDEN))]
                if act != "identity":
                    mods.append(_activation_module(nn, act, rng))
        in_shape, out_shape = (sizes[0],), (sizes[-1],)
    if end == "any" and not (conv and out_shape != (out_shape[0],)):
        pick = rng.integers(5)
        if pick == 1:
            mods.append(nn.Tanh())
        elif pick == 2:
            mods.append(nn.Sigmoid())
        elif pick == 3 and out_shape[0] > 1:
            mods.append(nn.Softmax(dim=1))
    elif end in ("Softmax", "Sigmoid", "LogSoftmax"):
        mods.append(getattr(nn, end)(dim=1) if end != "Sigmoid" else nn.Sigmoid())
    model = nn.Sequential(*mods).double()
    with torch.no_grad():
        for p in model.parameters():  # O(1) pre-activations: well-conditioned values to compare at 1e-10
            fan_in = int(np.prod(p.shape[1:])) if p.ndim > 1 else 4
            p.copy_(torch.from_numpy(rng.standard_normal(tuple(p.shape)) * 1.5 / np.sqrt(fan_in)))
    N = int(rng.integers(1, 5))
    X = torch.from_numpy(rng.standard_normal((N, *in_shape)))
    extra = {}
    if kind == "grad_output":
        extra["grad_output"] = torch.from_numpy(rng.standard_normal((N, *out_shape)))
        Y = None
    else:
        Y = _targets(torch, kind, N, out_shape[0], rng, out_shape)
        extra["reduction"] = [None, "mean", "sum"][rng.integers(3)]
    return model, loss, X, Y, extra


def _to_torch_layout(a, layout, image_layout, flat_image=None):
    """An oracle array in the caller's layouts back to PyTorch's (samples first, NCHW, C·H·W
    flatten order), written with reshapes independent of the oracle's own index orders."""
    a = np.asarray(a)
    if layout == "samples_last":
        a = np.moveaxis(a, -1, 0)
    if image_layout == "channels_last":
        if a.ndim == 4:
            a = a.transpose(0, 3, 1, 2)
        elif flat_image is not None:
            C, H, W = flat_image
            a = a.reshape(a.shape[0], H, W, C).transpose(0, 3, 1, 2).reshape(a.shape[0], -1)
    return a


def _oracle_in_layouts(torch, model, loss, X, Y, extra, rng, conv):
    """The oracle on the same problem given in a random combination of layouts, and a function
    that maps each returned array back to PyTorch's layout."""
    layers, params = interop_torch.describe(model)
    layout = ["samples_first", "samples_last"][rng.integers(2)]
    weight_layout = ["out_in", "in_out"][rng.integers(2)]
    image_layout = ["channels_first", "channels_last"][rng.integers(2)] if conv else "channels_first"
    shapes = {}  # module index -> output shape of one sample (for the flatten order)
    x = X.clone()
    for key, mod in model.named_children():
        x = mod(x)
        shapes[key] = tuple(x.shape[1:])
    flat_image = {}  # module key of a Flatten (and of what follows it elementwise) -> (C, H, W) it flattened
    keys = [k for k, _ in model.named_children()]
    for i, key in enumerate(keys):
        if isinstance(model[i], torch.nn.Flatten) and i:
            flat_image[key] = shapes[keys[i - 1]]
    pairs, prev_flat = [], None
    for i, (key, mod) in enumerate(model.named_children()):
        if isinstance(mod, torch.nn.Flatten):
            prev_flat = flat_image[key]
        if isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d)):
            W = mod.weight.detach().numpy().copy()
            b = mod.bias.detach().numpy().copy()
            if W.ndim == 2 and image_layout == "channels_last" and prev_flat is not None:
                C, H, Wd = prev_flat
                W = W.reshape(W.shape[0], C, H, Wd).transpose(0, 2, 3, 1).reshape(W.shape[0], -1)
            if W.ndim == 2 and weight_layout == "in_out":
                W = W.T
            if W.ndim == 4 and image_layout == "channels_last":
                W = W.transpose(2, 3, 1, 0)
            b = [b, b.reshape(1, -1), b.reshape(-1, 1)][rng.integers(3)]
            pairs.append((W, b))
            prev_flat = None

    def caller(a, layout_is_samples=True):
        a = a.detach().numpy() if hasattr(a, "detach") else np.asarray(a)
        if a.ndim == 4 and image_layout == "channels_last":
            a = a.transpose(0, 2, 3, 1)
        elif a.ndim == 2 and image_layout == "channels_last" and flat_image and a.shape[1] > 1 and \
                list(flat_image.values())[0] and a.shape[1] == int(np.prod(list(flat_image.values())[0])) and \
                keys[-1] in flat_image:
            C, H, W = list(flat_image.values())[0]
            a = a.reshape(a.shape[0], C, H, W).transpose(0, 2, 3, 1).reshape(a.shape[0], -1)
        return np.moveaxis(a, 0, -1) if layout == "samples_last" else a

    Xc = caller(X)
    Yc = None
    if Y is not None:
        Yc = Y.numpy() if Y.ndim == 1 else caller(Y)
    G = None if "grad_output" not in extra else caller(extra["grad_output"])
    r = oracle.network(layers, pairs, loss, Xc, Yc, reduction=extra.get("reduction"), grad_output=G,
                       layout=layout, weight_layout=weight_layout, image_layout=image_layout)

    def back_param(key, name, g):
        i = int(key)
        if name == "bias":
            return g.reshape(-1)
        if g.ndim == 4 and image_layout == "channels_last":
            return g.transpose(3, 2, 0, 1)
        if g.ndim == 2 and weight_layout == "in_out":
            g = g.T
        before = [k for k in keys[:i] if isinstance(model[int(k)], torch.nn.Flatten)]
        following_flatten = before and all(not isinstance(model[j], (torch.nn.Linear, torch.nn.Conv2d))
                                           for j in range(int(before[-1]) + 1, i))
        if g.ndim == 2 and image_layout == "channels_last" and following_flatten:
            C, H, W = flat_image[before[-1]]
            g = g.reshape(g.shape[0], H, W, C).transpose(0, 3, 1, 2).reshape(g.shape[0], -1)
        return g

    def back_module(key, a):
        i = int(key)
        before = [k for k in keys[:i + 1] if isinstance(model[int(k)], torch.nn.Flatten)]
        flat = None
        if before and all(not isinstance(model[j], (torch.nn.Linear, torch.nn.Conv2d))
                          for j in range(int(before[-1]) + 1, i + 1)):
            flat = flat_image[before[-1]]
        return _to_torch_layout(a, layout, image_layout, flat)

    return r, (layout, weight_layout, image_layout), back_param, back_module


def _normwise(mine, ref):
    diff = np.linalg.norm((np.asarray(mine, dtype=float) - np.asarray(ref, dtype=float)).ravel())
    scale = np.linalg.norm(np.asarray(ref, dtype=float).ravel())
    return 0.0 if diff == 0 else diff / scale if scale else np.inf


def test_random_networks_match_torch_autograd_in_every_layout():
    """320 random dense and 120 random conv networks (float64), each with a random head —
    indexnet's seed losses and PyTorch's MSELoss, CrossEntropyLoss on logits (labels, one-hot
    or soft labels), LogSoftmax + NLLLoss, BCELoss, BCEWithLogitsLoss, with reduction None,
    'mean' or 'sum', or an upstream gradient grad_output — and data given to the oracle in a
    random combination of layouts (samples first / last, weights (out, in) / (in, out), NCHW /
    NHWC with HWIO kernels, biases (out,), (1, out) or (out, 1)); conv networks may end in a
    feature map and put activations after pooling. Every returned quantity — the loss, ∂J/∂X,
    every parameter gradient and, per torch module, its output and ∂J/∂output (Z, A, Δ, H) —
    equals PyTorch autograd's within 1e-10 relative (normwise)."""
    torch = pytest.importorskip("torch")
    import numba

    threads = numba.get_num_threads()
    numba.set_num_threads(1)  # tiny shapes: thread wake-ups would dominate (the numbers do not depend on it)
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _cross_check(torch)
    finally:
        numba.set_num_threads(threads)
        torch.set_num_threads(torch_threads)


def _cross_check(torch):
    rng = np.random.default_rng(12)
    worst = {"dense": 0.0, "conv": 0.0}
    counts = {"dense": 0, "conv": 0}
    for case in range(440):
        conv = case >= 320
        model, loss, X, Y, extra = _random_case(torch, rng, conv)
        theirs = interop_torch.torch_autograd(model, loss, X, Y, **extra)
        r, layouts, back_param, back_module = _oracle_in_layouts(torch, model, loss, X, Y, extra, rng, conv)
        errors = {"loss": _normwise(r.loss, theirs.loss),
                  "dX": _normwise(_to_torch_layout(r.dX, layouts[0], layouts[2]), theirs.dX)}
        for k, g in r.grads_dict("torch").items():
            key, name = k.rsplit(".", 1)
            errors[k] = _normwise(back_param(key, name, g), theirs.grads[k])
        view = r.by_module()
        for key, entry in theirs.modules.items():
            for what, value in entry.items():
                errors[f"module {key} {what}"] = _normwise(back_module(key, view[key][what]), value)
        where = max(errors, key=errors.get)
        assert errors[where] <= 1e-10, (f"case {case}: {where} off by {errors[where]:.3g} ({loss}, {extra.get('reduction')}, "
                                        f"{layouts}, {model})")
        kind = "conv" if conv else "dense"
        worst[kind] = max(worst[kind], errors[where])
        counts[kind] += 1
    assert counts == {"dense": 320, "conv": 120}
    print(f"\nworst normwise relative error vs torch: dense {worst['dense']:.2g}, conv {worst['conv']:.2g}")
