"""How the bench times things: warm-up, repeats, median and range, pauses, load average.

Three orders of timing. :func:`interleaved` runs every contender once per repeat, in turn,
so a burst of load from another process hits all of them alike (used for epochs, where
one call lasts long enough). :func:`blocked` runs all repeats of one contender, then the
next (used for kernels, where a call lasts milliseconds). Both sleep ``pause`` seconds
before each contender's turn: Numba's OpenMP workers and OpenBLAS's threads spin for a
while after a parallel region ends, and a contender that starts while the previous one's
threads still spin runs on a busy core. The pause lets them park.

:func:`paired` runs many short rounds, every contender back to back inside a round and
the pause only between rounds, and keeps each round's ratios (used for the tiny-net step,
whose contenders run on the calling thread alone). On this shared virtual machine the
speed of one core changes over seconds, and not alike for every program (measured on the
tiny step, 2026-12-03: indexnet's step took 4.4-4.9 µs or 6.5-7.5 µs, pinned to either
core, switching within a second; PyTorch's took 155-185 µs or 290-330 µs in the same
spells). A repeat of a few milliseconds sees one speed, and the next contender's repeat,
two seconds later, may see the other, so the ratio of two medians mixes spells. Inside
one short round both contenders see the same spell; the rounds' ratios and their range
show the spells the run met (about 32-38 in the fast spell, 36-47 in the slow one, over the day).
"""
from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from typing import Callable

#: default seconds slept before each contender's turn. GNU OpenMP workers (Numba's omp
#: layer) spin up to about 0.3 s by default and OpenBLAS's threads a similar while before
#: they sleep; 2 s leaves margin when other processes share the cores.
DEFAULT_PAUSE = 2.0


@dataclass
class Timing:
    """Seconds of each timed repeat of one contender."""

    times: list

    @property
    def median(self) -> float:
        return float(statistics.median(self.times))

    @property
    def lo(self) -> float:
        return float(min(self.times))

    @property
    def hi(self) -> float:
        return float(max(self.times))

    def scaled(self, factor: float) -> "Timing":
        """The same repeats multiplied by ``factor`` (seconds per step from seconds per run)."""
        return Timing([t * factor for t in self.times])

    def summary(self) -> dict:
        """``median_s``, ``min_s``, ``max_s`` and every repeat (``times_s``)."""
        return {"median_s": self.median, "min_s": self.lo, "max_s": self.hi, "times_s": list(self.times)}


def _check_counts(repeats: int, warmup: int, pause: float) -> None:
    if repeats < 1:
        raise ValueError(f"repeats: expected an integer >= 1, got {repeats}")
    if warmup < 0:
        raise ValueError(f"warmup: expected an integer >= 0, got {warmup}")
    if pause < 0:
        raise ValueError(f"pause: expected seconds >= 0, got {pause}")


def _rounds(contenders: dict[str, Callable[[], object]], rounds: int, warmup: int, pause: float,
            sleep: Callable[[float], None], pause_each: bool) -> dict[str, Timing]:
    """``warmup`` untimed rounds, then ``rounds`` timed rounds each calling every callable once,
    in turn; ``pause`` seconds slept before each call (``pause_each``) or before each round."""
    for _ in range(warmup):
        for fn in contenders.values():
            fn()
    times: dict[str, list] = {name: [] for name in contenders}
    for _ in range(rounds):
        if pause and not pause_each:
            sleep(pause)
        for name, fn in contenders.items():
            if pause and pause_each:
                sleep(pause)
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: Timing(ts) for name, ts in times.items()}


def interleaved(contenders: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
                pause: float = 0.0, sleep: Callable[[float], None] = time.sleep) -> dict[str, Timing]:
    """Time each callable ``repeats`` times, in turn, after ``warmup`` untimed rounds.

    ``pause`` seconds are slept before each timed call (not counted).
    """
    _check_counts(repeats, warmup, pause)
    return _rounds(contenders, repeats, warmup, pause, sleep, pause_each=True)


def paired(contenders: dict[str, Callable[[], object]], rounds: int, warmup: int = 1,
           pause: float = 0.0, sleep: Callable[[float], None] = time.sleep) -> dict[str, Timing]:
    """Time ``rounds`` rounds, each running every callable once, back to back, after
    ``warmup`` untimed rounds; sleep ``pause`` seconds before each round (not counted).

    Repeat r of every returned :class:`Timing` comes from round r, so
    :func:`paired_ratios` can divide them round by round.
    """
    _check_counts(rounds, warmup, pause)
    return _rounds(contenders, rounds, warmup, pause, sleep, pause_each=False)


def paired_ratios(timings: dict[str, Timing], ref: str) -> dict[str, dict]:
    """Per contender, the ratios of its time to ``ref``'s round by round (timings from
    :func:`paired`): ``median``, ``min``, ``max`` and every round's ``ratios``."""
    base = timings[ref].times
    out = {}
    for name, t in timings.items():
        if len(t.times) != len(base):
            raise ValueError(f"paired_ratios: {name!r} has {len(t.times)} rounds, {ref!r} has {len(base)}")
        r = [a / b for a, b in zip(t.times, base)]
        out[name] = {"median": float(statistics.median(r)), "min": min(r), "max": max(r), "ratios": r}
    return out


def blocked(contenders: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
            pause: float = 0.0, sleep: Callable[[float], None] = time.sleep) -> dict[str, Timing]:
    """Time each callable ``repeats`` times in a row (after ``warmup`` calls), one contender
    after the other, sleeping ``pause`` seconds before each contender's block."""
    _check_counts(repeats, warmup, pause)
    out = {}
    for name, fn in contenders.items():
        if pause:
            sleep(pause)
        for _ in range(warmup):
            fn()
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        out[name] = Timing(ts)
    return out


def loadavg() -> list | None:
    """The 1, 5 and 15-minute load averages (other processes competing for the cores), or None."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every platform
        return None


def set_threads(n: int, torch=None) -> dict:
    """Use ``n`` threads in Numba, OpenBLAS (threadpoolctl) and PyTorch; return what was set."""
    import numba

    if n < 1:
        raise ValueError(f"--threads: expected an integer >= 1, got {n}")
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    out = {"numba": numba.get_num_threads()}
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
        out["blas"] = n
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        out["blas"] = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    if torch is not None:
        torch.set_num_threads(n)
        out["torch"] = torch.get_num_threads()
    return out


#: environment of ``--passive-threads``: idle OpenMP workers (Numba's omp layer, PyTorch's
#: libgomp) sleep at once instead of spinning; it must be set before those libraries load
PASSIVE_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0", "GOMP_SPINCOUNT": "0"}


def thread_env() -> dict:
    """The thread settings in effect (recorded in the report)."""
    import numba

    keys = ("OMP_WAIT_POLICY", "KMP_BLOCKTIME", "GOMP_SPINCOUNT", "NUMBA_THREADING_LAYER",
            "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
    env = {k: os.environ[k] for k in keys if k in os.environ}
    try:
        env["numba_threading_layer"] = numba.threading_layer()
    except ValueError:  # no parallel region has run yet
        env["numba_threading_layer"] = "not yet chosen"
    return env
