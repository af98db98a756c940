"""``indexnet bench``: kernel throughput, epoch and step times, compile and start-up.

Everything runs in one process (start-up and cold compile in child processes), with
numba, OpenBLAS and PyTorch set to the same thread count (2 by default). Contenders of
one row are timed *interleaved*: after warm-up calls, each repeat runs every contender
once in turn, so a burst of load from elsewhere hits all of them alike. A row reports the
median and the range (min-max) of the repeats and the ratio of medians.

Sections
    (a) ``kernels``  every dense and conv kernel: the numpy form against the loops source
        in its builds (``exact``: the oracle, ``fast``: its fastmath twin, ``tiled``: the
        register-blocked fastmath variant of :mod:`indexnet.kernels.tiled`, which is
        what the trainer runs), GFLOP/s, float32 and float64, at MNIST-layer shapes.
    (b) ``epoch``    one epoch of 784-800-10 (ReLU, softmax + cross-entropy, batch 100,
        float32, SGD): the loops engine (``make_train_step(..., "fast")``, i.e.
        :mod:`indexnet.train.fastpath`), the numpy engine (generic path), PyTorch.
    (c) ``tiny``     one step of 1-16-16-1 tanh on seed 003's x², batch 32, float64.
    (d) ``startup``  cold compile (fresh cache directory) of the trainer's kernels, or
        with ``--cold all`` of the whole kernel set (every engine, both dtypes: minutes),
        warm ``indexnet --help``, warm first training step.

The data of (b) is the MNIST training set when ``--data-dir`` holds it, otherwise
synthetic MNIST-shaped data (pixels in [0, 1), about 80 % zeros like MNIST, random
labels); the report says which.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

#: the issue's targets: (section, row, column compared, bound, "max" or "min")
TARGETS_TEXT = {
    "dense_f32": "tiled float32 forward / weight grad / input grad >= 0.6 of numpy at N = 1024",
    "dense_f64": "tiled float64 forward / weight grad / input grad >= 0.7 of numpy at N = 1024",
    "epoch_torch": "epoch time loops / pytorch <= 1.0",
    "epoch_numpy": "epoch time loops / numpy <= 1.1",
    "tiny": "tiny step: pytorch / loops >= 40",
    "conv": "conv 8@3x3 forward + backward: loops (fast build) / numpy time <= 1.0",
    "help": "indexnet --help, warm cache < 1 s",
    "compile": "whole kernel set cold compile < 60 s",
}


@dataclass
class Timing:
    """Seconds of the repeats of one contender."""

    times: list

    @property
    def median(self) -> float:
        return float(np.median(self.times))

    @property
    def lo(self) -> float:
        return float(np.min(self.times))

    @property
    def hi(self) -> float:
        return float(np.max(self.times))


@dataclass
class Report:
    """What one bench run measured; ``to_json`` is the ``--json`` output."""

    config: dict
    kernels: list = field(default_factory=list)
    epoch: dict = field(default_factory=dict)
    tiny: dict = field(default_factory=dict)
    startup: dict = field(default_factory=dict)
    targets: list = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)


# ---------------------------------------------------------------------------- timing
def set_threads(n: int) -> dict:
    """Use ``n`` threads in numba, OpenBLAS (threadpoolctl) and PyTorch; returns what was set."""
    import numba

    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    out = {"numba": numba.get_num_threads()}
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
        out["blas"] = n
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        out["blas"] = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    torch = _torch()
    if torch is not None:
        torch.set_num_threads(n)
        out["torch"] = torch.get_num_threads()
    return out


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def interleaved(contenders: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, Timing]:
    """Time each callable ``repeats`` times, in turn, after ``warmup`` untimed rounds."""
    for _ in range(warmup):
        for fn in contenders.values():
            fn()
    times = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: Timing(ts) for name, ts in times.items()}


def _row(section: str, name: str, timings: dict[str, Timing], flops: float | None = None,
         ref: str = "numpy", **extra) -> dict:
    row = {"section": section, "name": name, **extra, "ref": ref}
    base = timings[ref].median if ref in timings else None
    for k, t in timings.items():
        row[k] = {"median_s": t.median, "min_s": t.lo, "max_s": t.hi}
        if flops:
            row[k]["gflops"] = flops / t.median / 1e9
            row[k]["gflops_range"] = [flops / t.hi / 1e9, flops / t.lo / 1e9]
        if base is not None:
            row[k]["ratio"] = base / t.median  # speed relative to ref (>1: faster than ref)
    return row


# -------------------------------------------------------------------------- (a) kernels
def dense_kernel_rows(dtypes=(np.float32, np.float64), Ns=(100, 1024), repeats: int = 5,
                      S: int = 800, S_prev: int = 784, exact: bool = True) -> list[dict]:
    """Forward, weight gradient, bias gradient and input gradient: every form, GFLOP/s."""
    from indexnet._jit import fast
    from indexnet.kernels import dense, tiled

    rows = []
    rng = np.random.default_rng(0)
    for dt in dtypes:
        for N in Ns:
            W = rng.standard_normal((S, S_prev)).astype(dt)
            A = rng.random((S_prev, N)).astype(dt)
            b = rng.standard_normal(S).astype(dt)
            H = rng.standard_normal((S, N)).astype(dt)
            Z, dW, D, db = np.empty((S, N), dt), np.empty_like(W), np.empty_like(A), np.empty(S, dt)
            fw, iw, ww = tiled.forward_work(W, A), tiled.input_grad_work(W, H), tiled.weight_grad_work(H, A)
            gemm = 2.0 * S * S_prev * N
            specs = {
                "forward": (gemm, (W, A, b, Z), lambda: tiled.forward_tiled(W, A, b, Z, fw)),
                "weight_grad": (gemm, (H, A, dW), lambda: tiled.weight_grad_tiled(H, A, dW, ww)),
                "input_grad": (gemm, (W, H, D), lambda: tiled.input_grad_tiled(W, H, D, iw)),
                "bias_grad": (1.0 * S * N, (H, db), None),
            }
            for name, (flops, args, tiled_fn) in specs.items():
                loops = getattr(dense, f"{name}_loops")
                c = {"numpy": (lambda f=getattr(dense, f"{name}_numpy"): f(*args))}
                if exact:
                    c["exact"] = lambda f=loops: f(*args)
                c["fast"] = lambda f=fast(loops): f(*args)
                if tiled_fn is not None:
                    c["tiled"] = tiled_fn
                rows.append(_row("kernels", f"dense.{name}", interleaved(c, repeats), flops,
                                 dtype=np.dtype(dt).name, shape=f"{S}x{S_prev} N={N}"))
    return rows


def conv_kernel_rows(dtypes=(np.float32, np.float64), N: int = 100, repeats: int = 5,
                     exact: bool = True) -> list[dict]:
    """conv2d forward, kernel, bias and input gradients at 8@3x3 (1 -> 8) and 16@3x3 (8 -> 16) on 28x28."""
    try:
        from indexnet.kernels import conv2d
    except ImportError:  # pragma: no cover - conv kernels not there yet
        return []
    from indexnet._jit import fast

    rows = []
    rng = np.random.default_rng(1)
    for dt in dtypes:
        for C_in, C_out in ((1, 8), (8, 16)):
            A_prev = rng.random((C_in, 28, 28, N)).astype(dt)
            K = (rng.standard_normal((C_out, C_in, 3, 3)) * 0.3).astype(dt)
            b = rng.standard_normal(C_out).astype(dt)
            height_out = conv2d.out_size(28, 3, 1, 0)
            Z = np.empty((C_out, height_out, height_out, N), dt)
            H = rng.standard_normal(Z.shape).astype(dt)
            dK, db, Delta_prev = np.empty_like(K), np.empty(C_out, dt), np.empty_like(A_prev)
            macs = 2.0 * C_out * C_in * 9 * height_out * height_out * N
            specs = {
                "forward": (macs, (K, A_prev, b, 1, 0, Z)),
                "kernel_grad": (macs, (H, A_prev, 1, 0, dK)),
                "bias_grad": (1.0 * H.size, (H, db)),
                "input_grad": (macs, (K, H, 1, 0, Delta_prev)),
            }
            for name, (flops, args) in specs.items():
                loops = getattr(conv2d, f"{name}_loops")
                c = {"numpy": (lambda f=getattr(conv2d, f"{name}_numpy"), a=args: f(*a))}
                if exact:
                    c["exact"] = lambda f=loops, a=args: f(*a)
                c["fast"] = lambda f=fast(loops), a=args: f(*a)
                rows.append(_row("kernels", f"conv2d.{name}", interleaved(c, repeats), flops,
                                 dtype=np.dtype(dt).name, shape=f"{C_out}@3x3 C_in={C_in} 28x28 N={N}"))
    return rows


# ---------------------------------------------------------------------------- (b) epoch
def mnist_like(data_dir: str | None, n: int, dtype=np.float32, seed: int = 0):
    """(X (784, n), Y one-hot (10, n), description): MNIST from ``data_dir`` or synthetic."""
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
    X[X < 0.8] = 0  # about 80 % exact zeros, as in MNIST's background
    X = (X - 0.8) * 5
    X[X < 0] = 0
    labels = rng.integers(0, 10, n)
    Y = np.zeros((10, n), dtype)
    Y[labels, np.arange(n)] = 1
    return X.astype(dtype), Y, f"synthetic MNIST-shaped data ({n} samples, ~80 % zero pixels, random labels)"


def _sgd(lr: float, engine: str = "fast"):
    try:
        from indexnet.nn.optim import SGD

        return SGD(lr=lr, engine=engine)
    except ImportError:  # pragma: no cover - optim.py not there yet

        class _Plain:
            def __init__(self):
                self.t, self.lr, self.weight_decay = 0, lr, 0.0

            def step(self, params, grads, mask):
                for p, g in zip(params, grads):
                    p -= lr * g
                self.t += 1

        return _Plain()


def _indexnet_trainer(sizes, acts, loss, dtype, engine, lr, seed=0):
    from indexnet.nn.network import Network
    from indexnet.train.step import make_train_step

    net = Network.from_sizes(sizes, acts, loss, dtype=dtype, seed=seed)
    return make_train_step(net, _sgd(lr, "numpy" if engine == "numpy" else "fast"), engine)


def _torch_trainer(sizes, hidden, loss, dtype, lr):
    """A PyTorch net of the same sizes, samples first; ``step(X, Y)`` takes (N, S) tensors."""
    torch = _torch()
    dt = torch.float32 if dtype == np.float32 else torch.float64
    layers = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b, dtype=dt))
        if k < len(sizes) - 2:
            layers.append(hidden())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    lossf = torch.nn.CrossEntropyLoss() if loss == "cross_entropy" else torch.nn.MSELoss()

    def step(X, Y):
        opt.zero_grad(set_to_none=True)
        J = lossf(model(X), Y)
        J.backward()
        opt.step()
        return J

    return step


def epoch_rows(n: int = 60000, batch: int = 100, repeats: int = 3, data_dir: str | None = None,
               torch_ok: bool = True) -> dict:
    """One epoch of 784-800-10 per contender, interleaved; median and range of ``repeats``."""
    X, Y, what = mnist_like(data_dir, n)
    n = X.shape[1]
    sizes, acts = [784, 800, 10], ["relu", "softmax"]
    loops = _indexnet_trainer(sizes, acts, "cross_entropy", np.float32, "fast", 0.05)
    numpy_ = _indexnet_trainer(sizes, acts, "cross_entropy", np.float32, "numpy", 0.05)
    starts = range(0, n - batch + 1, batch)

    def run(step):
        def epoch():
            for k in starts:
                step(np.ascontiguousarray(X[:, k:k + batch]), np.ascontiguousarray(Y[:, k:k + batch]))
        return epoch

    c = {"loops": run(loops), "numpy": run(numpy_)}
    torch = _torch() if torch_ok else None
    if torch is not None:
        XT = torch.from_numpy(np.ascontiguousarray(X.T))
        yt = torch.from_numpy(np.argmax(Y, axis=0))
        tstep = _torch_trainer(sizes, torch.nn.ReLU, "cross_entropy", np.float32, 0.05)

        def tepoch():
            for k in starts:
                tstep(XT[k:k + batch], yt[k:k + batch])

        c["pytorch"] = tepoch
    # warm-up: a few steps of each (compiles, allocates buffers), not a whole epoch
    for step in (loops, numpy_):
        step(np.ascontiguousarray(X[:, :batch]), np.ascontiguousarray(Y[:, :batch]))
    t = interleaved(c, repeats, warmup=0)
    return {"data": what, "samples": n, "batch": batch, "steps": len(starts),
            **_row("epoch", "784-800-10 relu/softmax-CE float32", t, ref="loops")}


# ----------------------------------------------------------------------------- (c) tiny
def tiny_rows(steps: int = 2000, repeats: int = 5, torch_ok: bool = True) -> dict:
    """Seconds per step of 1-16-16-1 tanh (MSE) on seed 003's x², batch 32, float64."""
    from indexnet.data.synthetic import load_square

    tr = load_square(n=1000, seed=3).train
    X = np.ascontiguousarray(tr.X[:, :32])
    Y = np.ascontiguousarray(tr.T[:, :32])
    sizes, acts = [1, 16, 16, 1], ["tanh", "tanh", "identity"]
    loops = _indexnet_trainer(sizes, acts, "mse", np.float64, "fast", 0.01)
    numpy_ = _indexnet_trainer(sizes, acts, "mse", np.float64, "numpy", 0.01)

    def many(step, a, b):
        def run():
            for _ in range(steps):
                step(a, b)
        return run

    c = {"loops": many(loops, X, Y), "numpy": many(numpy_, X, Y)}
    torch = _torch() if torch_ok else None
    if torch is not None:
        tstep = _torch_trainer(sizes, torch.nn.Tanh, "mse", np.float64, 0.01)
        c["pytorch"] = many(tstep, torch.from_numpy(X.T.copy()), torch.from_numpy(Y.T.copy()))
    t = interleaved(c, repeats)
    per_step = {k: Timing([s / steps for s in v.times]) for k, v in t.items()}
    return {"steps_per_repeat": steps, "batch": 32, "dtype": "float64",
            **_row("tiny", "1-16-16-1 tanh MSE x^2 step", per_step, ref="loops")}


# -------------------------------------------------------------------------- (d) startup
def _child(code: str, env: dict | None = None, timeout: float = 600) -> tuple[float, str]:
    """Wall seconds of ``python -c code`` in a child process, and its stdout."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **(env or {})},
                         capture_output=True, text=True, timeout=timeout)
    dt = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"bench child failed: {out.stderr[-2000:]}")
    return dt, out.stdout


def startup_rows(repeats: int = 3, cold: str | None = "trainer") -> dict:
    """Cold compile (fresh NUMBA_CACHE_DIR) of the trainer's kernels (``cold="trainer"``)
    or of the whole kernel set (``"all"``), warm ``--help``, warm first training step."""
    res = {}
    if cold:
        flag = "'--trainer'" if cold == "trainer" else ""
        code = f"import indexnet.bench.warm as w; w.main(['--quiet', {flag}])"
        with tempfile.TemporaryDirectory() as d:
            dt, out = _child(code, {"NUMBA_CACHE_DIR": d}, timeout=1800)
            res["cold_set"] = "the trainer's (fast path, float32)" if cold == "trainer" else \
                "the whole kernel set (every engine, float64 and float32)"
            res["cold_compile_s"] = dt
            res["cold_compile_detail"] = out.strip()
            dt2, _ = _child(code, {"NUMBA_CACHE_DIR": d})
            res["cached_load_all_s"] = dt2
    _child("import indexnet.bench.warm as w; w.main(['--quiet'])")  # make sure the real cache is warm
    helps = [_child("import sys; from indexnet.cli import main; sys.argv=['indexnet','--help']; main()")[0]
             for _ in range(repeats)]
    res["help"] = asdict(Timing(helps)) | {"median_s": Timing(helps).median}
    first = "; ".join([
        "import time; t0 = time.perf_counter()",
        "import numpy as np",
        "from indexnet.bench.bench import _indexnet_trainer, mnist_like",
        "X, Y, _ = mnist_like(None, 100)",
        "step = _indexnet_trainer([784, 800, 10], ['relu', 'softmax'], 'cross_entropy', np.float32, 'fast', 0.05)",
        "t1 = time.perf_counter(); step(X, Y); t2 = time.perf_counter()",
        "print(t1 - t0, t2 - t1)",
    ])
    firsts = [_child(first) for _ in range(repeats)]
    res["first_step"] = {
        "process_s": Timing([f[0] for f in firsts]).median,
        "setup_s": Timing([float(f[1].split()[0]) for f in firsts]).median,
        "step_s": Timing([float(f[1].split()[1]) for f in firsts]).median,
    }
    return res


# --------------------------------------------------------------------------- targets
def check_targets(rep: Report) -> list[dict]:
    """Each issue target: measured value, bound, met or missed."""
    out = []

    def add(key, value, bound, ok, what=""):
        out.append({"target": key, "text": TARGETS_TEXT[key] + (f" [{what}]" if what else ""), "value": value,
                    "bound": bound, "met": bool(ok)})

    for dt, key, bound in (("float32", "dense_f32", 0.6), ("float64", "dense_f64", 0.7)):
        for r in rep.kernels:
            if r.get("dtype") == dt and r["name"] in ("dense.forward", "dense.weight_grad", "dense.input_grad") \
                    and r["shape"].endswith("N=1024") and "tiled" in r:
                v = r["tiled"]["ratio"]
                add(key, round(v, 3), bound, v >= bound, r["name"])
    conv = [r for r in rep.kernels if r["name"].startswith("conv2d.") and r.get("dtype") == "float32"
            and r["shape"].startswith("8@")]
    if conv:
        t_fast = sum(r["fast"]["median_s"] for r in conv)
        t_np = sum(r["numpy"]["median_s"] for r in conv)
        add("conv", round(t_fast / t_np, 3), 1.0, t_fast <= t_np)
    if rep.epoch:
        e = rep.epoch
        if "pytorch" in e:
            v = e["loops"]["median_s"] / e["pytorch"]["median_s"]
            add("epoch_torch", round(v, 3), 1.0, v <= 1.0)
        v = e["loops"]["median_s"] / e["numpy"]["median_s"]
        add("epoch_numpy", round(v, 3), 1.1, v <= 1.1)
    if rep.tiny and "pytorch" in rep.tiny:
        v = rep.tiny["pytorch"]["median_s"] / rep.tiny["loops"]["median_s"]
        add("tiny", round(v, 1), 40, v >= 40)
    if rep.startup:
        v = rep.startup["help"]["median_s"]
        add("help", round(v, 3), 1.0, v < 1.0)
        if "cold_compile_s" in rep.startup and rep.startup["cold_set"].startswith("the whole"):
            v = rep.startup["cold_compile_s"]
            add("compile", round(v, 1), 60, v < 60)
    return out


# -------------------------------------------------------------------------------- run
def run(quick: bool = False, sections=("kernels", "epoch", "tiny", "startup"), threads: int = 2,
        data_dir: str | None = None, repeats: int | None = None, epoch_samples: int | None = None,
        sizes: dict | None = None, torch_ok: bool = True, cold: str | None = "trainer", log=print) -> Report:
    """Run the chosen sections and return the report. ``sizes`` overrides shapes (tests)."""
    sizes = sizes or {}
    cfg = {"threads": set_threads(threads), "quick": quick, "python": platform.python_version(),
           "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
           "loadavg_start": _loadavg()}
    import numba

    cfg["numba"] = numba.__version__
    cfg["numpy"] = np.__version__
    torch = _torch() if torch_ok else None
    cfg["torch"] = torch.__version__ if torch is not None else None
    rep = Report(config=cfg)
    reps = repeats or (3 if quick else 7)
    if "kernels" in sections:
        log("(a) kernels ...")
        Ns = sizes.get("Ns", (100, 1024))
        dtypes = sizes.get("dtypes", (np.float32, np.float64))
        rep.kernels += dense_kernel_rows(dtypes=dtypes, Ns=Ns, repeats=reps, exact=not quick,
                                         S=sizes.get("S", 800), S_prev=sizes.get("S_prev", 784))
        if sizes.get("conv", True):
            rep.kernels += conv_kernel_rows(dtypes=dtypes, N=sizes.get("conv_N", 100), repeats=reps, exact=not quick)
    if "epoch" in sections:
        log("(b) epoch ...")
        n = epoch_samples or (6000 if quick else 60000)
        rep.epoch = epoch_rows(n=n, repeats=repeats or (2 if quick else 3), data_dir=data_dir, torch_ok=torch_ok)
    if "tiny" in sections:
        log("(c) tiny net ...")
        rep.tiny = tiny_rows(steps=sizes.get("tiny_steps", 300 if quick else 2000), repeats=reps, torch_ok=torch_ok)
    if "startup" in sections:
        log("(d) start-up ...")
        rep.startup = startup_rows(repeats=2 if quick else 3, cold=None if quick else cold)
    rep.targets = check_targets(rep)
    rep.config["loadavg_end"] = _loadavg()
    return rep


def _loadavg():
    """1-minute load average (other processes compete for the cores), or None."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # pragma: no cover
        return None


def _fmt_t(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} µs"


def format_report(rep: Report) -> str:
    """The human-readable table."""
    lines = [f"indexnet bench  threads={rep.config['threads']}  numba {rep.config['numba']}  "
             f"numpy {rep.config['numpy']}  torch {rep.config['torch']}  quick={rep.config['quick']}  "
             f"load average {rep.config['loadavg_start']} -> {rep.config.get('loadavg_end')} on {rep.config['cpus']} cpus",
             "median [min-max] of interleaved repeats; ratio = speed relative to the reference "
             "column (>1 faster)"]
    if rep.kernels:
        lines.append("\n(a) kernels: GFLOP/s median [range], ratio to numpy  "
                     "(exact = oracle loops build, fast = fastmath twin, tiled = the trainer's build)")
        forms = ("numpy", "exact", "fast", "tiled")
        lines.append(f"{'kernel':20s} {'dtype':8s} {'shape':28s} " + " ".join(f"{f:>26s}" for f in forms))
        for r in rep.kernels:
            cells = []
            for f in forms:
                if f in r:
                    c = r[f]
                    lo, hi = c["gflops_range"]
                    cells.append(f"{c['gflops']:6.1f} [{lo:5.1f}-{hi:5.1f}] x{c['ratio']:4.2f}")
                else:
                    cells.append("-")
            lines.append(f"{r['name']:20s} {r['dtype']:8s} {r['shape']:28s} " + " ".join(f"{c:>26s}" for c in cells))
    for key, title in (("epoch", "(b) one epoch"), ("tiny", "(c) tiny-net step")):
        r = getattr(rep, key)
        if not r:
            continue
        extra = f"  data: {r['data']}, {r['steps']} steps of {r['batch']}" if key == "epoch" else \
            f"  batch {r['batch']}, {r['dtype']}, {r['steps_per_repeat']} steps per repeat"
        lines.append(f"\n{title}: {r['name']}{extra}")
        for f in ("loops", "numpy", "pytorch"):
            if f in r:
                c = r[f]
                lines.append(f"  {f:8s} {_fmt_t(c['median_s']):>10s} [{_fmt_t(c['min_s'])} - {_fmt_t(c['max_s'])}]"
                             f"  loops is x{1 / c['ratio']:.2f} as fast as {f}" if f != "loops" else
                             f"  {f:8s} {_fmt_t(c['median_s']):>10s} [{_fmt_t(c['min_s'])} - {_fmt_t(c['max_s'])}]")
    if rep.startup:
        s = rep.startup
        lines.append("\n(d) start-up")
        if "cold_compile_s" in s:
            lines.append(f"  cold compile of {s['cold_set']}: {s['cold_compile_s']:.1f} s "
                         f"({s['cold_compile_detail']}); same set from the cache: {s['cached_load_all_s']:.1f} s")
        lines.append(f"  indexnet --help (warm): {_fmt_t(s['help']['median_s'])}")
        f = s["first_step"]
        lines.append(f"  first training step, warm cache: process {_fmt_t(f['process_s'])}, "
                     f"imports + net {_fmt_t(f['setup_s'])}, step {_fmt_t(f['step_s'])}")
    if rep.targets:
        lines.append("\ntargets")
        for t in rep.targets:
            lines.append(f"  [{'met' if t['met'] else 'MISSED'}] {t['text']}: {t['value']} (bound {t['bound']})")
    return "\n".join(lines)
