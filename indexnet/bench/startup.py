"""Start-up: what a user waits for before the first result, measured in child processes.

``train cold``  ``indexnet train`` (the embedded digits default, everything as a user
                runs it: data, compile, training, evaluation, checkpoints, plots) with
                ``NUMBA_CACHE_DIR`` pointing to a new empty folder, so every kernel the
                command needs compiles: the wall time of the whole process.
``train warm``  the same command again with that cache now filled (median of repeats).
``--help``      ``indexnet --help`` (median of repeats); it must not import Numba.

Each child is ``python -m indexnet ...`` with the bench's interpreter, writing into a
temporary folder that is removed afterwards. The test accuracy the run printed is kept,
so a faster start-up that changed the result shows. Beside the wall time each train row
keeps the child's CPU time (user + system; the warm row's median) and the 1-minute load
average before and after: on a shared machine wall times are only comparable at equal load.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time

from indexnet.bench.timing import Timing

ACCURACY = re.compile(r"test accuracy:\s*([0-9.]+)\s*%")


def run_child(args: list[str], env: dict | None = None, timeout: float = 900) -> dict:
    """Run ``python -m indexnet *args`` in a child process.

    Returns ``{"wall_s", "cpu_s", "load", "output"}``: wall seconds, the child's CPU seconds
    (user + system, all its threads and the processes it waited for, such as the compile
    process of a cold start, :mod:`indexnet._compile`: on a shared machine the figure that
    load does not inflate much), the 1-minute load average before and after, and its
    stdout + stderr.
    Raises RuntimeError with the end of the child's stderr when it fails.
    """
    import resource

    cmd = [sys.executable, "-m", "indexnet", *args]
    load0 = os.getloadavg()[0]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"bench: `{' '.join(cmd)}` exited with {done.returncode}: {done.stderr[-2000:]}")
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {"wall_s": seconds, "cpu_s": cpu, "load": [load0, os.getloadavg()[0]], "output": done.stdout + done.stderr}


def accuracy_in(output: str) -> float | None:
    """The test accuracy (percent) ``indexnet train`` printed, or None."""
    m = ACCURACY.search(output)
    return float(m.group(1)) if m else None


def startup(repeats: int = 3, cold: bool = True, train: bool = True, train_args: tuple = ()) -> dict:
    """Cold and warm ``indexnet train`` and ``indexnet --help`` wall and CPU times (see the module doc)."""
    res: dict = {"command": "indexnet train " + " ".join(train_args)}
    if train:
        with tempfile.TemporaryDirectory(prefix="indexnet-bench-") as d:
            env = {"NUMBA_CACHE_DIR": os.path.join(d, "numba-cache")}
            os.makedirs(env["NUMBA_CACHE_DIR"])
            if cold:
                c = run_child(["train", "--out", os.path.join(d, "cold"), *train_args], env)
                res["train_cold"] = {"seconds": c["wall_s"], "cpu_s": c["cpu_s"], "load": c["load"],
                                     "test_accuracy": accuracy_in(c["output"])}
            else:  # fill the cache untimed
                run_child(["train", "--out", os.path.join(d, "fill"), *train_args], env)
            warm = [run_child(["train", "--out", os.path.join(d, f"warm{k}"), *train_args], env)
                    for k in range(max(1, repeats - 1))]
            res["train_warm"] = Timing([w["wall_s"] for w in warm]).summary() | {
                "test_accuracy": accuracy_in(warm[-1]["output"]),
                "cpu_s": sorted(w["cpu_s"] for w in warm)[len(warm) // 2],
                "load": [warm[0]["load"][0], warm[-1]["load"][1]]}
    helps = [run_child(["--help"])["wall_s"] for _ in range(repeats)]
    res["help"] = Timing(helps).summary()
    return res
