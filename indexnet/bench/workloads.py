"""The timed workloads: MNIST epoch, tiny-net step, small-CNN epoch.

indexnet runs through the trainer's public step, :func:`indexnet.train.step.make_train_step`
(engine ``fast``, the trainer's default, and ``numpy`` for the epoch), with
:class:`indexnet.nn.optim.SGD`; nothing here reaches into the trainer's internals. The
contenders (:mod:`indexnet.bench.contenders`) start from the same weights and see the
same batches in the same order.

``mnist``   one epoch of seed 001's 784-800-10 (ReLU, softmax + cross-entropy), float32,
            batch 100, SGD lr 0.05: 550 steps on MNIST's 55 000 training images; beside it,
            the distortions of ``--augment affine`` and ``--augment elastic`` alone over the
            same batches (what they add to an augmented epoch).
``tiny``    one step of seed 000/003's 1-16-16-1 tanh net (MSE) on x², batch 32, float64,
            in paired rounds (the row's ratio is the median of the rounds' ratios).
``cnn``     one epoch of preset ``cnn`` (conv8@3x3/p1 ReLU, max-pool 2, conv16@3x3/p1 ReLU,
            max-pool 2, dense 10 softmax) on MNIST images (1, 28, 28), batch 100, float32.

Batches are cut before timing (contiguous, in each framework's layout), so a row times
training steps, not slicing. Without ``--data-dir`` the data are synthetic, MNIST-shaped
(about 80 % zero pixels, random labels), and the row says so.
"""
from __future__ import annotations

import sys

import numpy as np

from indexnet.bench.contenders import jax_dense, torch_cnn, torch_dense
from indexnet.bench.timing import Timing, interleaved

MNIST_LR = 0.05


def mnist_like(data_dir: str | None, n: int, dtype=np.float32, seed: int = 0, log=None):
    """``(X (784, n), Y one-hot (10, n), description)``: MNIST's training images from ``data_dir``, or synthetic."""
    if data_dir:
        try:
            from indexnet.data.idx import load_mnist

            tr = load_mnist(data_dir, dtype=dtype).train
            m = min(n, tr.X.shape[1])
            return (np.ascontiguousarray(tr.X[:, :m]), np.ascontiguousarray(tr.T[:, :m]),
                    f"MNIST training images from {data_dir} (first {m})")
        except (OSError, ValueError) as err:
            print(f"bench: could not read MNIST from {data_dir} ({err}); using synthetic data", file=sys.stderr)
    rng = np.random.default_rng(seed)
    X = rng.random((784, n), dtype=np.float32)
    X = np.where(X < 0.8, 0.0, (X - 0.8) * 5).astype(dtype)  # about 80 % exact zeros, as MNIST's background
    labels = rng.integers(0, 10, n)
    Y = np.zeros((10, n), dtype)
    Y[labels, np.arange(n)] = 1
    return X, Y, f"synthetic MNIST-shaped data ({n} samples, ~80 % zero pixels, random labels): no --data-dir"


def indexnet_step(net, engine: str, lr: float):
    """The trainer's step for ``net`` on ``engine`` with plain SGD (made as the trainer makes
    it: ``defer_sync``, the epoch ends with ``step.sync()``)."""
    from indexnet.nn.optim import SGD
    from indexnet.train.step import make_train_step

    return make_train_step(net, SGD(lr=lr, engine=engine), engine, defer_sync=True)


def _batches(X, Y, batch: int):
    """``(Xb (steps, *sample_shape, batch), Yb (steps, K, batch))``, each batch contiguous."""
    steps = X.shape[-1] // batch
    n = steps * batch
    Xb = np.ascontiguousarray(np.moveaxis(X[..., :n].reshape(*X.shape[:-1], steps, batch), -2, 0))
    Yb = np.ascontiguousarray(np.moveaxis(Y[:, :n].reshape(Y.shape[0], steps, batch), -2, 0))
    return Xb, Yb


def row(name: str, timings: dict[str, Timing], ref: str, skipped: dict, **extra) -> dict:
    """A result row: every contender's timing summary and ``vs_ref`` (its median ÷ ``ref``'s)."""
    base = timings[ref].median if ref in timings else None
    out = {"name": name, "ref": ref, **extra, "contenders": {}, "skipped": dict(skipped)}
    for k, t in timings.items():
        out["contenders"][k] = t.summary() | ({"vs_ref": t.median / base} if base else {})
    return out


def _epoch_fn(step, Xb, Yb):
    def epoch():
        for k in range(len(Xb)):
            step(Xb[k], Yb[k])
        step.sync()
    return epoch


def _torch_epoch(torch, tstep, Xs, Yb):
    """An epoch of PyTorch steps over batches ``Xs`` (steps, batch, ...) samples first, labels from one-hot ``Yb``."""
    XT = torch.from_numpy(np.ascontiguousarray(Xs))
    yT = torch.from_numpy(np.argmax(Yb, axis=1))
    tstep(XT[0], yT[0])

    def epoch():
        for k in range(len(XT)):
            tstep(XT[k], yT[k])

    return epoch


def _augment_epoch(spec: str, Xb):
    """The distortions ``--augment spec`` applies to every batch of an epoch, without the steps."""
    from indexnet.data.augment import parse_augment

    aug = parse_augment(spec, (1, 28, 28))
    rng = np.random.default_rng(0)
    aug(Xb[0], rng)  # compile or load

    def epoch():
        for k in range(len(Xb)):
            aug(Xb[k], rng)

    return epoch


def mnist_epoch(X, Y, data: str, batch: int = 100, repeats: int = 3, pause: float = 0.0, torch=None, jax=None,
                skipped: dict | None = None, engines=("fast", "numpy"), augment=("affine", "elastic")) -> dict:
    """One epoch of 784-800-10 per contender, interleaved: median and range of ``repeats``.

    ``augment``: ``--augment`` specs timed alone over the same batches (contenders named by the spec).
    """
    from indexnet.nn.network import Network

    skipped = dict(skipped or {})
    sizes, acts = [784, 800, 10], ["relu", "softmax"]
    Xb, Yb = _batches(X, Y, batch)
    c = {}
    for engine in engines:
        net = Network.from_sizes(sizes, acts, "cross_entropy", dtype=np.float32, seed=0)
        step = indexnet_step(net, engine, MNIST_LR)
        step(Xb[0], Yb[0])  # compile or load, allocate buffers
        c[engine] = _epoch_fn(step, Xb, Yb)
    ref_net = Network.from_sizes(sizes, acts, "cross_entropy", dtype=np.float32, seed=0)
    if torch is not None:
        c["pytorch"] = _torch_epoch(torch, torch_dense(torch, ref_net, MNIST_LR), np.swapaxes(Xb, 1, 2), Yb)
    if jax is not None:
        jstep, jepoch, p0 = jax_dense(jax, ref_net, MNIST_LR)
        XJ, YJ = jax.numpy.asarray(Xb), jax.numpy.asarray(Yb)
        jax.block_until_ready(jepoch(p0, XJ, YJ))  # compile the scan
        jax.block_until_ready(jstep(p0, XJ[0], YJ[0]))  # compile the step

        def jscan():
            jax.block_until_ready(jepoch(p0, XJ, YJ))

        def jloop():
            p = p0
            for k in range(XJ.shape[0]):
                p, _ = jstep(p, XJ[k], YJ[k])
            jax.block_until_ready(p)

        c["jax-scan"] = jscan
        c["jax-loop"] = jloop
    for spec in augment:
        c[spec] = _augment_epoch(spec, Xb)
    t = interleaved(c, repeats, warmup=0, pause=pause)
    return row("784-800-10 relu/softmax-CE float32", t, ref=engines[0], skipped=skipped, data=data,
               samples=len(Xb) * batch, batch=batch, steps=len(Xb))


#: seconds each contender runs per round of the tiny-net row (its step count is set from a
#: calibration run so that every contender's turn lasts about this long)
TINY_ROUND_S = 0.02


def tiny_step(rounds: int = 15, round_s: float = TINY_ROUND_S, pause: float = 0.0, torch=None,
              skipped: dict | None = None, engines=("fast", "numpy")) -> dict:
    """Seconds per step of 1-16-16-1 tanh (MSE) on x² (seed 3), batch 32, float64.

    Every contender is timed the same way: a Python loop of calls of its step on one batch
    prepared before timing (indexnet (D, N) arrays, PyTorch (N, D) tensors, no copies in
    the loop). Each step does the same work: forward, the loss, backward, and plain SGD
    (lr 0.01) on all six parameter arrays, and returns the loss without further
    conversion: indexnet's steps return it as a Python float (the fast step converts its
    compiled call's result, the numpy step its ``loss``), PyTorch's returns the 0-d loss
    tensor (no ``.item()``; on the CPU its value is already computed).

    The contenders run in ``rounds`` paired rounds (:func:`indexnet.bench.timing.paired`):
    in each, every contender in turn runs about ``round_s`` seconds of steps (its count,
    ``steps_per_round``, from an untimed calibration run), the pause only between rounds.
    ``paired`` holds each contender's time over the reference's, round by round, and
    their median, the row's ratio (this core's speed changes over seconds; one round's
    contenders see the same speed). ``thread_cpu_s`` holds each contender's median
    per-step CPU time of the calling thread (all run this net in that thread).
    """
    import math
    import time

    from indexnet.bench.timing import paired, paired_ratios
    from indexnet.data.synthetic import load_square
    from indexnet.nn.network import Network

    if not round_s > 0:
        raise ValueError(f"round_s: expected seconds > 0, got {round_s}")
    tr = load_square(n=1000, seed=3).train
    X = np.ascontiguousarray(tr.X[:, :32])
    Y = np.ascontiguousarray(tr.T[:, :32])
    sizes, acts = [1, 16, 16, 1], ["tanh", "tanh", "identity"]
    steps: dict[str, int] = {}
    cpu: dict[str, list] = {}

    def many(name, step, a, b):
        for _ in range(20):  # compiles and warms the step before its speed is measured
            step(a, b)
        t0 = time.perf_counter()
        for _ in range(50):
            step(a, b)
        steps[name] = max(1, math.ceil(round_s * 50 / max(time.perf_counter() - t0, 1e-9)))
        cpu[name] = []

        def run():
            t0 = time.thread_time()
            for _ in range(steps[name]):
                step(a, b)
            cpu[name].append((time.thread_time() - t0) / steps[name])
        return run

    c = {e: many(e, indexnet_step(Network.from_sizes(sizes, acts, "mse", dtype=np.float64), e, 0.01), X, Y)
         for e in engines}
    if torch is not None:
        tstep = torch_dense(torch, Network.from_sizes(sizes, acts, "mse", dtype=np.float64), 0.01)
        c["pytorch"] = many("pytorch", tstep, torch.from_numpy(X.T.copy()), torch.from_numpy(Y.T.copy()))
    t = paired(c, rounds, warmup=1, pause=pause)
    per_step = {k: v.scaled(1.0 / steps[k]) for k, v in t.items()}
    thread_cpu = {k: Timing(v[-rounds:]).median for k, v in cpu.items()}  # the warm-up round left out
    return row("1-16-16-1 tanh MSE x^2 step", per_step, ref=engines[0], skipped=dict(skipped or {}),
               rounds=rounds, round_s=round_s, steps_per_round=steps, batch=32, dtype="float64",
               thread_cpu_s=thread_cpu, paired=paired_ratios(per_step, engines[0]))


def cnn_net(dtype=np.float32, seed: int = 0):
    """Preset ``cnn``'s network on MNIST-sized images (1, 28, 28), 10 classes."""
    from indexnet.nn.network import Network
    from indexnet.nn.spec import build_layers
    from indexnet.train.presets import get_preset

    p = get_preset("cnn")
    layers, input_shape = build_layers(p.layers, 784, (1, 28, 28), 10)
    return Network(layers, input_shape, p.loss, dtype=dtype, seed=seed)


def cnn_epoch(X, Y, data: str, batch: int = 100, repeats: int = 3, pause: float = 0.0, torch=None,
              skipped: dict | None = None, engines=("fast",)) -> dict:
    """One epoch of preset ``cnn`` on MNIST images: indexnet's engines and PyTorch, interleaved."""
    Xi = X.reshape(1, 28, 28, X.shape[1])
    Xb, Yb = _batches(Xi, Y, batch)
    c = {}
    for engine in engines:
        step = indexnet_step(cnn_net(), engine, MNIST_LR)
        step(Xb[0], Yb[0])
        c[engine] = _epoch_fn(step, Xb, Yb)
    if torch is not None:  # images (steps, batch, 1, 28, 28)
        c["pytorch"] = _torch_epoch(torch, torch_cnn(torch, cnn_net(), MNIST_LR), np.moveaxis(Xb, -1, 1), Yb)
    t = interleaved(c, repeats, warmup=0, pause=pause)
    return row("preset cnn on MNIST images float32", t, ref=engines[0], skipped=dict(skipped or {}), data=data,
               samples=len(Xb) * batch, batch=batch, steps=len(Xb))
