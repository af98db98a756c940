"""Optimisers and learning-rate schedules, from ``derivations/optim.md``.

An optimiser updates a list of parameter arrays in place from their gradients::

    opt = make_optimizer("adam", lr=1e-3, weight_decay=1e-4)
    schedule = make_schedule("cosine", lr=1e-3, total_steps=1000)
    for ...:
        opt.step(params, grads, decay_mask, lr=schedule.lr_at(opt.t))

``decay_mask[k]`` says whether parameter ``k`` takes the L2 weight decay (eq. O6):
True for weights and kernels, False for biases. Parameters may have any shape; each is
updated through its flat ``reshape(-1)`` view by one kernel of
:mod:`indexnet.kernels.optim`, chosen by ``engine``:

``loops``    the exact parallel build (default; deterministic, thread-count independent)
``literal``  the serial reading form (small problems only)
``numpy``    the vectorized NumPy form
``fast``     the fastmath build of the loops form, compiled on first use (its serial
             twin when the largest array is small, see :func:`_kernel`)

:meth:`Optimizer.state_dict` returns plain arrays and numbers only (``np.savez`` and
``np.load(allow_pickle=False)`` store them), and :meth:`Optimizer.load_state_dict`
restores them, so a run resumed from a checkpoint continues bit for bit.
"""
from __future__ import annotations

import functools
import inspect
import math
from typing import Callable, Sequence

import numpy as np

from indexnet import _jit
from indexnet._validate import check_array, check_choice, check_positive_int, check_real
from indexnet.kernels import optim as kernels
from indexnet.nn.layers.base import ENGINES

__all__ = [
    "Optimizer", "SGD", "Momentum", "Adam",
    "Schedule", "ConstantLR", "StepLR", "CosineLR",
    "make_optimizer", "make_schedule", "OPTIMIZERS", "SCHEDULES",
]


# ------------------------------------------------------------------------------ checks
@functools.lru_cache(maxsize=None)
def _fast_kernel(rule: str):
    """The fastmath build of ``<rule>_loops``, compiled on first request and kept."""
    return _jit.fast(getattr(kernels, f"{rule}_loops"))


def _kernel(rule: str, engine: str, elements: int = 0) -> Callable:
    """The kernel form of ``rule`` that ``engine`` names. For ``fast``, updates whose largest
    array has ``elements`` × :data:`indexnet._jit.ELEMENT_WORK` below :data:`indexnet._jit.PARALLEL_OP` (the fast step's rule)
    run the serial twin of the loops form (the fast build's flags, no threads): waking
    threads costs more than such an update, and a run compiles one build, not two."""
    if engine == "fast":
        if elements * _jit.ELEMENT_WORK < _jit.PARALLEL_OP:
            return _jit.serial_twin(getattr(kernels, f"{rule}_loops"))
        return _fast_kernel(rule)
    return getattr(kernels, f"{rule}_{engine}")


# ------------------------------------------------------------------------- optimisers

def step_trusted(optimizer, params, grads, decay_mask) -> None:
    """``optimizer.step`` from a training step whose arrays are the network's own and its own
    gradient buffers: ``trusted=True`` for indexnet's optimisers (no per-array checks), a
    plain call for any other object with a ``step(params, grads, decay_mask)``."""
    if isinstance(optimizer, Optimizer):
        optimizer.step(params, grads, decay_mask, trusted=True)
    else:
        optimizer.step(params, grads, decay_mask)


def decay_mask(net) -> list[bool]:
    """Which parameters get L2 weight decay: weights and kernels, not biases (derivations/optim.md)."""
    return [name != "b" for layer in net.layers for name in layer.param_names]


def flat_param_list(net) -> list[np.ndarray]:
    """The network's parameter arrays in a flat list (layer by layer, in ``param_names`` order)."""
    return [a for p in net.params for a in p]


class Optimizer:
    """Common part of the update rules: checks, state, counter, checkpoints.

    Subclasses set ``rule`` (the kernel formula in :mod:`indexnet.kernels.optim`),
    ``state_names`` (the per-parameter state arrays, zero before the first step) and
    ``hyper_names`` (the hyperparameters stored in a checkpoint), and implement
    :meth:`_scalars`, the kernel's arguments between the state arrays and
    ``weight_decay``.

    Attributes
    ----------
    t : int
        Number of steps taken so far (0 before the first step).
    engine : str
        Which kernel form runs the update.
    """

    rule: str = ""
    state_names: tuple[str, ...] = ()
    hyper_names: tuple[str, ...] = ("lr", "weight_decay")

    def __init__(self, lr: float, weight_decay: float = 0.0, engine: str = "loops") -> None:
        self.lr = check_real("lr", lr, lo=0.0, lo_open=True)
        self.weight_decay = check_real("weight_decay", weight_decay, lo=0.0)
        self.engine = check_choice("engine", engine, ENGINES)
        self.t = 0
        self.state: dict[str, list[np.ndarray]] = {name: [] for name in self.state_names}

    def _scalars(self, lr: float) -> tuple:
        """Kernel arguments after the state arrays and before ``weight_decay``."""
        return (lr,)

    def __repr__(self) -> str:
        hyper = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.hyper_names)
        return f"{type(self).__name__}({hyper}, engine={self.engine!r}) at t={self.t}"

    # -------------------------------------------------------------------------- step
    def _check_step(self, params, grads, decay_mask, trusted: bool = False) -> None:
        """Lists of equal length; each grad matches its parameter (unless ``trusted``); state fits."""
        for name, seq in (("params", params), ("grads", grads), ("decay_mask", decay_mask)):
            if not isinstance(seq, (list, tuple)):
                raise TypeError(f"{name}: expected a list, got {type(seq).__name__}")
        if not (len(params) == len(grads) == len(decay_mask)):
            raise ValueError(
                f"params, grads, decay_mask: expected lists of one length, got lengths "
                f"{len(params)}, {len(grads)}, {len(decay_mask)}"
            )
        for k, (p, g, d) in enumerate(zip(params, grads, decay_mask) if not trusted else ()):
            check_array(f"params[{k}]", p, finite=False, min_samples=None)
            check_array(f"grads[{k}]", g, shape=p.shape, dtype=p.dtype, finite=False, min_samples=None)
            if not isinstance(d, (bool, np.bool_)):
                raise TypeError(f"decay_mask[{k}]: expected a bool, got {d!r}")
        for name, arrays in self.state.items():
            if arrays and [a.shape for a in arrays] != [p.shape for p in params]:
                raise ValueError(
                    f"{name}: expected optimiser state shaped like params "
                    f"{[p.shape for p in params]}, got {[a.shape for a in arrays]} "
                    f"(a state_dict of another model?)"
                )
            if arrays and [a.dtype for a in arrays] != [p.dtype for p in params]:
                raise TypeError(
                    f"{name}: expected optimiser state of the params' dtypes "
                    f"{[str(p.dtype) for p in params]}, got {[str(a.dtype) for a in arrays]}"
                )

    def step(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray],
             decay_mask: Sequence[bool], lr: float | None = None, trusted: bool = False) -> None:
        """Apply one update to every parameter array, in place.

        Parameters
        ----------
        params : list of ndarray
            The parameters θ, any shapes, float32 or float64, C-contiguous; overwritten.
        grads : list of ndarray
            ∂J/∂θ, same shapes and dtypes as ``params``.
        decay_mask : list of bool
            True where the parameter takes the L2 weight decay (weights), False where it
            does not (biases), eq. O6.
        lr : float, optional
            The learning rate of this step (e.g. ``schedule.lr_at(opt.t)``), >= 0;
            default the optimiser's ``lr``.
        trusted : bool
            Skip the per-array checks of ``params`` and ``grads`` (dtype, contiguity,
            matching shapes), which cost about 50 µs for four pairs: for a training step
            whose arrays are the network's own and its own gradient buffers, checked when the
            step was made. The lists' lengths and the optimiser state's fit are always checked.

        Raises
        ------
        TypeError, ValueError
            Mismatched lists, shapes or dtypes, non-contiguous arrays, a bad ``lr``.
        """
        self._check_step(params, grads, decay_mask, trusted)
        eta = self.lr if lr is None else check_real("lr", lr, lo=0.0)
        for name, arrays in self.state.items():
            if not arrays:
                arrays.extend(np.zeros_like(p) for p in params)
        kernel = _kernel(self.rule, self.engine, max((p.size for p in params), default=0))
        self.t += 1
        scalars = self._scalars(eta)
        for k, (p, g, d) in enumerate(zip(params, grads, decay_mask)):
            theta = p.reshape(-1)
            state = [self.state[name][k].reshape(-1) for name in self.state_names]
            kernel(theta, g.reshape(-1), *state, *scalars, self.weight_decay if d else 0.0, theta)

    # -------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, np.ndarray | float | int]:
        """Everything needed to resume: step counter, hyperparameters, state arrays.

        Returns
        -------
        dict
            ``"t"`` (int), one float per hyperparameter (``"lr"``, ...), and a copy of
            each state array as ``"<state>.<k>"`` (e.g. ``"m.0"``, ``"v.3"``). Plain
            arrays and numbers only: ``np.savez(path, **d)`` stores it without pickling.
        """
        d: dict = {"t": int(self.t)}
        d.update({name: float(getattr(self, name)) for name in self.hyper_names})
        for name in self.state_names:
            for k, a in enumerate(self.state[name]):
                d[f"{name}.{k}"] = a.copy()
        return d

    def load_state_dict(self, d) -> None:
        """Restore what :meth:`state_dict` returned (or an ``np.load`` of it).

        Hyperparameters are restored too, and checked as the constructor checks them.

        Raises
        ------
        ValueError
            A missing key, an unexpected key, bad values, or state arrays that are not
            numbered 0, 1, ... without gaps.
        """
        keys = set(d.keys())
        for key in ("t", *self.hyper_names):
            if key not in keys:
                raise ValueError(f"state_dict: expected key {key!r} for {type(self).__name__}, got keys {sorted(keys)}")
        state: dict[str, list[np.ndarray]] = {}
        for name in self.state_names:
            found = sorted(key for key in keys if key.startswith(name + "."))
            expected = [f"{name}.{k}" for k in range(len(found))]
            if sorted(expected) != found:
                raise ValueError(f"state_dict: expected state arrays {expected}, got {found}")
            state[name] = [np.array(d[key], copy=True, order="C") for key in expected]
        if len({len(arrays) for arrays in state.values()}) > 1:
            counts = {name: len(arrays) for name, arrays in state.items()}
            raise ValueError(f"state_dict: expected as many arrays of each state, got {counts}")
        unexpected = keys - {"t", *self.hyper_names} - {f"{n}.{k}" for n, a in state.items() for k in range(len(a))}
        if unexpected:
            raise ValueError(
                f"state_dict: unexpected keys {sorted(unexpected)} for {type(self).__name__} "
                f"(a checkpoint of another optimiser?)"
            )
        t = check_positive_int("t", int(np.asarray(d["t"])), minimum=0)
        # a fresh instance checks the stored hyperparameters as the constructor does
        fresh = type(self)(**{n: float(np.asarray(d[n])) for n in self.hyper_names}, engine=self.engine)
        for name in self.hyper_names:
            setattr(self, name, getattr(fresh, name))
        self.t = t
        self.state = state


class SGD(Optimizer):
    """Gradient descent with L2 weight decay, θ ← θ − η (g + λθ) (eq. O8).

    Plain SGD, mini-batch or full-batch gradient descent alike: which it is depends only
    on the gradient passed to :meth:`step` (eqs. O3-O5).

    Parameters
    ----------
    lr : float
        Learning rate η > 0.
    weight_decay : float
        λ >= 0, applied where ``decay_mask`` is True (eq. O6).
    engine : {"loops", "literal", "numpy", "fast"}
    """

    rule = "sgd_step"


class Momentum(Optimizer):
    """Classical momentum, v ← μv − η (g + λθ), θ ← θ + v (eq. O9).

    Parameters
    ----------
    lr : float
        Learning rate η > 0.
    mu : float
        Momentum coefficient μ in [0, 1); ``mu=0`` is :class:`SGD` exactly.
    weight_decay : float
        λ >= 0, applied where ``decay_mask`` is True (eq. O6).
    engine : {"loops", "literal", "numpy", "fast"}
    """

    rule = "momentum_step"
    state_names = ("v",)
    hyper_names = ("lr", "mu", "weight_decay")

    def __init__(self, lr: float, mu: float = 0.9, weight_decay: float = 0.0, engine: str = "loops") -> None:
        super().__init__(lr, weight_decay, engine)
        self.mu = check_real("mu", mu, lo=0.0, hi=1.0, hi_open=True)

    def _scalars(self, lr: float) -> tuple:
        return (lr, self.mu)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with L2 weight decay added to the gradient (eq. O12).

    Parameters
    ----------
    lr : float
        Step size η > 0.
    beta1, beta2 : float
        Decay rates of the first and second moment averages, in [0, 1).
    eps : float
        ε > 0 added to √v̂.
    weight_decay : float
        λ >= 0, applied where ``decay_mask`` is True (eq. O6). Not AdamW.
    engine : {"loops", "literal", "numpy", "fast"}
    """

    rule = "adam_step"
    state_names = ("m", "v")
    hyper_names = ("lr", "beta1", "beta2", "eps", "weight_decay")

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.0, engine: str = "loops") -> None:
        super().__init__(lr, weight_decay, engine)
        self.beta1 = check_real("beta1", beta1, lo=0.0, hi=1.0, hi_open=True)
        self.beta2 = check_real("beta2", beta2, lo=0.0, hi=1.0, hi_open=True)
        self.eps = check_real("eps", eps, lo=0.0, lo_open=True)

    def _scalars(self, lr: float) -> tuple:
        # t has already been advanced: the bias corrections of step t use β^t (eq. O12)
        return (self.t, lr, self.beta1, self.beta2, self.eps)


# -------------------------------------------------------------------------- schedules
class Schedule:
    """A learning rate η_t as a function of the number of steps taken, t = 0, 1, ...

    Parameters
    ----------
    lr : float
        The initial learning rate η > 0 (η_0 = η).
    """

    def __init__(self, lr: float) -> None:
        self.lr = check_real("lr", lr, lo=0.0, lo_open=True)

    def lr_at(self, step: int) -> float:
        """η_t for ``step`` = t >= 0 steps taken."""
        return self._lr_at(check_positive_int("step", step, minimum=0))

    def _lr_at(self, t: int) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class ConstantLR(Schedule):
    """η_t = η (eq. O13)."""

    def _lr_at(self, t: int) -> float:
        return self.lr


class StepLR(Schedule):
    """η_t = η γ^⌊t/s⌋ (eq. O14).

    Parameters
    ----------
    lr : float
        η > 0.
    step_size : int
        s >= 1, the number of steps between decays.
    gamma : float
        γ in (0, 1], the factor applied every ``step_size`` steps.
    """

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(lr)
        self.step_size = check_positive_int("step_size", step_size)
        self.gamma = check_real("gamma", gamma, lo=0.0, hi=1.0, lo_open=True)

    def _lr_at(self, t: int) -> float:
        return self.lr * self.gamma ** (t // self.step_size)


class CosineLR(Schedule):
    """η_t = η_min + ½ (η − η_min)(1 + cos(π min(t, T)/T)) (eq. O15).

    Parameters
    ----------
    lr : float
        η > 0, the rate at t = 0.
    total_steps : int
        T >= 1; η_t = η_min from t = T on.
    lr_min : float
        η_min in [0, η].
    """

    def __init__(self, lr: float, total_steps: int, lr_min: float = 0.0) -> None:
        super().__init__(lr)
        self.total_steps = check_positive_int("total_steps", total_steps)
        self.lr_min = check_real("lr_min", lr_min, lo=0.0, hi=self.lr)

    def _lr_at(self, t: int) -> float:
        T = self.total_steps
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1.0 + math.cos(math.pi * min(t, T) / T))


# ------------------------------------------------------------------------- factories
OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "momentum": Momentum, "adam": Adam}
SCHEDULES: dict[str, type[Schedule]] = {"constant": ConstantLR, "step": StepLR, "cosine": CosineLR}


def _build(kind: str, table: dict, name: str, kw: dict):
    """``table[name](**kw)``, with ValueErrors naming an unknown name or argument."""
    cls = table[check_choice(kind, name, table)]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(kw) - set(accepted))
    if unknown:
        raise ValueError(
            f"{kind} {name!r}: unexpected argument(s) {', '.join(unknown)}; "
            f"expected some of {', '.join(accepted)}"
        )
    missing = [p.name for p in inspect.signature(cls.__init__).parameters.values()
               if p.name != "self" and p.default is inspect.Parameter.empty and p.name not in kw]
    if missing:
        raise ValueError(f"{kind} {name!r}: missing required argument(s) {', '.join(missing)}")
    return cls(**kw)


def make_optimizer(name: str, **kw) -> Optimizer:
    """An optimiser by name: ``"sgd"``, ``"momentum"`` or ``"adam"``.

    Parameters
    ----------
    name : str
        A key of :data:`OPTIMIZERS`.
    **kw
        The class's constructor arguments (``lr``, ``weight_decay``, ``mu``, ...).

    Raises
    ------
    ValueError
        Unknown name, unknown or missing argument, or a bad value.
    """
    return _build("optimizer", OPTIMIZERS, name, kw)


def make_schedule(name: str, **kw) -> Schedule:
    """A learning-rate schedule by name: ``"constant"``, ``"step"`` or ``"cosine"``.

    Parameters
    ----------
    name : str
        A key of :data:`SCHEDULES`.
    **kw
        The class's constructor arguments (``lr``, ``step_size``, ``gamma``,
        ``total_steps``, ``lr_min``).

    Raises
    ------
    ValueError
        Unknown name, unknown or missing argument, or a bad value.
    """
    return _build("schedule", SCHEDULES, name, kw)
