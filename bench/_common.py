"""Timing and reporting helpers shared by the benchmarks.

The machines fastnn is measured on are small and shared, so every figure is a
median over repeats, reported with its range, and candidates are measured
*interleaved* (A, B, A, B, ...) so that a burst of background load hits all of
them rather than one:

>>> from bench._common import compare, blas_threads
>>> with blas_threads(2):
...     timings = compare({"numpy": lambda: a @ b, "fastnn": lambda: gemm(a, b)})
>>> timings["fastnn"].median          # seconds per call

Thread limits: :func:`blas_threads` caps NumPy's BLAS (OpenBLAS, MKL) through
threadpoolctl; fastnn's kernels take their thread count as an argument.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import platform
import re
import statistics
import tempfile
import time
from pathlib import Path

__all__ = [
    "Timing", "measure", "compare", "blas_threads", "blas_info", "machine_summary",
    "markdown_table", "update_results_section", "RESULTS_PATH",
]

RESULTS_PATH = Path(__file__).with_name("RESULTS.md")


@dataclasses.dataclass(frozen=True)
class Timing:
    """Seconds per call over the repeats of one measurement.

    Attributes
    ----------
    median, low, high : float
        Median, fastest and slowest repeat, each divided by ``number``.
    repeats : int
        How many repeats were timed (after warm-up).
    number : int
        Calls per repeat (small calls are batched so a repeat lasts long enough
        for the clock to resolve it).
    """

    median: float
    low: float
    high: float
    repeats: int
    number: int

    @classmethod
    def from_samples(cls, samples, number):
        return cls(statistics.median(samples), min(samples), max(samples), len(samples), number)

    def rate(self, work):
        """``work`` per second at the median time (e.g. FLOP/s), with the range (low, high)."""
        return work / self.median, work / self.high, work / self.low


def _time_batch(fn, number):
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def calibrate(fn, min_time=2e-3, max_number=100_000):
    """Calls per repeat so that one repeat takes at least ``min_time`` seconds."""
    number = 1
    while number < max_number:
        if _time_batch(fn, number) * number >= min_time:
            break
        number *= 4
    return min(number, max_number)


def measure(fn, repeats=7, warmup=1, number=None, min_time=2e-3):
    """Time ``fn()``: ``warmup`` untimed batches, then ``repeats`` timed ones.

    Parameters
    ----------
    fn : callable
        Called with no arguments.
    repeats : int
        Timed batches; the result reports their median and range.
    warmup : int
        Untimed batches first (caches, lazy allocations, thread pools, clocks).
    number : int, optional
        Calls per batch; by default chosen so a batch lasts ``min_time``.
    min_time : float
        Target duration of a batch when ``number`` is not given.

    Returns
    -------
    Timing
    """
    return compare({"fn": fn}, repeats=repeats, warmup=warmup, number=number,
                   min_time=min_time)["fn"]


def compare(candidates, repeats=7, warmup=1, number=None, min_time=2e-3, rounds=None,
            pause=0.0, warmup_each_round=False):
    """Time several callables side by side, alternating between them.

    The repeats are split into ``rounds``; each round runs, for every candidate
    in turn, ``warmup`` untimed batches (in the first round only, unless
    ``warmup_each_round``) and then its share of the timed batches.
    ``rounds=repeats`` (the default) interleaves batch by batch; fewer rounds
    with a ``pause`` keep the candidates' thread pools from overlapping.

    Parameters
    ----------
    candidates : dict[str, callable]
        Name -> zero-argument callable.
    repeats, warmup, number, min_time
        As in :func:`measure`; ``number`` (or its calibration) is per candidate.
    rounds : int, optional
        How many times to cycle through the candidates (default ``repeats``).
    pause : float or dict[str, float]
        Seconds to sleep after each candidate's block (or after the named
        candidates' blocks), so that worker threads that spin after a call
        (OpenBLAS busy-waits for about 0.1 s, OpenMP runtimes for a few ms) go
        idle before the next candidate runs.
    warmup_each_round : bool
        Warm up at the start of every round, not just the first: after a pause
        the first calls pay for cold caches, sleeping worker threads and a
        clock that has not ramped up again (measured here: a 30 us product ran
        at 35-60 us for the first few ms after a 0.15 s sleep), which is not
        what a steady state of back-to-back calls costs.

    Returns
    -------
    dict[str, Timing]
    """
    rounds = max(1, min(rounds or repeats, repeats))
    numbers = {name: number or calibrate(fn, min_time) for name, fn in candidates.items()}
    samples = {name: [] for name in candidates}
    for r in range(rounds):
        share = repeats // rounds + (1 if r < repeats % rounds else 0)
        for name, fn in candidates.items():
            for _ in range(warmup if (r == 0 or warmup_each_round) else 0):
                _time_batch(fn, numbers[name])
            samples[name] += [_time_batch(fn, numbers[name]) for _ in range(share)]
            wait = pause.get(name, 0.0) if isinstance(pause, dict) else pause
            if wait:
                time.sleep(wait)
    return {name: Timing.from_samples(samples[name], numbers[name]) for name in candidates}


@contextlib.contextmanager
def blas_threads(n):
    """Limit NumPy's BLAS to ``n`` threads inside the block (needs threadpoolctl).

    Raises
    ------
    ImportError
        If threadpoolctl is missing (``pip install threadpoolctl`` or the
        ``bench`` extra): without it the comparison would not be like for like.
    """
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=int(n), user_api="blas"):
        yield


def blas_info():
    """One line naming NumPy's BLAS library, version and default thread count."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown BLAS (threadpoolctl not installed)"
    libs = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not libs:
        return "no BLAS found"
    i = libs[0]
    arch = f", {i['architecture']} kernels" if i.get("architecture") else ""
    return f"{i.get('internal_api')} {i.get('version')}{arch}, {i.get('num_threads')} threads by default"


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_summary():
    """A one-line description of where the numbers were taken."""
    import numpy as np
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        cpus = os.cpu_count()
    try:
        load = "load average %.1f" % os.getloadavg()[0]
    except OSError:  # pragma: no cover
        load = "load unknown"
    date = datetime.date.today().isoformat()
    return (f"{date}; {_cpu_model()}, {cpus} CPUs usable, {load}; Python "
            f"{platform.python_version()}, NumPy {np.__version__} ({blas_info()})")


def markdown_table(headers, rows, align=None):
    """A GitHub markdown table.

    Parameters
    ----------
    headers : sequence of str
    rows : sequence of sequences (cells are converted with ``str``)
    align : str, optional
        One character per column, ``'l'`` or ``'r'`` (default: first column left,
        the rest right, as numbers read best).
    """
    align = align or "l" + "r" * (len(headers) - 1)
    rule = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(str(h) for h in headers) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def update_results_section(title, body, path=RESULTS_PATH):
    """Replace (or append) the section ``## <title>`` of a markdown file.

    A section runs from its ``## `` heading to the next ``## `` heading (deeper
    headings such as ``###`` belong to it). Other sections are kept verbatim.
    The file is written atomically (a temporary file renamed over it).

    Parameters
    ----------
    title : str
        Heading text without the ``## `` prefix, e.g. ``"GEMM"``.
    body : str
        Markdown placed under the heading.
    path : path-like
        The results file, ``bench/RESULTS.md`` by default.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    section = f"## {title}\n\n{body.strip()}\n"
    heading = re.compile(rf"^## {re.escape(title)}[ \t]*$", re.MULTILINE)
    match = heading.search(text)
    if match is None:
        new_text = text.rstrip("\n") + "\n\n" + section
    else:
        following = re.compile(r"^## ", re.MULTILINE).search(text, match.end())
        end = following.start() if following else len(text)
        tail = text[end:]
        new_text = text[:match.start()] + section + ("\n" + tail if tail else "")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".RESULTS.", suffix=".md")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(new_text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
