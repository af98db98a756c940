"""indexnet._compile: recording the compiled calls of a warm-up, and compiling them in a child process."""
import importlib
import subprocess
import sys

import numba
import numpy as np
import pytest
from numba.core import types

from indexnet import _compile, _jit
from indexnet.kernels import dense


@numba.njit
def _fill(a, k):
    a[:] = k
    return a


def test_recording_lists_each_call_with_its_types_and_runs_nothing():
    a = np.zeros(3)
    calls = _compile.record_calls(lambda: (_fill(a, 2), _fill(a, 3), _fill(a.astype(np.float32), 1.5)))
    assert calls == [(_fill, (types.Array(types.float64, 1, "C"), types.int64)),
                     (_fill, (types.Array(types.float32, 1, "C"), types.float64))]
    assert not _fill.overloads and (a == 0).all()  # not compiled, not run
    assert (_fill(a, 2) == 2).all()  # calls run again afterwards


def test_recording_keeps_the_calls_made_before_an_error():
    def run():
        _fill(np.zeros(2), 1)
        raise ValueError("the warm-up used a result")

    assert [sig for _, sig in _compile.record_calls(run)] == [(types.Array(types.float64, 1, "C"), types.int64)]


@pytest.mark.parametrize("value", [np.zeros((2, 3)), np.zeros((2, 3), np.float32).T, np.zeros((4, 4))[::2],
                                   np.zeros(3, np.int64), 3, 2.5, True, (np.zeros(2), np.zeros((2, 2)))])
def test_argument_types_survive_the_description_for_the_child(value):
    t = numba.typeof(value)
    assert _compile._type_from(_compile._type_json(t)) == t


def test_a_read_only_array_type_is_described_as_read_only():
    a = np.zeros(3)
    a.flags.writeable = False
    t = numba.typeof(a)
    assert not _compile._type_from(_compile._type_json(t)).mutable


def test_kernels_and_serial_twins_are_found_again_by_name():
    twin = _jit.serial_twin(dense.forward_activation_fast)
    assert _compile._dispatcher_ref(twin) == ["indexnet.kernels.dense", "forward_activation_fast", "twin"]
    assert _compile._find_dispatcher(_compile._dispatcher_ref(twin)) is twin
    assert _compile._find_dispatcher(["indexnet.kernels.dense", "weight_grad_fast"]) is dense.weight_grad_fast
    assert _compile.describe(_fill, (types.int64,)) is None  # not cached: the child's compile would be lost
    assert _compile.describe(dense.weight_grad_fast, (types.unicode_type,)) is None  # a type it does not describe


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file locks")
def test_a_child_process_compiles_into_the_cache_and_this_process_loads_it(tmp_path, monkeypatch):
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path))
    monkeypatch.delitem(sys.modules, "_compile_targets", raising=False)
    targets = importlib.import_module("_compile_targets")  # its kernels cache into tmp_path
    x = np.arange(5.0)
    calls = _compile.record_calls(lambda: (targets.scaled(x, 2.0), targets.total(x)))
    assert [d for d, _ in calls] == [targets.scaled, targets.total]
    assert not any(_compile.is_cached(d, sig) for d, sig in calls)
    # two serial kernels: no child (one would mostly compile what the other compiles too)
    assert _compile.compile_in_two_processes(calls) == {"todo": 2, "parent": 0, "child": 0}
    assert not any(_compile.is_cached(d, sig) for d, sig in calls)
    assert _compile.compile_in_two_processes(calls, parent=False) == {"todo": 2, "parent": 0, "child": 2}
    assert all(_compile.is_cached(d, sig) for d, sig in calls) and not targets.total.overloads
    assert targets.total(targets.scaled(x, 2.0)) == 20.0
    assert targets.total.stats.cache_hits and not targets.total.stats.cache_misses  # loaded, not compiled here
    assert _compile.compile_in_two_processes(calls) == {"todo": 0, "parent": 0, "child": 0}  # nothing left


def test_parallel_kernels_stand_alternately_at_the_front_and_the_back():
    class Kernel:
        def __init__(self, parallel):
            self.targetoptions = {"parallel": parallel}

    p1, p2, p3, s1, s2 = Kernel(True), Kernel(True), Kernel(True), Kernel(False), Kernel(False)
    todo = [(s1, "s1"), (p1, "p1"), (s2, "s2"), (p2, "p2"), (p3, "p3")]
    assert [name for _, name in _compile._spread(todo)] == ["p1", "p3", "s1", "s2", "p2"]


def test_asking_whether_the_forward_packs_compiles_nothing():
    """dense.forward_packs, which the trainer asks once per layer and batch size, evaluates the
    forward's rule in plain Python: in a fresh process the compiled rule (dense._axpy_forward)
    has no build after it answers. It used to call the compiled rule, which compiled it in
    every process (about 0.5 s of every run)."""
    code = ("from indexnet.kernels import dense\n"
            "assert dense.forward_packs(800, 100) and not dense.forward_packs(16, 32)\n"
            "print(len(dense._axpy_forward.overloads))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"
