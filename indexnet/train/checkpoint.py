"""Training checkpoints: everything a run needs to continue bit for bit.

A checkpoint is an indexnet ``.npz`` file (:mod:`indexnet.io`: written to a temporary
file, flushed, then renamed over the target, so a crash mid-write leaves the previous
checkpoint valid; no pickle). It holds

- the model's arrays (``layer{l}.{name}``) and its architecture, so
  :func:`indexnet.io.load_model` also reads a checkpoint as a model;
- the optimiser's ``state_dict``: its arrays as ``optim.{key}`` and its numbers
  (step counter ``t``, hyperparameters) in the JSON meta;
- the batch generator's ``bit_generator.state`` (JSON: PCG64's 128-bit integers are
  exact in JSON), the number of epochs and steps done, the history so far, the best
  validation result, and the full training configuration.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from indexnet.io import load_npz, network_from_arrays, network_to_arrays, save_npz_atomic

__all__ = ["Checkpoint", "checkpoint_payload", "save_checkpoint", "load_checkpoint", "OPTIM_PREFIX"]

OPTIM_PREFIX = "optim."
KIND = "checkpoint"


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes
    ----------
    net : Network
        The model with the parameters of the end of epoch ``epoch``.
    optimizer : str
        The optimiser's name (``sgd``, ``momentum``, ``adam``).
    optimizer_state : dict
        Its ``state_dict`` (arrays and numbers), ready for ``load_state_dict``.
    rng_state : dict
        ``numpy.random.Generator.bit_generator.state`` after epoch ``epoch``.
    epoch, step : int
        Epochs and optimisation steps completed.
    history : list of dict
        One record per completed epoch.
    config : dict
        The training configuration.
    best : dict or None
        The best validation result so far (epoch and metrics).
    meta : dict
        The whole JSON document (data scaling and anything else stored).
    """

    net: Any
    optimizer: str
    optimizer_state: dict
    rng_state: dict
    epoch: int
    step: int
    history: list
    config: dict
    best: dict | None = None
    meta: dict = field(default_factory=dict, repr=False)

    def make_rng(self) -> np.random.Generator:
        """A Generator in exactly the stored state."""
        name = self.rng_state.get("bit_generator")
        bitgen_cls = getattr(np.random, str(name), None)
        if bitgen_cls is None or not isinstance(bitgen_cls, type) or not issubclass(bitgen_cls, np.random.BitGenerator):
            raise ValueError(f"checkpoint rng_state: expected a NumPy bit generator name, got {name!r}")
        bitgen = bitgen_cls()
        try:
            bitgen.state = self.rng_state
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"checkpoint rng_state: not a valid {name} state ({type(exc).__name__}: {exc})") from None
        return np.random.Generator(bitgen)


def checkpoint_payload(
    *,
    net,
    optimizer_name: str,
    optimizer_state: dict,
    rng: np.random.Generator,
    epoch: int,
    step: int,
    history: list,
    config: dict,
    best: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """The arrays and JSON meta of a checkpoint (see :func:`save_checkpoint`).

    Parameters
    ----------
    net : Network
    optimizer_name : str
    optimizer_state : dict
        ``Optimizer.state_dict()``: arrays are stored as arrays, numbers in the JSON.
    rng : numpy.random.Generator
        The batch generator; its state is stored, not advanced.
    epoch, step : int
        Epochs and steps completed.
    history : list of dict
    config : dict
        JSON-able training configuration.
    best : dict, optional
    extra : dict, optional
        More JSON meta (e.g. the data scaling).
    """
    arrays, meta = network_to_arrays(net)
    numbers = {}
    for key, value in optimizer_state.items():
        if isinstance(value, np.ndarray):
            arrays[OPTIM_PREFIX + key] = value
        else:
            numbers[key] = value.item() if isinstance(value, np.generic) else value
    meta.update(
        kind=KIND,
        optimizer={"name": optimizer_name, "numbers": numbers},
        rng_state=rng.bit_generator.state,
        epoch=int(epoch),
        step=int(step),
        history=history,
        config=config,
        best=best,
        **(extra or {}),
    )
    return arrays, meta


def save_checkpoint(path, **parts) -> Path:
    """Write a checkpoint atomically; return its path.

    Parameters
    ----------
    path : path-like
        Target file (``.npz``); its folder is created if needed.
    **parts
        The keyword arguments of :func:`checkpoint_payload`.
    """
    return save_npz_atomic(path, *checkpoint_payload(**parts))


def load_checkpoint(path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not an indexnet file, a damaged archive, or a model file rather than a
        checkpoint (it has no optimiser or generator state to resume from).
    """
    arrays, meta = load_npz(path, "checkpoint")
    if meta.get("kind") != KIND:
        raise ValueError(
            f"checkpoint: {path} is an indexnet {meta.get('kind', 'file')!r}, expected a {KIND!r} "
            f"(written at the end of every epoch as checkpoint.npz in the run folder)"
        )
    missing = [k for k in ("optimizer", "rng_state", "epoch", "step", "history", "config") if k not in meta]
    if missing:
        raise ValueError(f"checkpoint: {path} lacks {missing} in its metadata; cannot resume from it")
    for key in ("epoch", "step"):
        if isinstance(meta[key], bool) or not isinstance(meta[key], int) or meta[key] < 0:
            raise ValueError(f"checkpoint: {path}: expected {key} to be an integer >= 0, got {meta[key]!r}")
    opt = meta["optimizer"]
    if not (isinstance(opt, dict) and isinstance(opt.get("name"), str) and isinstance(opt.get("numbers"), dict)):
        raise ValueError(f"checkpoint: {path}: expected optimizer to be an object with a name and numbers, got {opt!r:.80}")
    if not isinstance(meta["rng_state"], dict) or meta["rng_state"].get("bit_generator") != "PCG64":
        got = meta["rng_state"].get("bit_generator") if isinstance(meta["rng_state"], dict) else meta["rng_state"]
        raise ValueError(f"checkpoint: {path}: expected the batch generator's state of a PCG64 generator "
                         f"(numpy.random.default_rng), got one of {got!r:.60}")
    if not isinstance(meta["history"], list) or not isinstance(meta["config"], dict):
        raise ValueError(f"checkpoint: {path}: expected history to be a list and config an object")
    net = network_from_arrays({k: v for k, v in arrays.items() if k.startswith("layer")}, meta)
    state: dict = dict(meta["optimizer"]["numbers"])
    state.update({k[len(OPTIM_PREFIX):]: v for k, v in arrays.items() if k.startswith(OPTIM_PREFIX)})
    return Checkpoint(
        net=net,
        optimizer=meta["optimizer"]["name"],
        optimizer_state=state,
        rng_state=meta["rng_state"],
        epoch=int(meta["epoch"]),
        step=int(meta["step"]),
        history=list(meta["history"]),
        config=dict(meta["config"]),
        best=meta.get("best"),
        meta=meta,
    )

