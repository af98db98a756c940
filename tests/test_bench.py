"""The bench's machinery (indexnet/bench/, indexnet/cli/bench.py) at tiny sizes, one repeat.

It proves the statistics, the flop and floor arithmetic, the report and its JSON, that
absent contenders are skipped with a reason, that the contenders train the same network
as indexnet, and the CLI's options. It asserts no timing: speed is measured by
``indexnet bench``, never by unit tests.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from indexnet.bench import blas, contenders, kernels, report, run, startup, timing, workloads
from indexnet.cli import build_parser


# ----------------------------------------------------------------------------- timing
def test_timing_statistics():
    """Median, min, max and the per-step scaling of a set of repeats."""
    t = timing.Timing([3.0, 1.0, 2.0, 10.0])
    assert (t.median, t.lo, t.hi) == (2.5, 1.0, 10.0)
    s = t.scaled(0.5).summary()
    assert s["median_s"] == 1.25 and s["times_s"] == [1.5, 0.5, 1.0, 5.0]


def test_interleaved_runs_in_turn_and_pauses_before_each_call():
    """Warm-up rounds untimed, then one call of each contender per repeat, a pause before each timed call."""
    calls, sleeps = [], []
    c = {k: (lambda k=k: calls.append(k)) for k in "ab"}
    t = timing.interleaved(c, repeats=2, warmup=1, pause=0.25, sleep=sleeps.append)
    assert calls == ["a", "b"] * 3 and sleeps == [0.25] * 4
    assert len(t["a"].times) == 2 and t["a"].lo <= t["a"].median <= t["a"].hi


def test_blocked_runs_each_contender_in_a_row():
    """All repeats of one contender, then the next; one pause before each contender's block."""
    calls, sleeps = [], []
    c = {k: (lambda k=k: calls.append(k)) for k in "ab"}
    t = timing.blocked(c, repeats=3, warmup=1, pause=1.0, sleep=sleeps.append)
    assert calls == ["a"] * 4 + ["b"] * 4 and sleeps == [1.0, 1.0] and len(t["b"].times) == 3


def test_paired_runs_contenders_back_to_back_and_pauses_between_rounds():
    """Warm-up rounds untimed; in each timed round every contender once, in turn; one pause
    before each round, none between the contenders of a round."""
    calls, sleeps = [], []
    c = {k: (lambda k=k: calls.append(k)) for k in "ab"}
    t = timing.paired(c, rounds=3, warmup=1, pause=0.5, sleep=sleeps.append)
    assert calls == ["a", "b"] * 4 and sleeps == [0.5] * 3
    assert len(t["a"].times) == len(t["b"].times) == 3


def test_paired_ratios_divide_round_by_round():
    """A contender always 30x the reference in its own round gives 30 in every round, although
    the speed of both changes 1.5x from round to round (the ratio of medians would not be 30)."""
    t = {"fast": timing.Timing([1.0, 1.5, 1.5, 1.0, 1.5]), "pytorch": timing.Timing([30.0, 45.0, 45.0, 30.0, 45.0])}
    t["pytorch"].times[1] = 40.0  # one round at another speed: 26.7
    r = timing.paired_ratios(t, "fast")
    assert r["fast"]["median"] == 1.0 and r["pytorch"]["median"] == pytest.approx(30.0)
    assert r["pytorch"]["min"] == pytest.approx(40.0 / 1.5) and r["pytorch"]["max"] == pytest.approx(30.0)
    assert r["pytorch"]["ratios"][1] == pytest.approx(40.0 / 1.5)
    with pytest.raises(ValueError, match="rounds"):
        timing.paired_ratios({"fast": timing.Timing([1.0]), "x": timing.Timing([1.0, 2.0])}, "fast")


@pytest.mark.parametrize("kw, word", [({"repeats": 0}, "repeats"), ({"repeats": 1, "pause": -1.0}, "pause"),
                                      ({"repeats": 1, "warmup": -1}, "warmup")])
def test_timing_rejects_bad_counts(kw, word):
    with pytest.raises(ValueError, match=word):
        timing.interleaved({"a": lambda: None}, **kw)


# ------------------------------------------------------------------------ BLAS, floor
def test_mnist_step_flops_count_two_per_multiply_add():
    """One MNIST step: layer 1 forward and weight gradient, layer 2 forward, weight and input
    gradients, each 2·m·n·k flops (written out here independently of step_products)."""
    fma = 800 * 784 * 100 * 2 + 10 * 800 * 100 * 3
    assert blas.step_flops((784, 800, 10), 100) == 2 * fma
    names = [p[0] for p in blas.step_products((784, 800, 10), 100)]
    assert "layer 1 input grad" not in names and "layer 2 input grad" in names


def test_epoch_floor_is_flops_over_rate():
    f = blas.epoch_floor(100.0, steps=550)
    assert f["flops"] == 550 * blas.step_flops()
    assert f["seconds"] == pytest.approx(f["flops"] / 100e9)
    with pytest.raises(ValueError, match="gflops"):
        blas.epoch_floor(0.0)


def test_blas_and_measured_floor_small():
    """The standalone BLAS rate is positive at a tiny shape; the measured floor is steps × one step."""
    b = blas.blas_gflops(np.float64, 8, 8, 8, repeats=1)
    assert b["gflops"] > 0 and b["shape"] == "8x8 @ 8x8" and b["dtype"] == "float64"
    m = blas.measured_floor(steps=7, sizes=(5, 4, 3), batch=2, repeats=1)
    assert m["seconds"] == pytest.approx(7 * m["step_s"])


# --------------------------------------------------------------------------- kernels
def test_bind_passes_arrays_by_parameter_name():
    """Arguments are matched by name (with the aliases X, dX, Delta_prev); unknown names are a reason, not a call."""
    def f(W, X, dX):
        return W, X, dX

    call, why = kernels.bind(f, {"W": 1, "A_prev": 2, "dA_prev": 3})
    assert why is None and call() == (1, 2, 3)

    def g(W, workspace):
        return None

    call, why = kernels.bind(g, {"W": 1})
    assert call is None and "workspace" in why


def test_time_forms_runs_the_real_kernels_on_the_right_arrays():
    """The dense forward timed by the bench writes Z = W A + b (so the operands were bound right)."""
    arrays = kernels.dense_arrays(5, 4, 3, np.float64)
    out = kernels.time_forms("dense", "forward", arrays, 2.0 * 5 * 4 * 3, forms=("numpy", "loops"), repeats=1)
    assert {"numpy", "loops"} <= set(out) and out["loops"]["gflops"] > 0
    np.testing.assert_allclose(arrays["Z"], arrays["W"] @ arrays["A_prev"] + arrays["b"][:, None], rtol=1e-12)


def test_fused_rows_bind_the_trainers_forms():
    """The fused dense row (bias and ReLU in the store) writes A = max(0, W A_prev + b): its
    activation code and workspace were bound by name."""
    from indexnet.kernels import dense

    if not hasattr(dense, "forward_activation_fast"):
        pytest.skip("no fused forward form in this build")
    arrays = kernels.dense_arrays(6, 5, 4, np.float64)
    out = kernels.time_forms("dense", "forward_activation", arrays, 1.0, forms=("fast",), repeats=1)
    assert "fast" in out and "skipped" not in out
    ref = np.maximum(arrays["W"] @ arrays["A_prev"] + arrays["b"][:, None], 0)
    np.testing.assert_allclose(arrays["A"], ref, rtol=1e-12, atol=1e-12)


def test_blas_fraction_arithmetic():
    rows = [{"dtype": "float32", "numpy": {"gflops": 30.0}, "fast": {"gflops": 60.0}}]
    kernels.add_blas_fractions(rows, {"float32": {"gflops": 120.0}})
    assert rows[0]["numpy"]["of_blas"] == 0.25 and rows[0]["fast"]["of_blas"] == 0.5


# ------------------------------------------------------------------------ contenders
def test_absent_contenders_give_a_reason(monkeypatch):
    """torch and jax missing: load returns None and a reason naming the package and how to install it."""
    real = contenders.importlib.import_module

    def fake(name):
        if name in ("torch", "jax"):
            raise ImportError(f"No module named '{name}'")
        return real(name)

    monkeypatch.setattr(contenders.importlib, "import_module", fake)
    for name in ("torch", "jax"):
        mod, why = contenders.load(name)
        assert mod is None and "not installed" in why and name in why
    assert "--no-jax" in contenders.load("jax", wanted=False)[1]
    with pytest.raises(ValueError, match="contender"):
        contenders.load("tensorflow")


def test_run_without_torch_and_jax_skips_them_and_says_why(monkeypatch):
    """A tiny bench run (BLAS, floor, one-step epoch on synthetic data) with both contenders absent."""
    monkeypatch.setattr(contenders, "load", lambda name, wanted=True: (None, f"{name} not installed (test)"))
    rep = run.run(sections=("blas", "epoch"), quick=True, repeats=1, pause=0.0,
                  sizes={"epoch_samples": 100, "blas_n": 16}, log=lambda *_: None)
    assert set(rep.epoch["contenders"]) == {"fast", "numpy", "affine", "elastic"}
    assert rep.epoch["skipped"] == {"pytorch": "torch not installed (test)", "jax": "jax not installed (test)"}
    assert "synthetic" in rep.epoch["data"] and rep.epoch["steps"] == 1
    assert rep.floor["peak"]["steps"] == 1 and rep.config["loadavg_start"] is not None
    text = report.format_report(rep)
    assert "pytorch   skipped: torch not installed (test)" in text and "floor" in text
    assert report.Report.from_json(rep.to_json()) == rep


def test_tiny_step_smoke():
    """The tiny-net row: both indexnet engines (and PyTorch when installed) time a few steps in
    paired rounds; the row keeps each round's ratios, and the tiny target reads their median."""
    torch = contenders.load("torch")[0]
    r = workloads.tiny_step(rounds=2, round_s=1e-9, torch=torch)
    assert {"fast", "numpy"} <= set(r["contenders"]) and r["contenders"]["fast"]["vs_ref"] == 1.0
    assert r["contenders"]["numpy"]["median_s"] > 0
    assert set(r["steps_per_round"]) == set(r["contenders"]) and min(r["steps_per_round"].values()) == 1
    assert set(r["paired"]) == set(r["contenders"]) and len(r["paired"]["numpy"]["ratios"]) == 2
    with pytest.raises(ValueError, match="round_s"):
        workloads.tiny_step(rounds=1, round_s=0.0)
    # per-step thread CPU time of every timed contender, and its line in the report
    assert set(r["thread_cpu_s"]) == set(r["contenders"]) and all(v > 0 for v in r["thread_cpu_s"].values())
    text = report.format_report(report.Report(config={}, tiny=r))
    assert "thread CPU per step (median): fast " in text and "ratio per round, median" in text
    if torch is not None:
        tiny = {t["target"]: t["value"] for t in report.check_targets(report.Report(config={}, tiny=r))}["tiny"]
        assert tiny == round(r["paired"]["pytorch"]["median"], 3)


def test_cnn_epoch_smoke():
    """The small-CNN row runs preset cnn through the trainer's step on MNIST-shaped images (one step)."""
    X, Y, what = workloads.mnist_like(None, 100)
    r = workloads.cnn_epoch(X, Y, what, repeats=1, torch=None, skipped={"pytorch": "left out"})
    assert r["steps"] == 1 and set(r["contenders"]) == {"fast"} and r["skipped"] == {"pytorch": "left out"}


def test_torch_twins_compute_indexnet_loss():
    """The PyTorch contenders start from indexnet's weights: same loss on a batch (dense and the small CNN)."""
    torch = pytest.importorskip("torch")
    from indexnet.nn.network import Network

    rng = np.random.default_rng(0)
    net = Network.from_sizes([6, 5, 3], ["relu", "softmax"], "cross_entropy", dtype=np.float64)
    X = rng.random((6, 4))
    y = np.array([0, 2, 1, 2])
    J = contenders.torch_dense(torch, net, 0.0)(torch.from_numpy(X.T.copy()), torch.from_numpy(y)).item()
    assert J == pytest.approx(net.loss(X, np.ascontiguousarray(np.eye(3)[:, y]), engine="numpy"), rel=1e-10)
    cnn = workloads.cnn_net(np.float64)
    Xi = rng.random((1, 28, 28, 2))
    y = np.array([3, 7])
    J = contenders.torch_cnn(torch, cnn, 0.0)(torch.from_numpy(np.moveaxis(Xi, -1, 0).copy()),
                                              torch.from_numpy(y)).item()
    assert J == pytest.approx(cnn.loss(Xi, np.ascontiguousarray(np.eye(10)[:, y]), engine="numpy"), rel=1e-10)


def test_jax_twin_computes_indexnet_loss_and_scans():
    """The JAX contender: same loss as indexnet; the scanned epoch equals the jitted step in a loop."""
    jax = pytest.importorskip("jax")
    from indexnet.nn.network import Network

    rng = np.random.default_rng(1)
    net = Network.from_sizes([6, 5, 3], ["relu", "softmax"], "cross_entropy", dtype=np.float32)
    Xs = rng.random((2, 6, 4)).astype(np.float32)
    Ys = np.eye(3, dtype=np.float32)[:, rng.integers(0, 3, (2, 4))].transpose(1, 0, 2)
    step, epoch, p0 = contenders.jax_dense(jax, net, 0.1)
    _, J0 = step(p0, Xs[0], Ys[0])
    assert float(J0) == pytest.approx(net.loss(Xs[0], np.ascontiguousarray(Ys[0]), engine="numpy"), rel=1e-5)
    p, _ = step(p0, Xs[0], Ys[0])
    p, _ = step(p, Xs[1], Ys[1])
    q, Js = epoch(p0, Xs, Ys)
    np.testing.assert_allclose(np.asarray(q[0][0]), np.asarray(p[0][0]), rtol=1e-5, atol=1e-6)
    assert Js.shape == (2,)


def test_mnist_like_synthetic():
    """Without a data directory the epoch data is synthetic, MNIST-shaped, one-hot, mostly zeros, and says so."""
    X, Y, what = workloads.mnist_like(None, 50)
    assert X.shape == (784, 50) and Y.shape == (10, 50) and "synthetic" in what and "--data-dir" in what
    assert np.all(Y.sum(axis=0) == 1) and X.dtype == np.float32 and 0.6 < np.mean(X == 0) < 0.95


# ---------------------------------------------------------------------------- report
def _row(times: dict, ref: str) -> dict:
    return workloads.row("r", {k: timing.Timing(v) for k, v in times.items()}, ref, {})


def test_targets_from_medians():
    """Each target is a ratio of medians (or seconds) against its bound; missing figures give no target."""
    rep = report.Report(config={})
    rep.epoch = _row({"fast": [1.0], "jax-scan": [2.0], "pytorch": [1.5]}, "fast")
    rep.tiny = _row({"fast": [1e-5], "pytorch": [3e-4]}, "fast")
    rep.startup = {"train_cold": {"seconds": 20.0}, "help": {"median_s": 0.1}}
    got = {t["target"]: (t["value"], t["met"]) for t in report.check_targets(rep)}
    assert got == {"epoch_jax": (0.5, True), "epoch_torch": (0.667, False), "tiny": (30.0, False),
                   "train_cold": (20.0, False), "help": (0.1, True)}


def test_augment_targets_are_the_distortions_share_of_an_epoch():
    """Issue 16: --augment affine / elastic alone over an epoch's batches, as a fraction of the fast epoch (<= 0.3)."""
    rep = report.Report(config={})
    rep.epoch = _row({"fast": [2.0], "affine": [0.2], "elastic": [0.8]}, "fast")
    got = {t["target"]: (t["value"], t["met"]) for t in report.check_targets(rep)}
    assert got["augment_affine"] == (0.1, True) and got["augment_elastic"] == (0.4, False)


def test_format_report_prints_every_section():
    rep = report.Report(config={"threads": {"numba": 2}, "loadavg_start": [0.1, 0.2, 0.3]})
    rep.blas = {"float32": {"shape": "4x4 @ 4x4", "gflops": 100.0}}
    rep.floor = {"peak": blas.epoch_floor(100.0), "shapes": {"seconds": 2.0, "gflops": 70.0}}
    rep.kernels = [{"name": "dense.forward", "dtype": "float32", "shape": "s", "skipped": {"loops": "why"},
                    "fast": {"gflops": 50.0, "gflops_range": [40.0, 60.0], "of_blas": 0.5}}]
    rep.epoch = _row({"fast": [1.0], "pytorch": [2.0]}, "fast") | {"data": "d", "steps": 550, "batch": 100}
    rep.startup = {"command": "indexnet train ", "train_cold": {"seconds": 12.0, "test_accuracy": 97.78,
                                                                "cpu_s": 9.5, "load": [0.25, 1.5]},
                   "help": timing.Timing([0.2]).summary()}
    rep.targets = report.check_targets(rep)
    text = report.format_report(rep)
    for piece in ("standalone BLAS", "100.0 GFLOP/s", "0.50", "dense.forward float32 loops: skipped, why",
                  "MNIST epoch", "fast / pytorch = 0.5, pytorch / fast = 2", "floor", "empty NUMBA_CACHE_DIR: 12.00 s",
                  "9.50 s CPU (user + sys), load average 0.25 -> 1.50",
                  "97.78", "[met] MNIST epoch: fast / pytorch: 0.5", "[0.1, 0.2, 0.3]"):
        assert piece in text, piece


def test_json_round_trip_keeps_every_figure():
    rep = report.Report(config={"a": 1}, tiny=_row({"fast": [1.0, 2.0, 3.0]}, "fast"))
    back = report.Report.from_json(rep.to_json())
    assert back == rep and back.tiny["contenders"]["fast"]["times_s"] == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="unknown keys"):
        report.Report.from_json(json.dumps({"config": {}, "speed": 1}))
    with pytest.raises(ValueError, match="JSON object"):
        report.Report.from_json("[1]")


# --------------------------------------------------------------------------- startup
def test_startup_helpers():
    """The accuracy line of `indexnet train` is parsed; a failing child names its command; a child's wall
    and CPU seconds and the load average are kept (a child that only prints its version uses some CPU, and
    no more CPU than a core can give in its wall time plus the interpreter's start)."""
    assert startup.accuracy_in("x\ntest accuracy: 97.78%  (test error 2.22%") == 97.78
    assert startup.accuracy_in("no such line") is None
    with pytest.raises(RuntimeError, match="--no-such-option"):
        startup.run_child(["--no-such-option"], timeout=60)
    child = startup.run_child(["--version"], timeout=60)
    assert child["output"].strip() and 0 < child["cpu_s"] <= 2 * child["wall_s"] + 0.05
    assert len(child["load"]) == 2 and all(x >= 0 for x in child["load"])


# ------------------------------------------------------------------------------- CLI
def _parse(*argv):
    return build_parser("bench").parse_args(["bench", *argv])


def test_cli_options():
    """Defaults, --only startup (issue 14's measurement), --pause, --passive-threads; bad values refused."""
    from indexnet.cli import bench as cli_bench

    assert cli_bench.SECTIONS == run.SECTIONS
    a = _parse()
    assert a.only == list(run.SECTIONS) and a.pause == 2.0 and a.threads == 2 and not a.passive_threads
    a = _parse("--only", "startup", "--pause", "0.5", "--passive-threads", "--no-jax", "--json", "-")
    assert a.only == ["startup"] and a.pause == 0.5 and a.passive_threads and a.no_jax and a.json == "-"
    for bad in (["--pause", "-1"], ["--pause", "nan"], ["--threads", "0"], ["--only", "speed"]):
        with pytest.raises(SystemExit):
            _parse(*bad)


def test_run_rejects_unknown_section():
    with pytest.raises(ValueError, match="--only"):
        run.run(sections=("speed",), log=lambda *_: None)


def test_cli_run_passive_threads_and_json(tmp_path, monkeypatch):
    """`indexnet bench --passive-threads --json PATH` sets the OpenMP wait policy before the bench runs
    and writes the report as JSON that loads back."""
    from indexnet.cli import main

    for key in timing.PASSIVE_ENV:
        monkeypatch.setenv(key, "unset")  # restored after the test
    seen = {}

    def fake_run(**kw):
        seen.update(kw, env={k: os.environ[k] for k in timing.PASSIVE_ENV})
        return report.Report(config={"fake": True})

    monkeypatch.setattr(run, "run", fake_run)
    out = tmp_path / "bench.json"
    assert main(["bench", "--only", "tiny", "tiny", "--passive-threads", "--pause", "0", "--json", str(out)]) == 0
    assert seen["env"] == timing.PASSIVE_ENV and seen["sections"] == ("tiny",) and seen["pause"] == 0.0
    assert report.Report.from_json(out.read_text()).config == {"fake": True}
