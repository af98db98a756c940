"""Start-up: what a user waits for before the first result, measured in child processes.

``train cold``  ``indexnet train`` (the embedded digits default, everything as a user
                runs it: data, compile, training, evaluation, checkpoints, plots) with
                ``NUMBA_CACHE_DIR`` pointing to a new empty folder, so every kernel the
                command needs compiles: the wall time of the whole process.
``train warm``  the same command again with that cache now filled (median of repeats).
``--help``      ``indexnet --help`` (median of repeats); it must not import Numba.

Each child is ``python -m indexnet ...`` with the bench's interpreter, writing into a
temporary folder that is removed afterwards. The test accuracy the run printed is kept,
so a faster start-up that changed the result shows.
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


def run_child(args: list[str], env: dict | None = None, timeout: float = 900) -> tuple[float, str]:
    """Wall seconds of ``python -m indexnet *args`` in a child process, and its output.

    Raises RuntimeError with the end of the child's stderr when it fails.
    """
    cmd = [sys.executable, "-m", "indexnet", *args]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"bench: `{' '.join(cmd)}` exited with {done.returncode}: {done.stderr[-2000:]}")
    return seconds, done.stdout + done.stderr


def accuracy_in(output: str) -> float | None:
    """The test accuracy (percent) ``indexnet train`` printed, or None."""
    m = ACCURACY.search(output)
    return float(m.group(1)) if m else None


def startup(repeats: int = 3, cold: bool = True, train: bool = True, train_args: tuple = ()) -> dict:
    """Cold and warm ``indexnet train`` and ``indexnet --help`` wall times (see the module doc)."""
    res: dict = {"command": "indexnet train " + " ".join(train_args)}
    if train:
        with tempfile.TemporaryDirectory(prefix="indexnet-bench-") as d:
            env = {"NUMBA_CACHE_DIR": os.path.join(d, "numba-cache")}
            os.makedirs(env["NUMBA_CACHE_DIR"])
            if cold:
                s, out = run_child(["train", "--out", os.path.join(d, "cold"), *train_args], env)
                res["train_cold"] = {"seconds": s, "test_accuracy": accuracy_in(out)}
            else:  # fill the cache untimed
                run_child(["train", "--out", os.path.join(d, "fill"), *train_args], env)
            warm = [run_child(["train", "--out", os.path.join(d, f"warm{k}"), *train_args], env)
                    for k in range(max(1, repeats - 1))]
            res["train_warm"] = Timing([w[0] for w in warm]).summary() | {"test_accuracy": accuracy_in(warm[-1][1])}
    helps = [run_child(["--help"])[0] for _ in range(repeats)]
    res["help"] = Timing(helps).summary()
    return res
