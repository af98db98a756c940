"""A ``torch.nn.Sequential`` read into the oracle's PyTorch-like description.

This module imports nothing of the oracle but :mod:`indexnet.oracle._arrays`, so the
oracle's core can call it and :mod:`indexnet.oracle.torch` can build on both (no import
circle). torch is imported only inside the functions that need it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from indexnet.oracle._arrays import as_float64

_ACTIVATION_MODULES = {"ReLU": "relu", "LeakyReLU": "leaky_relu", "Sigmoid": "sigmoid", "Tanh": "tanh",
                       "Softmax": "softmax", "LogSoftmax": "log_softmax", "Identity": "identity",
                       "Softplus": "softplus"}


def _torch():
    try:
        import torch
    except ImportError as err:  # pragma: no cover - exercised only without torch
        raise ImportError("indexnet.oracle.torch needs PyTorch: pip install torch") from err
    return torch


def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


# ----------------------------------------------------------------- Sequential -> description
def describe(model) -> tuple[list[dict], dict[str, np.ndarray]]:
    """The PyTorch-like description of a ``torch.nn.Sequential`` and its parameters.

    Parameters
    ----------
    model : torch.nn.Sequential
        Of the supported modules (see the module docstring).

    Returns
    -------
    layers : list of dict
        One entry per module, as :func:`indexnet.oracle.network` takes it.
    params : dict
        ``state_dict``-style keys (``"0.weight"``, ``"0.bias"``) -> float64 arrays.

    Raises
    ------
    ValueError
        A module or a module option indexnet does not support, naming the module.
    """
    torch = _torch()
    nn = torch.nn
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model: expected a torch.nn.Sequential, got {type(model).__name__}")
    layers: list[dict] = []
    for key, mod in model.named_children():
        name = type(mod).__name__
        where = f"model[{key}] ({name})"

        def refuse(what: str) -> None:
            raise ValueError(f"{where}: {what} is not supported by indexnet")

        def square(**options) -> None:
            for opt, value in options.items():
                if not isinstance(value, str) and len(set(np.atleast_1d(value).tolist())) > 1:
                    refuse(f"{opt}={value!r} (indexnet needs the same value along H and W, i.e. square)")

        if isinstance(mod, nn.Linear):
            if mod.bias is None:
                refuse("bias=False")
            layers.append({"type": "linear", "in_features": mod.in_features, "out_features": mod.out_features})
        elif isinstance(mod, nn.Conv2d):
            if mod.bias is None:
                refuse("bias=False")
            if mod.groups != 1 or tuple(mod.dilation) != (1, 1) or mod.padding_mode != "zeros":
                refuse(f"groups={mod.groups}, dilation={mod.dilation}, padding_mode={mod.padding_mode!r}")
            if isinstance(mod.padding, str) and mod.padding != "valid":
                refuse(f"padding={mod.padding!r}")
            square(stride=mod.stride, padding=mod.padding)
            layers.append({"type": "conv2d", "in_channels": mod.in_channels, "out_channels": mod.out_channels,
                           "kernel_size": tuple(mod.kernel_size), "stride": tuple(mod.stride),
                           "padding": 0 if mod.padding == "valid" else tuple(mod.padding)})
        elif isinstance(mod, (nn.MaxPool2d, nn.AvgPool2d)):
            if getattr(mod, "ceil_mode", False) or getattr(mod, "dilation", 1) not in (1, (1, 1)):
                refuse("ceil_mode=True or dilation > 1")
            if getattr(mod, "divisor_override", None) is not None:
                refuse("divisor_override")
            square(kernel_size=mod.kernel_size, stride=mod.stride, padding=mod.padding)
            layers.append({"type": "maxpool2d" if isinstance(mod, nn.MaxPool2d) else "avgpool2d",
                           "kernel_size": mod.kernel_size, "stride": mod.stride, "padding": mod.padding})
        elif isinstance(mod, nn.Flatten):
            if mod.start_dim != 1 or mod.end_dim != -1:
                refuse(f"start_dim={mod.start_dim}, end_dim={mod.end_dim}")
            layers.append({"type": "flatten"})
        elif name in _ACTIVATION_MODULES:
            entry = {"type": _ACTIVATION_MODULES[name]}
            if isinstance(mod, nn.LeakyReLU):
                entry["negative_slope"] = mod.negative_slope
            if isinstance(mod, nn.Softplus) and mod.beta != 1:
                refuse(f"Softplus(beta={mod.beta}) (indexnet's softplus has beta 1)")
            if isinstance(mod, (nn.Softmax, nn.LogSoftmax)) and mod.dim not in (1, -1, None):
                refuse(f"{name}(dim={mod.dim}) (the feature axis is dim 1)")
            layers.append(entry)
        else:
            refuse("this module")
        if str(key) != str(len(layers) - 1):
            raise ValueError(f"{where}: expected the modules to be keyed 0, 1, 2, ... (a plain Sequential), got key {key!r}")
    params = {k: as_float64(f"model.state_dict()[{k!r}]", v) for k, v in model.state_dict().items()}
    return layers, params
