"""Compiling a run's kernels in two processes on a first run (empty Numba cache).

Numba compiles on one core: one compile at a time per process (it holds a lock), and
LLVM does not use threads. A cold ``indexnet train`` spends most of its time compiling,
so on a machine with a second core this module shares the work with a child process:

1. :func:`record_calls` runs the warm-up once with every call of a compiled function
   (a Numba dispatcher) from Python intercepted: its argument types are recorded, nothing
   is compiled or executed, and the call returns 0.0. The kernels a run compiles are
   exactly the ones it calls from Python (each compile includes the helpers it calls),
   so no list of kernels is kept by hand.
2. :func:`compile_in_two_processes` compiles the recorded (kernel, types) pairs that are
   not in Numba's on-disk cache: this process from the front of the list, a child
   process (``python -m indexnet._compile``) from the back, each claiming a pair before
   compiling it (a file created exclusively), so each pair compiles once. Both write
   Numba's cache, whose index files are read, changed and rewritten: reads and writes
   of the cache are serialised by one file lock while the child runs.
3. The warm-up then runs for real and loads the child's kernels from the cache.

A helper that kernels of both processes call may compile in both (each compiles what
its kernels need and does not find in the cache); making one process wait for the
other's helper instead was measured (digits: the child waited 0.8 s for the axpy helper)
and did not shorten the whole. Measured for the digits default on 2 cores with no other
process running at the start: the compile phase 5.25 and 5.45 s wall (parent 4.2-4.4 s
of CPU, child 5.3-5.4 s including its 0.3 s start), against 9-11 s in one
process.

Nothing here changes what is compiled or how: a kernel compiled by the child is the
same cache entry the parent would have written. When anything fails (the child cannot
start, a kernel cannot be described to it, a type it does not know), the kernels left
are compiled by the real warm-up as before.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile

#: seconds the parent waits for the child after its own share is compiled (then it ends it)
CHILD_TIMEOUT = 600.0
#: parallel kernels (the long compiles) the list must hold for a child to be started: a
#: serial kernel compiles the serial helpers it calls itself, so a list of serial kernels,
#: such as a tiny network's whole-step kernel and the evaluation kernels it also calls, is
#: mostly one compile that both processes would do (measured, ``indexnet demo square``:
#: 9.9 s in one process, 11.1 s in two)
MIN_PARALLEL = 2


def record_calls(run) -> list:
    """``[(dispatcher, argument types), ...]``: the compiled functions ``run()`` calls from
    Python, each pair once, in the order of the first call. The calls are not executed
    (they return 0.0), so ``run`` must not depend on their results; if it raises, the
    calls recorded until then are returned."""
    from numba.core.registry import CPUDispatcher

    calls, seen = [], set()

    def record(self, *args, **kwargs):
        if not kwargs:
            sig = tuple(self.typeof_pyval(a) for a in args)
            if (id(self), sig) not in seen:
                seen.add((id(self), sig))
                calls.append((self, sig))
        return 0.0

    own = CPUDispatcher.__dict__.get("__call__")
    CPUDispatcher.__call__ = record
    try:
        run()
    except Exception:  # noqa: BLE001 - what was recorded is still used
        pass
    finally:
        if own is None:
            del CPUDispatcher.__call__
        else:
            CPUDispatcher.__call__ = own
    return calls


def is_cached(dispatcher, sig) -> bool:
    """True when ``dispatcher`` has ``sig`` compiled in memory or in Numba's on-disk cache
    (checked in the cache's index, nothing is loaded)."""
    if tuple(sig) in dispatcher.overloads:
        return True
    try:
        cache = dispatcher._cache
        key = cache._index_key(tuple(sig), dispatcher.targetctx.codegen())
        return key in cache._cache_file._load_index()
    except Exception:  # noqa: BLE001 - no usable cache: not cached
        return False


def _cachable(dispatcher) -> bool:
    """True when the dispatcher writes Numba's on-disk cache (else the child's compile would be lost)."""
    from numba.core.caching import Cache

    return isinstance(getattr(dispatcher, "_cache", None), Cache)


# ------------------------------------------------------------ describing a call to the child
def _dispatcher_ref(dispatcher) -> list | None:
    """``[module, name]`` of a module-level dispatcher, ``[module, name, "twin"]`` of the serial
    twin of one (``indexnet._jit.serial_twin``), or None."""
    from indexnet import _jit

    for original, twin in _jit._TWINS.items():
        if twin is dispatcher:
            ref = _dispatcher_ref(original)
            return None if ref is None or len(ref) > 2 else ref + ["twin"]
    module = sys.modules.get(getattr(dispatcher.py_func, "__module__", None) or "")
    if module is None:
        return None
    for name, value in vars(module).items():
        if value is dispatcher:
            return [module.__name__, name]
    return None


def _find_dispatcher(ref: list):
    import importlib

    from indexnet import _jit

    dispatcher = getattr(importlib.import_module(ref[0]), ref[1])
    return _jit.serial_twin(dispatcher) if len(ref) > 2 else dispatcher


def _type_json(t):
    """A JSON description of a Numba argument type (arrays, numbers, booleans, tuples of them), or None."""
    from numba.core import types

    if isinstance(t, types.Array):
        return ["array", str(t.dtype), t.ndim, t.layout, bool(t.mutable), bool(t.aligned)]
    if isinstance(t, (types.Integer, types.Float, types.Boolean)):
        return ["scalar", str(t)]
    if isinstance(t, types.BaseTuple):
        items = [_type_json(e) for e in t]
        return None if any(i is None for i in items) else ["tuple", items]
    return None


def _type_from(j):
    import numba
    import numpy as np
    from numba.core import types

    if j[0] == "array":
        return types.Array(numba.from_dtype(np.dtype(j[1])), j[2], j[3], readonly=not j[4], aligned=j[5])
    if j[0] == "scalar":
        return numba.from_dtype(np.dtype(j[1]))
    return types.BaseTuple.from_types([_type_from(i) for i in j[1]])


def describe(dispatcher, sig) -> dict | None:
    """What the child needs to compile ``dispatcher`` for ``sig`` (JSON), or None when it cannot."""
    ref = _dispatcher_ref(dispatcher)
    if ref is None or not _cachable(dispatcher):
        return None
    args = [_type_json(t) for t in sig]
    if any(a is None for a in args):
        return None
    try:
        if tuple(_type_from(a) for a in args) != tuple(sig):
            return None
    except Exception:  # noqa: BLE001
        return None
    return {"fn": ref, "args": args}


def _parallel(dispatcher) -> bool:
    return bool(getattr(dispatcher, "targetoptions", {}).get("parallel"))


def _spread(todo: list) -> list:
    """The pairs reordered so that the parallel kernels, the longest compiles (each ``prange``
    loop is compiled as a function of its own), stand alternately at the front and at the
    back: the two processes, working from the two ends, start on one each."""
    par = [c for c in todo if _parallel(c[0])]
    ser = [c for c in todo if not _parallel(c[0])]
    return par[0::2] + ser + par[1::2][::-1]


# ------------------------------------------------------------------- claims and the lock
def _claim(folder: str, k: int, who: str) -> bool:
    """Claim pair ``k`` (True) unless the other process has (False)."""
    try:
        fd = os.open(os.path.join(folder, f"{k}.claim"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, who.encode())
    os.close(fd)
    return True


@contextlib.contextmanager
def _serialised_cache(lock_path: str):
    """Numba's cache reads and writes (index and data file) one at a time across the
    processes that use this lock file."""
    import fcntl

    from numba.core import caching

    cls = caching.IndexDataCacheFile
    save, load = cls.save, cls.load
    fd = os.open(lock_path, os.O_CREAT | os.O_RDWR)

    def locked(method):
        def under_lock(self, *args):
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                return method(self, *args)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        return under_lock

    cls.save, cls.load = locked(save), locked(load)
    try:
        yield
    finally:
        cls.save, cls.load = save, load
        os.close(fd)


# ------------------------------------------------------------------------- the two processes
def available() -> bool:
    """True when a second process can compile: at least two cores for this process and
    for Numba (``--threads 1`` or ``NUMBA_NUM_THREADS=1`` keep the compile on one core),
    POSIX file locks, and ``INDEXNET_COMPILE_CHILD`` not set to ``0``."""
    if os.environ.get("INDEXNET_COMPILE_CHILD", "") == "0":
        return False
    try:
        import fcntl  # noqa: F401

        import numba

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return cores >= 2 and numba.get_num_threads() >= 2
    except Exception:  # noqa: BLE001
        return False


def compile_in_two_processes(calls, *, parent: bool = True) -> dict:
    """Compile the pairs of ``calls`` (:func:`record_calls`) that are not cached, this
    process from the front and a child process from the back (see the module docstring).

    Returns ``{"todo": pairs not cached, "parent": pairs compiled here, "child": pairs the
    child claimed}``. With ``parent=False`` this process compiles nothing and waits for the
    child (for tests). Nothing is started when fewer than :data:`MIN_PARALLEL` of the pairs
    to compile are parallel kernels (unless ``parent=False``) or none can be described to a
    child; then the real calls compile them.
    """
    todo = _spread([(d, sig) for d, sig in calls if not is_cached(d, sig)])
    report = {"todo": len(todo), "parent": 0, "child": 0}
    if parent and sum(1 for d, _ in todo if _parallel(d)) < MIN_PARALLEL:
        return report
    jobs = [[k, job] for k, (d, sig) in enumerate(todo) if (job := describe(d, sig)) is not None]
    if not jobs:
        return report
    import indexnet
    import numba

    with tempfile.TemporaryDirectory(prefix="indexnet-compile-") as folder:
        spec = {"folder": folder, "lock": os.path.join(folder, "cache.lock"), "jobs": jobs,
                "indexnet": os.path.abspath(indexnet.__file__), "parent": os.getpid()}
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        if numba.config.CACHE_DIR:
            env["NUMBA_CACHE_DIR"] = numba.config.CACHE_DIR
        env.setdefault("OMP_WAIT_POLICY", "passive")
        with _serialised_cache(spec["lock"]):
            try:
                child = subprocess.Popen([sys.executable, "-m", "indexnet._compile"], stdin=subprocess.PIPE,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            except OSError:
                return report
            try:
                try:
                    child.stdin.write(json.dumps(spec).encode())
                    child.stdin.close()
                except OSError:  # the child ended at once: it claims nothing, this process compiles all
                    pass
                for k, (d, sig) in enumerate(todo):
                    if not parent or not _claim(folder, k, "parent"):
                        break
                    report["parent"] += 1
                    _compile_one(d, sig)
                described = {k for k, _ in jobs}
                for k, (d, sig) in enumerate(todo):  # the pairs the child cannot take
                    if parent and k not in described and _claim(folder, k, "parent"):
                        report["parent"] += 1
                        _compile_one(d, sig)
                if report["parent"] < len(todo):  # else the child has nothing to do (it may still be starting)
                    try:
                        child.wait(CHILD_TIMEOUT)
                    except subprocess.TimeoutExpired:  # ended below; the real calls compile what it left
                        pass
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
            report["child"] = sum(1 for name in os.listdir(folder) if name.endswith(".claim")) - report["parent"]
    return report


def _compile_one(dispatcher, sig) -> None:
    try:
        dispatcher.compile(tuple(sig))
    except Exception:  # noqa: BLE001 - the real call compiles it again and reports the error
        pass


def _child() -> int:
    """The child: compile the described pairs from the back until one is claimed by the parent."""
    spec = json.loads(sys.stdin.read())
    import indexnet

    if os.path.abspath(indexnet.__file__) != spec["indexnet"]:
        return 1  # another copy of the package: its cache entries would not be the parent's
    with _serialised_cache(spec["lock"]):
        for k, job in reversed(spec["jobs"]):
            if os.getppid() != spec["parent"] or not _claim(spec["folder"], k, "child"):
                break  # the parent has ended (so no kernel is left running after it), or took this one
            try:
                dispatcher, sig = _find_dispatcher(job["fn"]), tuple(_type_from(a) for a in job["args"])
            except Exception:  # noqa: BLE001 - the parent compiles it when it calls it
                continue
            _compile_one(dispatcher, sig)
    return 0


if __name__ == "__main__":
    sys.exit(_child())
