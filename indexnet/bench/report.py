"""The bench's report: every figure kept (``--json``), a table for people, the issues' targets.

:class:`Report` holds what one run measured; :meth:`Report.to_json` and
:meth:`Report.from_json` round-trip it exactly (every repeat's seconds are kept, not only
the medians). :func:`format_report` prints the table; :func:`check_targets` compares the
run with the targets of issues 11 and 14.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

#: target key -> (what is compared, bound, "max" or "min")
TARGETS = {
    "epoch_jax": ("MNIST epoch: fast / jax-scan", 1.0, "max"),
    "epoch_torch": ("MNIST epoch: fast / pytorch", 0.5, "max"),
    "tiny": ("tiny 1-16-16-1 step: pytorch / fast (median of paired rounds)", 40.0, "min"),
    "cnn": ("small CNN epoch: fast / pytorch", 0.7, "max"),
    "train_cold": ("indexnet train, cold cache (s)", 15.0, "max"),
    "train_warm": ("indexnet train, warm cache (s)", 3.0, "max"),
    "help": ("indexnet --help (s)", 1.0, "max"),
    "augment_affine": ("MNIST epoch: --augment affine alone / fast epoch", 0.3, "max"),
    "augment_elastic": ("MNIST epoch: --augment elastic alone / fast epoch", 0.3, "max"),
}


@dataclass
class Report:
    """What one bench run measured; ``to_json`` is the ``--json`` output."""

    config: dict
    blas: dict = field(default_factory=dict)
    floor: dict = field(default_factory=dict)
    kernels: list = field(default_factory=list)
    epoch: dict = field(default_factory=dict)
    tiny: dict = field(default_factory=dict)
    cnn: dict = field(default_factory=dict)
    startup: dict = field(default_factory=dict)
    targets: list = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "Report":
        """The report ``to_json`` wrote (unknown keys are an error, naming them)."""
        d = json.loads(text)
        if not isinstance(d, dict):
            raise ValueError(f"bench report: expected a JSON object, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"bench report: unknown keys {unknown}; expected some of {sorted(known)}")
        if "config" not in d:
            raise ValueError("bench report: missing key 'config'")
        return cls(**d)


def _ratio(row: dict, a: str, b: str) -> float | None:
    c = row.get("contenders", {})
    if a in c and b in c:
        return c[a]["median_s"] / c[b]["median_s"]
    return None


def _paired(row: dict, name: str) -> float | None:
    """The median of ``name``'s round-by-round ratios to the row's reference (rows timed in
    paired rounds), else the ratio of the two medians (a report written before them)."""
    if name in row.get("paired", {}):
        return row["paired"][name]["median"]
    return _ratio(row, name, row["ref"]) if row else None


def check_targets(rep: Report) -> list[dict]:
    """Each target whose figures this run has: value, bound, met or missed."""
    values = {
        "epoch_jax": _ratio(rep.epoch, "fast", "jax-scan"),
        "epoch_torch": _ratio(rep.epoch, "fast", "pytorch"),
        "tiny": _paired(rep.tiny, "pytorch") if rep.tiny.get("ref") == "fast" else None,
        "cnn": _ratio(rep.cnn, "fast", "pytorch"),
        "train_cold": rep.startup.get("train_cold", {}).get("seconds"),
        "train_warm": rep.startup.get("train_warm", {}).get("median_s"),
        "help": rep.startup.get("help", {}).get("median_s"),
        "augment_affine": _ratio(rep.epoch, "affine", "fast"),
        "augment_elastic": _ratio(rep.epoch, "elastic", "fast"),
    }
    out = []
    for key, (text, bound, kind) in TARGETS.items():
        v = values[key]
        if v is None:
            continue
        met = v <= bound if kind == "max" else v >= bound
        out.append({"target": key, "text": text, "value": round(v, 3), "bound": bound,
                    "kind": kind, "met": bool(met)})
    return out


def fmt_seconds(s: float) -> str:
    """Seconds with a unit that keeps three significant digits readable."""
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} µs"


def _kernel_lines(rep: Report) -> list[str]:
    forms = ("numpy", "loops", "fast")
    lines = ["\nkernels: GFLOP/s median [range], and the fraction of standalone BLAS of that dtype",
             f"{'kernel':19s} {'dtype':8s} {'shape':30s} " + " ".join(f"{f:>24s}" for f in forms)]
    skips = []
    for r in rep.kernels:
        cells = []
        for f in forms:
            c = r.get(f)
            if c is None:
                cells.append("-")
                continue
            lo, hi = c["gflops_range"]
            frac = f" {c['of_blas']:4.2f}" if "of_blas" in c else ""
            cells.append(f"{c['gflops']:6.1f} [{lo:5.1f}-{hi:5.1f}]{frac}")
        lines.append(f"{r['name']:19s} {r['dtype']:8s} {r['shape']:30s} " + " ".join(f"{c:>24s}" for c in cells))
        for f, why in r.get("skipped", {}).items():
            skips.append(f"  {r['name']} {r['dtype']} {f}: skipped, {why}")
    return lines + sorted(set(skips))


def _row_lines(title: str, r: dict, detail: str, floor: str = "") -> list[str]:
    lines = [f"\n{title}: {r['name']}  {detail}"]
    ref = r["ref"]
    for name, c in r["contenders"].items():
        cell = f"  {name:9s} {fmt_seconds(c['median_s']):>10s} [{fmt_seconds(c['min_s'])} - {fmt_seconds(c['max_s'])}]"
        if name != ref and "vs_ref" in c:
            cell += f"  {ref} / {name} = {1 / c['vs_ref']:.3g}, {name} / {ref} = {c['vs_ref']:.3g}"
        lines.append(cell)
    for name, why in r.get("skipped", {}).items():
        lines.append(f"  {name:9s} skipped: {why}")
    if floor:
        lines.append(floor)
    return lines


def format_report(rep: Report) -> str:
    """The human-readable table."""
    cfg = rep.config
    la0, la1 = cfg.get("loadavg_start"), cfg.get("loadavg_end")
    lines = [f"indexnet bench  threads {cfg.get('threads')}  numba {cfg.get('numba')}  numpy {cfg.get('numpy')}  "
             f"torch {cfg.get('torch')}  jax {cfg.get('jax')}  quick={cfg.get('quick')}",
             f"load average (1, 5, 15 min) {la0} at start, {la1} at end, {cfg.get('cpus')} cpus; "
             f"pause {cfg.get('pause')} s before each contender; thread env {cfg.get('thread_env')}; "
             f"XLA threads: {cfg.get('xla_threads')}",
             "median [min - max] of the repeats; ratios are of medians, except the tiny step's "
             "(median of the paired rounds' ratios)"]
    if rep.blas:
        lines.append("\nstandalone BLAS (numpy.matmul alone, best of repeats, 2 flops per multiply-add)")
        for dt, b in rep.blas.items():
            lines.append(f"  {dt:8s} {b['shape']:22s} {b['gflops']:7.1f} GFLOP/s")
    if rep.kernels:
        lines += _kernel_lines(rep)
    if rep.epoch:
        r = rep.epoch
        floor = ""
        if rep.floor:
            f = rep.floor
            floor = (f"  floor     {fmt_seconds(f['peak']['seconds']):>10s}  dense products of the epoch "
                     f"({f['peak']['flops'] / 1e9:.0f} GFLOP) at standalone BLAS {f['peak']['gflops']:.1f} GFLOP/s; "
                     f"{fmt_seconds(f['shapes']['seconds'])} with numpy at the epoch's own shapes "
                     f"({f['shapes']['gflops']:.1f} GFLOP/s)")
        lines += _row_lines("MNIST epoch", r, f"data: {r['data']}; {r['steps']} steps of {r['batch']}", floor)
    if rep.tiny:
        r = rep.tiny
        cpu = r.get("thread_cpu_s", {})
        cpu_line = ("  thread CPU per step (median): " + ", ".join(f"{k} {fmt_seconds(v)}" for k, v in cpu.items())
                    + (f"; pytorch / fast = {cpu['pytorch'] / cpu['fast']:.3g}"
                       if cpu.get("fast") and "pytorch" in cpu else "")) if cpu else ""
        ref = r["ref"]
        rounds = "; ".join(f"{k} / {ref} {v['median']:.3g} [{v['min']:.3g} - {v['max']:.3g}]"
                           for k, v in r.get("paired", {}).items() if k != ref)
        per_round = ", ".join(f"{k} {n}" for k, n in r.get("steps_per_round", {}).items())
        lines += _row_lines("tiny-net step", r, f"batch {r['batch']}, {r['dtype']}, {r.get('rounds')} paired rounds "
                                                f"of about {r.get('round_s', 0) * 1e3:.0f} ms per contender "
                                                f"(steps: {per_round})", cpu_line)
        if rounds:
            lines.append(f"  ratio per round, median [min - max] (the row's ratio): {rounds}")
    if rep.cnn:
        r = rep.cnn
        lines += _row_lines("small CNN epoch", r, f"data: {r['data']}; {r['steps']} steps of {r['batch']}")
    if rep.startup:
        s = rep.startup
        lines.append(f"\nstart-up (child processes: python -m indexnet ...)")
        def cpu_load(r):  # CPU seconds and load average, when the run kept them
            cpu = f", {fmt_seconds(r['cpu_s'])} CPU (user + sys)" if r.get("cpu_s") is not None else ""
            load = (f", load average {r['load'][0]:.2f} -> {r['load'][1]:.2f}" if r.get("load") else "")
            return cpu + load

        if "train_cold" in s:
            c = s["train_cold"]
            lines.append(f"  `{s['command'].strip()}`, empty NUMBA_CACHE_DIR: {fmt_seconds(c['seconds'])} wall"
                         f"{cpu_load(c)} (test accuracy {c['test_accuracy']} %)")
        if "train_warm" in s:
            w = s["train_warm"]
            lines.append(f"  `{s['command'].strip()}`, warm cache: {fmt_seconds(w['median_s'])} "
                         f"[{fmt_seconds(w['min_s'])} - {fmt_seconds(w['max_s'])}] wall{cpu_load(w)} "
                         f"(test accuracy {w['test_accuracy']} %)")
        if "help" in s:
            lines.append(f"  indexnet --help: {fmt_seconds(s['help']['median_s'])}")
    if rep.targets:
        lines.append("\ntargets (issues 11, 14 and 16)")
        for t in rep.targets:
            rel = "<=" if t["kind"] == "max" else ">="
            lines.append(f"  [{'met' if t['met'] else 'MISSED'}] {t['text']}: {t['value']} ({rel} {t['bound']})")
    return "\n".join(lines)
