"""Smoke test of the bench machinery (indexnet/bench/bench.py, indexnet/cli/bench.py) at tiny
sizes with one repeat. It proves the sections run and the report has its fields; it
asserts no timing (speed is measured by ``indexnet bench``, never by unit tests)."""
import json

import numpy as np

from indexnet.bench import bench


def test_interleaved_counts():
    """Each contender runs warmup + repeats times; the timing has that many repeats."""
    calls = {"a": 0, "b": 0}
    t = bench.interleaved({k: (lambda k=k: calls.__setitem__(k, calls[k] + 1)) for k in calls}, repeats=3, warmup=1)
    assert calls == {"a": 4, "b": 4} and len(t["a"].times) == 3 and t["a"].lo <= t["a"].median <= t["a"].hi


def test_small_run_report():
    """Kernels, epoch and tiny sections at tiny sizes give rows, a table, JSON and target checks."""
    rep = bench.run(quick=True, sections=("kernels", "epoch", "tiny"), repeats=1, epoch_samples=200,
                    sizes={"Ns": (4,), "S": 9, "S_prev": 7, "dtypes": (np.float32,), "conv": False,
                           "tiny_steps": 2}, torch_ok=False,
                    log=lambda *_: None)
    names = {r["name"] for r in rep.kernels}
    assert {"dense.forward", "dense.weight_grad", "dense.input_grad", "dense.bias_grad"} <= names
    row = next(r for r in rep.kernels if r["name"] == "dense.forward")
    assert row["numpy"]["ratio"] == 1.0 and row["tiled"]["gflops"] > 0
    assert rep.epoch["steps"] == 2 and "synthetic" in rep.epoch["data"]
    assert rep.tiny["loops"]["median_s"] > 0
    text = bench.format_report(rep)
    assert "(a) kernels" in text and "(b) one epoch" in text and "(c) tiny-net step" in text
    assert json.loads(rep.to_json())["config"]["threads"]["numba"] >= 1
    assert any(t["target"] == "epoch_numpy" for t in rep.targets)


def test_mnist_like_synthetic():
    """Without a data directory the epoch data is synthetic, MNIST-shaped, one-hot."""
    X, Y, what = bench.mnist_like(None, 50)
    assert X.shape == (784, 50) and Y.shape == (10, 50) and "synthetic" in what
    assert np.all(Y.sum(axis=0) == 1) and X.dtype == np.float32
