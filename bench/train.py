"""Training and inference speed: fastnn against PyTorch and a plain NumPy loop, in one run.

    python -m bench.train                 # full run (several minutes), updates bench/RESULTS.md
    python -m bench.train --quick         # fewer repeats and shorter runs, prints only
    python -m bench.train --data PATH     # MNIST IDX files (default ../shared/data/mnist)
    python -m bench.train --workloads A,D # a subset

Workloads (MNIST, 60,000 training samples, Adam lr 1e-3, float32, 2 threads):

* (A) 784-64-64-10 at batch 32 -- the seed's network;
* (B) the same at batch 256;
* (C) 784-1024-1024-10 at batch 256 (GEMM-bound);
* (D) inference: one-sample ``predict_on_batch`` latency against PyTorch's
  ``inference_mode`` forward, and 10,000-sample ``predict`` throughput.

Peers of each training workload, timed epoch by epoch, interleaved (one epoch of
each peer in turn, so that bursts of background load hit all of them):

* fastnn fused: ``model.fit`` running the compiled training step
  (:mod:`fastnn.backends.fused`);
* fastnn per-op: the same ``fit`` forced onto the per-layer Python loop over
  the fast backend's kernels (a callback that needs every batch does that);
* fastnn reference: ``fit`` on the pure NumPy reference backend;
* fastnn PyTorch-style: ``nn.Module`` + ``optim.Adam`` + ``loss.backward()``
  (:mod:`bench.train_torch_style`);
* PyTorch idiomatic loop (:mod:`bench.torch_loop`, when PyTorch is installed),
  with its default Adam and with ``Adam(fused=True)``;
* scikit-learn's ``MLPClassifier`` (Adam, the same batch size and learning rate,
  no L2 penalty), one ``partial_fit`` per epoch, when scikit-learn is installed;
* the plain NumPy loop (:mod:`bench.numpy_loop`), with OpenBLAS on 2 threads
  (NumPy's default here) and on 1 thread (faster at these small shapes).

Slow peers are timed on the first batches of an epoch and extrapolated to the
full epoch (marked "extrapolated" with the fraction timed). Figures: seconds per
epoch (median and range over repeats), samples/s, test accuracy after the timed
epochs, the multiple of the FLOP floor (6 x parameters x samples / 140 GFLOP/s),
and ratios against PyTorch and NumPy. Start-up time and peak RSS of importing
fastnn, NumPy and PyTorch, and peak RSS while training workload A, are measured
in fresh subprocesses.

Huge pages: NumPy advises the kernel to back arrays of 4 MB and more with
transparent huge pages; PyTorch's allocator does not. With the peers interleaved
in one process, PyTorch's 4 KB-page allocations fragment physical memory, and
each fresh 188 MB ``x[perm]`` copy of a NumPy-based loop (the PyTorch-style
loop's, the NumPy loop's) then waits on the kernel's direct compaction: 0.5-0.8 s
per epoch on the development VM, against 0.06 s in a process of its own. The run
therefore turns NumPy's advice off, so both libraries' copies use ordinary pages
(``--numpy-hugepages`` keeps NumPy's default).
"""
from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench._common import blas_threads, machine_summary, markdown_table, update_results_section

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = (REPO / ".." / "shared" / "data" / "mnist").resolve()
PEAK_FLOPS = 140e9       # float32 GEMM peak of this kind of machine (OpenBLAS, 2 threads)
LR = 1e-3

WORKLOADS = {
    "A": {"sizes": (784, 64, 64, 10), "batch": 32},
    "B": {"sizes": (784, 64, 64, 10), "batch": 256},
    "C": {"sizes": (784, 1024, 1024, 10), "batch": 256},
}

# Targets of issue 4: (workload, peer) -> minimum speed-up of fastnn fused.
TARGETS = {("A", "torch"): 5.0, ("A", "numpy"): 2.5, ("B", "torch"): 3.0, ("C", "torch"): 1.4}


def n_params(sizes):
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def flop_floor(sizes, samples):
    """Seconds one epoch needs at PEAK_FLOPS: 6 flops per parameter per sample."""
    return 6 * n_params(sizes) * samples / PEAK_FLOPS


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

def load_mnist(path):
    """(x, y, x_test, y_test): float32 pixels in [0, 1], int64 labels."""
    from fastnn.datasets import mnist
    (x, y), (xt, yt) = mnist.load_data(path=path, download=False)
    x = x.reshape(len(x), -1).astype(np.float32)
    x /= 255                      # in place: one float32 copy of the images, not two
    xt = xt.reshape(len(xt), -1).astype(np.float32)
    xt /= 255
    return x, y.astype(np.int64), xt, yt.astype(np.int64)


# ---------------------------------------------------------------------------
# Peers: each runs one (possibly partial) epoch and reports the samples it saw
# ---------------------------------------------------------------------------

class _Peer:
    name = ""
    key = ""           # short id used for ratios: fused, perop, reference, torchstyle, torch, numpy...
    last_seconds = None  # set by peers that time their epoch themselves
    partial = True       # whether epoch(max_batches) can stop early (else it runs whole)

    def epoch(self, max_batches=None) -> int:
        raise NotImplementedError

    def accuracy(self, xt, yt) -> float:
        raise NotImplementedError

    @staticmethod
    def _epoch_rows(rng, total, batch, max_batches):
        """(rows, n) of an epoch that may stop after ``max_batches``: for a peer that
        shuffles what it is given, a random subset of n rows is a fair partial epoch."""
        n = total if max_batches is None else min(total, max_batches * batch)
        return (rng.permutation(total)[:n] if n < total else slice(None)), n


def _keras_model(sizes, seed=0):
    import fastnn
    from fastnn import layers
    fastnn.utils.set_random_seed(seed)
    model = fastnn.Sequential(
        [layers.Dense(sizes[1], activation="relu", input_shape=(sizes[0],))]
        + [layers.Dense(s, activation="relu") for s in sizes[2:-1]]
        + [layers.Dense(sizes[-1], activation="softmax")])
    model.compile(optimizer=fastnn.optimizers.Adam(LR), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def fit_seam_wired():
    """True if the fast backend hands fit the fused trainer (fastnn.models.training's seam)."""
    from fastnn import backends
    return hasattr(backends.get("fast"), "fused_fit_plan")


def predict_seam_wired():
    from fastnn import backends
    return hasattr(backends.get("fast"), "fused_predict_plan")


class FastnnFit(_Peer):
    """``model.fit`` one epoch at a time on the chosen backend and path."""

    def __init__(self, x, y, sizes, batch, mode, threads):
        import fastnn
        from fastnn.callbacks import Callback

        class EveryBatch(Callback):   # needs each batch: keeps fit on the per-op loop
            def __init__(self, limit=None):
                super().__init__()
                self.limit, self.seen = limit, 0

            def on_train_batch_end(self, batch, logs=None):
                self.seen += 1
                if self.limit is not None and self.seen >= self.limit:
                    self.model.stop_training = True

        self._every_batch = EveryBatch
        self.fastnn = fastnn
        self.mode = mode
        self.key = mode
        self.name = {"fused": "fastnn fused fit", "perop": "fastnn per-op fit (fast kernels)",
                     "reference": "fastnn reference backend"}[mode]
        self.x, self.y, self.batch, self.threads = x, y, batch, threads
        self.backend = "reference" if mode == "reference" else "fast"
        with fastnn.config.use_backend(self.backend):
            self.model = _keras_model(sizes)
        self.trainer = None
        self.partial = mode != "fused"
        if mode == "fused" and not fit_seam_wired():
            # fit does not offer the fused path yet: drive the same runner fit would use
            from fastnn.backends import fused
            self.trainer = fused.FusedTrainer(self.model, batch)
            self.name += " (trainer driven directly)"

    def epoch(self, max_batches=None):
        """One epoch (the per-op paths may stop after ``max_batches``); returns samples seen.

        The time that counts is the epoch's own (``on_epoch_begin`` to ``on_epoch_end``):
        fit's validation of the whole data set happens once per fit call, and users
        call fit once for all their epochs.
        """
        fastnn = self.fastnn
        fastnn.config.set_num_threads(self.threads)
        with fastnn.config.use_backend(self.backend):
            if self.trainer is not None:
                from fastnn.callbacks import CallbackList
                order = fastnn.utils.rng().permutation(len(self.x))
                start = time.perf_counter()
                self.trainer.train_epoch(self.x, self.y, None, order, self.batch,
                                         CallbackList([], model=self.model))
                self.last_seconds = time.perf_counter() - start
                return len(self.x)
            timer = self._epoch_timer()
            callbacks = [timer]
            if self.mode == "fused":
                max_batches = None   # the fused epoch runs whole (it is never the slow peer)
            else:
                callbacks.append(self._every_batch(max_batches))
            self.model.fit(self.x, self.y, batch_size=self.batch, epochs=1, verbose=0,
                           callbacks=callbacks)
            self.last_seconds = timer.seconds
            if max_batches is None:
                return len(self.x)
            return min(len(self.x), max_batches * self.batch)

    def _epoch_timer(self):
        from fastnn.callbacks import Callback

        class EpochTimer(Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds = time.perf_counter() - self.start
        return EpochTimer()

    def accuracy(self, xt, yt):
        with self.fastnn.config.use_backend(self.backend):
            return float(np.mean(self.model.predict(xt, verbose=0, batch_size=1024).argmax(1) == yt))


class TorchStyle(_Peer):
    """fastnn's PyTorch-style API (bench/train_torch_style.py)."""

    key = "torchstyle"
    name = "fastnn PyTorch-style loop"

    def __init__(self, x, y, sizes, batch, threads):
        import fastnn
        from bench import train_torch_style as ts
        from fastnn import nn, optim
        self.ts, self.fastnn, self.threads = ts, fastnn, threads
        fastnn.manual_seed(0)
        self.model = ts.make_model(sizes)
        self.criterion = nn.CrossEntropyLoss()
        self.optimizer = optim.Adam(self.model.parameters(), lr=LR)
        self.x, self.y, self.batch = x, y, batch
        self.rng = np.random.default_rng(0)

    def epoch(self, max_batches=None):
        self.fastnn.config.set_num_threads(self.threads)
        rows, n = self._epoch_rows(self.rng, len(self.x), self.batch, max_batches)
        self.ts.train_epoch(self.model, self.optimizer, self.criterion, self.x[rows], self.y[rows],
                            self.batch, self.rng)
        return n

    def accuracy(self, xt, yt):
        return self.ts.accuracy(self.model, xt, yt)


class TorchPeer(_Peer):
    key = "torch"
    name = "PyTorch 2 idiomatic loop"

    def __init__(self, x, y, sizes, batch, threads, fused=False):
        import torch
        from bench.torch_loop import TorchMLP
        self.torch = torch
        self.peer = TorchMLP(sizes, lr=LR, seed=0, threads=threads, fused=fused)
        self.name = f"PyTorch {torch.__version__.split('+')[0]} idiomatic loop"
        if fused:
            self.key, self.name = "torchfused", self.name + ", fused Adam"
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)
        self.batch, self.threads = batch, threads

    def epoch(self, max_batches=None):
        self.torch.set_num_threads(self.threads)
        return self.peer.fit_epoch(self.x, self.y, self.batch, max_batches)

    def accuracy(self, xt, yt):
        return self.peer.accuracy(self.torch.from_numpy(xt), self.torch.from_numpy(yt))


class SklearnPeer(_Peer):
    """scikit-learn's MLPClassifier: Adam at the same learning rate and batch size,
    ReLU hidden layers, no L2 penalty (``alpha=0``), float32 data (kept as float32
    by scikit-learn >= 1.1); ``partial_fit`` runs one shuffled pass per call."""

    key = "sklearn"

    def __init__(self, x, y, sizes, batch, threads):
        import sklearn
        from sklearn.neural_network import MLPClassifier
        self.model = MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]), activation="relu",
                                   solver="adam", alpha=0.0, batch_size=batch,
                                   learning_rate_init=LR, shuffle=True, random_state=0)
        self.name = f"scikit-learn {sklearn.__version__} MLPClassifier"
        self.x, self.y, self.threads = x, y, threads
        self.classes = np.arange(sizes[-1])
        self.rng = np.random.default_rng(0)

    def epoch(self, max_batches=None):
        rows, n = self._epoch_rows(self.rng, len(self.x), self.model.batch_size, max_batches)
        with blas_threads(self.threads):
            self.model.partial_fit(self.x[rows], self.y[rows], classes=self.classes)
        return n

    def accuracy(self, xt, yt):
        with blas_threads(self.threads):
            return float(np.mean(self.model.predict(xt) == yt))


class NumpyPeer(_Peer):
    def __init__(self, x, y, sizes, batch, blas):
        from bench.numpy_loop import NumpyMLP
        self.peer = NumpyMLP(sizes, lr=LR, seed=0)
        self.x, self.y, self.batch, self.blas = x, y, batch, blas
        self.key = f"numpy{blas}"
        self.name = f"plain NumPy loop (OpenBLAS {blas} thread{'s' if blas > 1 else ''})"

    def epoch(self, max_batches=None):
        with blas_threads(self.blas):
            return self.peer.fit_epoch(self.x, self.y, self.batch, max_batches)

    def accuracy(self, xt, yt):
        return self.peer.accuracy(xt, yt)


def make_peers(wl, x, y, threads, only=None):
    sizes, batch = WORKLOADS[wl]["sizes"], WORKLOADS[wl]["batch"]
    makers = [
        ("fused", lambda: FastnnFit(x, y, sizes, batch, "fused", threads)),
        ("perop", lambda: FastnnFit(x, y, sizes, batch, "perop", threads)),
        ("reference", lambda: FastnnFit(x, y, sizes, batch, "reference", threads)),
        ("torchstyle", lambda: TorchStyle(x, y, sizes, batch, threads)),
        ("torch", lambda: TorchPeer(x, y, sizes, batch, threads)),
        ("torchfused", lambda: TorchPeer(x, y, sizes, batch, threads, fused=True)),
        ("sklearn", lambda: SklearnPeer(x, y, sizes, batch, threads)),
        ("numpy2", lambda: NumpyPeer(x, y, sizes, batch, 2)),
        ("numpy1", lambda: NumpyPeer(x, y, sizes, batch, 1)),
    ]
    peers, missing = [], []
    for key, make in makers:
        if only and key not in only:
            continue
        try:
            peers.append(make())
        except ImportError as exc:
            missing.append((key, str(exc)))
    return peers, missing


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------

def _timed(peer, max_batches):
    """(seconds, samples) of one epoch of ``peer``: its own epoch time when it reports one."""
    peer.last_seconds = None
    t = time.perf_counter()
    seen = peer.epoch(max_batches)
    seconds = time.perf_counter() - t
    return (peer.last_seconds if peer.last_seconds is not None else seconds), seen


def time_training(wl, x, y, xt, yt, threads, repeats, budget, only=None, log=print):
    """Epoch times of every peer of workload ``wl``, interleaved; returns result rows."""
    peers, missing = make_peers(wl, x, y, threads, only)
    n, batch = len(x), WORKLOADS[wl]["batch"]
    total_batches = math.ceil(n / batch)
    # Probe each peer on a few batches to decide whether a repeat can be a full epoch.
    limits = {}
    for p in peers:
        probe = max(1, min(total_batches, 2000 // batch + 4)) if p.partial else None
        seconds, seen = _timed(p, probe)
        estimate = seconds * n / seen
        limits[p.key] = (None if estimate <= budget or not p.partial
                         else max(4, int(total_batches * budget / estimate)))
        log(f"  [{wl}] {p.name}: ~{estimate:.2f} s/epoch"
            + ("" if limits[p.key] is None else f", timing {limits[p.key]} of {total_batches} batches"))
        time.sleep(0.2)
    samples = {p.key: [] for p in peers}
    for rep in range(repeats):
        for p in peers:
            seconds, seen = _timed(p, limits[p.key])
            samples[p.key].append(seconds * n / seen)
            time.sleep(0.2)   # let another library's spinning worker threads go idle
        log(f"  [{wl}] repeat {rep + 1}/{repeats}: " + ", ".join(
            f"{p.key} {samples[p.key][-1]:.2f}s" for p in peers))
    rows = []
    for p in peers:
        s = samples[p.key]
        full = limits[p.key] is None
        rows.append({
            "workload": wl, "key": p.key, "name": p.name,
            "median": statistics.median(s), "low": min(s), "high": max(s),
            "fraction": 1.0 if full else limits[p.key] / total_batches,
            "epochs": repeats if full else 0,
            "accuracy": p.accuracy(xt, yt) if full else None,
        })
    return rows, missing


def time_inference(x, xt, threads, repeats, log=print):
    """(D): one-sample latency and 10,000-sample throughput, fastnn against PyTorch."""
    import fastnn
    from bench._common import compare
    fastnn.config.set_num_threads(threads)
    sizes = WORKLOADS["A"]["sizes"]
    model = _keras_model(sizes)
    one = np.ascontiguousarray(xt[:1])
    many = np.ascontiguousarray(xt[:10000])
    cands = {"fastnn predict_on_batch (1 sample)": lambda: model.predict_on_batch(one),
             "fastnn model(x) (1 sample)": lambda: model(one)}
    from fastnn.backends import fused
    predictor = fused.fused_predictor_for(model)
    if predictor is not None:
        cands["fastnn compiled predictor alone (1 sample)"] = lambda: predictor.predict(one)
    big = {"fastnn predict (10,000)": lambda: model.predict(many, verbose=0, batch_size=10000)}
    torch_ok = True
    try:
        import torch
        from bench.torch_loop import TorchMLP
        torch.set_num_threads(threads)
        net = TorchMLP(sizes, seed=0, threads=threads).model.eval()
        t_one, t_many = torch.from_numpy(one), torch.from_numpy(many)

        def torch_forward(t):
            with torch.inference_mode():
                return net(t)
        cands["PyTorch inference_mode forward (1 sample)"] = lambda: torch_forward(t_one)
        big["PyTorch inference_mode forward (10,000)"] = lambda: torch_forward(t_many)
    except ImportError:
        torch_ok = False
    lat = compare(cands, repeats=repeats, warmup=2, min_time=0.05)
    thr = compare(big, repeats=repeats, warmup=1, min_time=0.1, pause=0.1)
    return lat, thr, torch_ok, predict_seam_wired()


# ---------------------------------------------------------------------------
# Start-up and footprint (fresh subprocesses)
# ---------------------------------------------------------------------------

# Peak RSS of this process in KB. VmHWM, not ru_maxrss: ru_maxrss survives exec, so a
# child started from a big parent would report the parent's size.
_RSS = ("import re, resource\n"
        "try:\n"
        "    print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
        "except (OSError, AttributeError):\n"
        "    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")


def _run_python(code, env=None):
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env=env)
    seconds = time.perf_counter() - t
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr else "failed")
    return seconds, out.stdout


def time_imports(repeats, log=print):
    """{module: (median seconds, peak RSS in MB)} for ``python -c 'import <module>'``.

    ``import fastnn`` is lazy (submodules load on first use), so the import of the
    Keras-style API (which loads NumPy and the compiled kernels) is measured too.
    """
    results = {}
    for module in ("numpy", "fastnn", "fastnn, fastnn.layers, fastnn.models", "torch",
                   "sklearn.neural_network"):
        try:
            times = []
            for _ in range(repeats):
                times.append(_run_python(f"import {module}")[0])
            rss = int(_run_python(f"import {module}\n{_RSS}")[1].split()[-1]) / 1024
        except RuntimeError as exc:
            log(f"  import {module}: {exc}")
            continue
        results[module] = (statistics.median(times), rss)
    results["(python -c pass)"] = (statistics.median(_run_python("pass")[0] for _ in range(repeats)),
                                   int(_run_python(_RSS)[1].split()[-1]) / 1024)
    return results


def _status_kb(field):
    """A field of /proc/self/status in KB (Linux), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _train_rss_child(peer, data, threads):
    """Run in a subprocess: train workload A for one epoch; print peak RSS and the
    peak above the RSS with the data loaded (KB), the library's own footprint."""
    x, y, _, _ = load_mnist(data)
    loaded = _status_kb("VmRSS")
    try:  # reset the peak to the current RSS (Linux >= 4.0), so loading does not count
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        loaded = None
    sizes, batch = WORKLOADS["A"]["sizes"], WORKLOADS["A"]["batch"]
    if peer == "fastnn":
        FastnnFit(x, y, sizes, batch, "fused", threads).epoch()
    else:
        TorchPeer(x, y, sizes, batch, threads).epoch()
    peak = _status_kb("VmHWM")
    if peak is None:
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(peak, -1 if loaded is None else peak - loaded)


def training_rss(data, threads, log=print):
    """{peer: (peak RSS MB, peak above the loaded data MB or None)} while training A."""
    out = {}
    for peer in ("fastnn", "torch"):
        code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); from bench.train import _train_rss_child; "
                f"_train_rss_child({peer!r}, {str(data)!r}, {threads})")
        try:
            peak, above = _run_python(code)[1].split()[-2:]
            out[peer] = (int(peak) / 1024, None if int(above) < 0 else int(above) / 1024)
        except (RuntimeError, ValueError) as exc:
            log(f"  training RSS of {peer}: {exc}")
    return out


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

def _fmt_s(row):
    s = f"{row['median']:.2f} ({row['low']:.2f}-{row['high']:.2f})"
    if row["fraction"] < 1:
        s += f" extrapolated from {row['fraction']:.0%}"
    return s


def training_table(rows, n):
    by = {(r["workload"], r["key"]): r for r in rows}
    lines = []
    for r in rows:
        wl = r["workload"]
        sizes = WORKLOADS[wl]["sizes"]
        torch = by.get((wl, "torch"))
        np2, np1 = by.get((wl, "numpy2")), by.get((wl, "numpy1"))
        ratio = lambda peer: f"{peer['median'] / r['median']:.2f}x" if peer else "n/a"  # noqa: E731
        lines.append([
            f"{wl}: {'-'.join(map(str, sizes))}, batch {WORKLOADS[wl]['batch']}", r["name"], _fmt_s(r),
            f"{n / r['median']:,.0f}",
            "—" if r["accuracy"] is None else f"{r['accuracy']:.4f} ({r['epochs']} ep)",
            f"{r['median'] / flop_floor(sizes, n):.1f}x",
            ratio(torch), ratio(np2), ratio(np1)])
    return markdown_table(
        ["workload", "peer", "s/epoch median (range)", "samples/s", "test acc", "x FLOP floor",
         "vs PyTorch", "vs NumPy 2 thr", "vs NumPy 1 thr"], lines, align="llrrrrrrr")


def set_numpy_hugepages(enabled):
    """NumPy's transparent-huge-page advice for large arrays on or off (see the module
    docstring); returns False where this NumPy has no such switch."""
    core = getattr(np, "_core", None) or getattr(np, "core", None)
    switch = getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)
    if switch is None:
        return False
    switch(bool(enabled))
    return True


def target_lines(rows, lat, thr, imports, train_rss):
    by = {(r["workload"], r["key"]): r for r in rows}
    out = []

    def verdict(ok):
        return "met" if ok else "NOT met"
    style, torch_row = by.get(("A", "torchstyle")), by.get(("A", "torch"))
    if style and torch_row:
        got = torch_row["median"] / style["median"]
        out.append(f"- (A, issue 5) fastnn PyTorch-style loop >= 2x faster than {torch_row['name']}: "
                   f"{got:.2f}x, {verdict(got >= 2)} (fastest epochs: "
                   f"{torch_row['low'] / style['low']:.2f}x)")
    for (wl, peer), need in TARGETS.items():
        fused, other = by.get((wl, "fused")), by.get((wl, "torch" if peer == "torch" else "numpy2"))
        if fused and other:
            got = other["median"] / fused["median"]
            fastest = other["low"] / fused["low"]
            out.append(f"- ({wl}) fastnn fused >= {need}x faster than {other['name']}: "
                       f"{got:.2f}x, {verdict(got >= need)} (fastest epochs against each other, "
                       f"which discounts bursts of load from other processes: {fastest:.2f}x, "
                       f"{verdict(fastest >= need)})")
            if peer == "numpy":
                best = by.get((wl, "numpy1"))
                if best:
                    out.append(f"  (against the faster NumPy configuration, OpenBLAS on 1 thread: "
                               f"{best['median'] / fused['median']:.2f}x; fastest epochs "
                               f"{best['low'] / fused['low']:.2f}x)")
    for wl in WORKLOADS:   # not targets: the other peers the mission names
        fused = by.get((wl, "fused"))
        others = [by.get((wl, key)) for key in ("torchfused", "sklearn")]
        if fused and any(others):
            out.append(f"- ({wl}) also, not a target: fastnn fused against " + "; ".join(
                f"{o['name']} {o['median'] / fused['median']:.2f}x" for o in others if o))
    a = by.get(("A", "fused"))
    if a:
        floor = flop_floor(WORKLOADS["A"]["sizes"], 60000)
        out.append(f"- (A) aim <= 2x the FLOP floor ({floor:.3f} s): {a['median'] / floor:.2f}x, "
                   f"{verdict(a['median'] <= 2 * floor)}")
        if a["accuracy"] is not None:
            out.append(f"- (A) test accuracy >= 0.965 after {a['epochs']} epochs: {a['accuracy']:.4f}, "
                       f"{verdict(a['accuracy'] >= 0.965 and a['epochs'] <= 5)}")
    if lat:
        f1 = lat.get("fastnn predict_on_batch (1 sample)")
        t1 = lat.get("PyTorch inference_mode forward (1 sample)")
        if f1 and t1:
            got = t1.median / f1.median
            out.append(f"- (D) 1-sample predict_on_batch >= 5x lower latency than PyTorch: {got:.2f}x, "
                       f"{verdict(got >= 5)}")
        f2 = thr.get("fastnn predict (10,000)")
        t2 = thr.get("PyTorch inference_mode forward (10,000)")
        if f2 and t2:
            got = t2.median / f2.median
            out.append(f"- (D) 10,000-sample predict >= 1.5x PyTorch's throughput: {got:.2f}x, "
                       f"{verdict(got >= 1.5)}")
    if imports and "fastnn" in imports and "numpy" in imports:
        ft, fr = imports["fastnn"]
        nt, nr = imports["numpy"]
        out.append(f"- import fastnn <= 2x the time of import numpy: {ft / nt:.2f}x, {verdict(ft <= 2 * nt)}")
        out.append(f"- import fastnn peak RSS <= 1.5x numpy's: {fr / nr:.2f}x, {verdict(fr <= 1.5 * nr)}")
        full = imports.get("fastnn, fastnn.layers, fastnn.models")
        if full:
            out.append(f"  (importing the Keras-style API as well, which loads NumPy and the kernels: "
                       f"{full[0] / nt:.2f}x the time, {full[1] / nr:.2f}x the RSS: "
                       f"{verdict(full[0] <= 2 * nt and full[1] <= 1.5 * nr)})")
    if train_rss and "fastnn" in train_rss and "torch" in train_rss:
        (fp, fa), (tp, ta) = train_rss["fastnn"], train_rss["torch"]
        out.append(f"- peak RSS training A <= 1/3 of PyTorch's (whole process, both holding the same "
                   f"{60000 * 784 * 4 / 2**20:.0f} MB of float32 images): {fp / tp:.2f}, "
                   f"{verdict(fp <= tp / 3)}")
        if fa is not None and ta is not None:
            out.append(f"  (memory used above the loaded data: fastnn {fa:.0f} MB, PyTorch {ta:.0f} MB: "
                       f"{fa / ta:.2f}, {verdict(fa <= ta / 3)})")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="directory of the MNIST IDX files")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed epochs per peer (default 5, --quick 2)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="short run for development; prints only")
    parser.add_argument("--workloads", default="A,B,C,D,startup",
                        help="comma list of A, B, C, D, startup")
    parser.add_argument("--peers", default=None,
                        help="comma list of peer keys: fused, perop, reference, torchstyle, torch, "
                             "torchfused, sklearn, numpy2, numpy1 (default all)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds one timed epoch may take before it is extrapolated "
                             "from its first batches (default 12, --quick 3)")
    parser.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    parser.add_argument("--numpy-hugepages", action="store_true",
                        help="keep NumPy's transparent-huge-page advice (see the module docstring)")
    args = parser.parse_args(argv)
    hugepages_off = not args.numpy_hugepages and set_numpy_hugepages(False)
    repeats = args.repeats or (2 if args.quick else 5)
    budget = args.budget or (3.0 if args.quick else 12.0)
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    only = set(args.peers.split(",")) if args.peers else None
    write = not (args.quick or args.no_write)

    import fastnn
    if fastnn.config.get_backend() != "fast":
        print("warning: the compiled backend is not available; fastnn rows use the reference backend")
    print(f"Machine: {machine_summary()}")
    print(f"fastnn {fastnn.__version__}, {args.threads} threads; fit seam wired: {fit_seam_wired()}, "
          f"predict seam wired: {predict_seam_wired()}")
    x, y, xt, yt = load_mnist(args.data)
    n = len(x)

    rows, missing = [], []
    for wl in [w for w in workloads if w in WORKLOADS]:
        print(f"workload {wl}: {WORKLOADS[wl]}")
        r, m = time_training(wl, x, y, xt, yt, args.threads, repeats, budget, only)
        rows += r
        missing += m
    lat = thr = None
    if "D" in workloads:
        print("workload D: inference")
        lat, thr, _, _ = time_inference(x, xt, args.threads, 5 if args.quick else 9)
    imports = train_rss = None
    if "startup" in workloads:
        print("start-up and footprint (subprocesses)")
        imports = time_imports(5 if args.quick else 11)
        if not args.quick:
            train_rss = training_rss(args.data, args.threads)

    parts = [f"Machine: {machine_summary()}.",
             f"`python -m bench.train` (fastnn {fastnn.__version__}, {args.threads} threads, "
             f"{repeats} timed epochs per peer, interleaved; MNIST {n:,} samples, Adam lr {LR}, float32). "
             f"FLOP floor = 6 x parameters x samples / {PEAK_FLOPS / 1e9:.0f} GFLOP/s. "
             f"Ratios are the peer's median time over this row's: above 1, this row is faster."
             + (" NumPy's huge-page advice is off for the run, as PyTorch's allocator gives none "
                "(see `bench/train.py`: interleaved with PyTorch, NumPy's fresh per-epoch copies "
                "otherwise wait on the kernel's memory compaction)." if hugepages_off else
                " NumPy's huge-page advice is on (its default).")]
    if not fit_seam_wired():
        parts.append("Note: `fit` does not offer the fused path yet (the fast backend lacks "
                     "`fused_fit_plan`); the fused row drives `fastnn.backends.fused.FusedTrainer` "
                     "as fit's runner would.")
    if rows:
        parts.append("### Training: seconds per epoch\n\n" + training_table(rows, n))
    if missing:
        parts.append("Missing peers: " + "; ".join(f"{k} ({why})" for k, why in missing))
    if lat:
        lines = [[name, f"{t.median * 1e6:.1f} ({t.low * 1e6:.1f}-{t.high * 1e6:.1f})", ""]
                 for name, t in lat.items()]
        lines += [[name, f"{t.median * 1e3:.2f} ms ({t.low * 1e3:.2f}-{t.high * 1e3:.2f})",
                   f"{10000 / t.median:,.0f}"] for name, t in thr.items()]
        note = "" if predict_seam_wired() else (
            " (`predict`/`predict_on_batch` do not use the compiled predictor yet: the fast "
            "backend lacks `fused_predict_plan`; the compiled predictor's own row shows what it gives)")
        parts.append("### Inference (D)" + note + "\n\n" + markdown_table(
            ["call", "time (µs unless noted), median (range)", "samples/s"], lines, align="lrr"))
    if imports:
        lines = [[f"`python -c \"import {m}\"`" if not m.startswith("(") else m,
                  f"{t:.3f}", f"{rss:.0f}"] for m, (t, rss) in imports.items()]
        if train_rss:
            lines += [[f"training workload A, 1 epoch ({peer}): whole process / above the loaded data",
                       "", f"{peak:.0f} / {'n/a' if above is None else f'{above:.0f}'}"]
                      for peer, (peak, above) in train_rss.items()]
        parts.append("### Start-up and footprint\n\n" + markdown_table(
            ["process", "seconds (median)", "peak RSS (MB)"], lines))
    targets = target_lines(rows, lat or {}, thr or {}, imports, train_rss)
    if targets:
        parts.append("### Targets (issue 4)\n\n" + "\n".join(targets))
    body = "\n\n".join(parts)
    print()
    print(body)
    if write:
        update_results_section("Training", body)
        print("\nwrote the Training section of bench/RESULTS.md")


if __name__ == "__main__":
    main()
