"""fastnn's own GEMM against NumPy's BLAS, side by side in one run.

    python -m bench.gemm              # full run (about 1-2 minutes), updates bench/RESULTS.md
    python -m bench.gemm --quick      # fewer sizes and repeats, prints only
    python -m bench.gemm --no-write   # full run, prints only

Two parts:

* Square products, n = 512 ... 2048, float32 and float64, GFLOP/s of
  ``fastnn._gemm_binding.gemm`` against ``numpy.matmul`` (OpenBLAS), both on the
  same number of threads (2 by default; 1 as well). Targets: float32 >= 0.85x
  OpenBLAS, float64 >= 0.7x.
* The seed MLP's shapes (784-64-64-10 at batch 32; forward, and the two
  backward products of each layer), float32, microseconds per call of the
  fused dense op ``gemm + bias + relu`` against NumPy's ``matmul`` followed by
  ``+= bias`` and ``np.maximum`` (all in place, preallocated: NumPy at its
  best). Target: fastnn >= 1.5x faster. The bare products are reported too.

Every figure is a median over interleaved repeats (ranges in the printed
tables); the machine is shared, so read the ratios, not single times.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from fastnn.backends import ACTIVATION_CODES
from fastnn.layers.base import _aligned_copy
from bench._common import (
    blas_threads, compare, machine_summary, markdown_table, update_results_section,
)

SQUARE_SIZES = (512, 1024, 1536, 2048)
TARGET_RATIO = {"float32": 0.85, "float64": 0.70}
TARGET_SEED_SPEEDUP = 1.5

# The 784-64-64-10 MLP at batch 32: (label, m, n, k, trans_a, trans_b).
# Forward z = x @ W; backward dW = x^T @ dz (trans_a) and dx = dz @ W^T (trans_b).
SEED_SHAPES = (
    ("fwd 1", 32, 64, 784, False, False),
    ("fwd 2", 32, 64, 64, False, False),
    ("fwd 3", 32, 10, 64, False, False),
    ("dW 1", 784, 64, 32, True, False),
    ("dW 2", 64, 64, 32, True, False),
    ("dW 3", 64, 10, 32, True, False),
    ("dx 1", 32, 784, 64, False, True),
    ("dx 2", 32, 64, 64, False, True),
    ("dx 3", 32, 64, 10, False, True),
)
RELU = ACTIVATION_CODES["relu"]
# Sleep between the libraries' blocks so that one library's worker threads, which
# busy-wait after a call, are not competing for the 2 cores with the other's
# run: OpenBLAS's spin for about 0.12 s (measured: a full core of CPU time for
# 0.12 s after the last call), libgomp's for a few ms. Measured: with a 0.03 s pause fastnn's 2-thread sgemm at n = 512 ran
# at a third of its speed, in OpenBLAS's wake. Each block starts with an untimed
# warm-up batch, as the first calls after a pause meet cold caches and clocks.
PAUSE = 0.15  # after NumPy's blocks
PAUSE_OMP = 0.01  # after fastnn's
PAUSES = {"numpy": PAUSE, "fastnn": PAUSE_OMP}


def _square_rows(gemm, dtypes, sizes, threads, repeats, rng):
    rows, checks = [], []
    for dtype in dtypes:
        name = np.dtype(dtype).name
        for n in sizes:
            a = rng.standard_normal((n, n)).astype(dtype)
            b = rng.standard_normal((n, n)).astype(dtype)
            c_np, c_fn = np.empty((n, n), dtype), np.empty((n, n), dtype)
            flops = 2.0 * n ** 3
            with blas_threads(threads):
                t = compare({
                    "numpy": lambda: np.matmul(a, b, out=c_np),
                    "fastnn": lambda: gemm(a, b, out=c_fn, num_threads=threads),
                }, repeats=repeats, warmup=1, min_time=0.03, rounds=repeats, pause=PAUSES,
                    warmup_each_round=True)
            # The candidates must agree before their speed means anything.
            tol = 1e-3 if dtype == np.float32 else 1e-10
            np.testing.assert_allclose(c_fn, c_np, rtol=tol, atol=tol * np.sqrt(n))
            ours, ours_lo, ours_hi = (r / 1e9 for r in t["fastnn"].rate(flops))
            blas, blas_lo, blas_hi = (r / 1e9 for r in t["numpy"].rate(flops))
            ratio = t["numpy"].median / t["fastnn"].median
            ok = ratio >= TARGET_RATIO[name]
            rows.append([name, n, threads, f"{ours:.1f} ({ours_lo:.0f}-{ours_hi:.0f})",
                         f"{blas:.1f} ({blas_lo:.0f}-{blas_hi:.0f})", f"{ratio:.2f}",
                         f">= {TARGET_RATIO[name]:.2f} " + ("ok" if ok else "MISSED")])
            checks.append(ok)
            print("  " + " | ".join(str(c) for c in rows[-1]), flush=True)
    return rows, checks


def _seed_rows(gemm, threads, repeats, rng):
    rows, checks = [], []
    dtype = np.float32
    for label, m, n, k, ta, tb in SEED_SHAPES:
        a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
        b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
        if not label.startswith("dW"):
            # b is the layer's kernel: allocated 64-byte aligned, as fastnn's layers
            # allocate their weights (then the small-m path reads it without packing).
            # NumPy's own allocations land on 16 bytes or on a page, run by run, which
            # moved fastnn's time for fwd 1 between 38 and 48 us on one thread.
            b = _aligned_copy(b)
        bias = rng.standard_normal(n).astype(dtype)
        a_op, b_op = (a.T if ta else a), (b.T if tb else b)
        z_np, z_fn = np.empty((m, n), dtype), np.empty((m, n), dtype)

        def numpy_dense():
            np.matmul(a_op, b_op, out=z_np)
            np.add(z_np, bias, out=z_np)
            np.maximum(z_np, 0, out=z_np)

        def fastnn_dense():
            gemm(a, b, ta, tb, out=z_fn, bias=bias, activation=RELU, num_threads=threads)

        def numpy_matmul():
            np.matmul(a_op, b_op, out=z_np)

        def fastnn_gemm():
            gemm(a, b, ta, tb, out=z_fn, num_threads=threads)

        with blas_threads(threads):
            numpy_dense()
            fastnn_dense()
            np.testing.assert_allclose(z_fn, z_np, rtol=1e-4, atol=1e-4)
            t = compare({"numpy": numpy_dense, "numpy_mm": numpy_matmul,
                         "fastnn": fastnn_dense, "fastnn_mm": fastnn_gemm},
                        repeats=repeats, warmup=2, min_time=3e-3, rounds=min(6, repeats),
                        pause={"numpy_mm": PAUSE, "fastnn_mm": PAUSE_OMP},
                        warmup_each_round=True)
        us = {key: v.median * 1e6 for key, v in t.items()}
        rng_us = {key: f"{v.low * 1e6:.1f}-{v.high * 1e6:.1f}" for key, v in t.items()}
        speedup = us["numpy"] / us["fastnn"]
        ok = speedup >= TARGET_SEED_SPEEDUP
        trans = ("A^T" if ta else "A") + " " + ("B^T" if tb else "B")
        rows.append([label, f"{m}x{n}x{k}", trans, threads,
                     f"{us['numpy']:.1f} ({rng_us['numpy']})",
                     f"{us['fastnn']:.1f} ({rng_us['fastnn']})", f"{speedup:.2f}",
                     f">= {TARGET_SEED_SPEEDUP} " + ("ok" if ok else "MISSED"),
                     f"{us['numpy_mm']:.1f}", f"{us['fastnn_mm']:.1f}",
                     f"{us['numpy_mm'] / us['fastnn_mm']:.2f}"])
        checks.append(ok)
        print("  " + " | ".join(str(c) for c in rows[-1]), flush=True)
    return rows, checks


SQUARE_HEADERS = ["dtype", "n", "threads", "fastnn GFLOP/s (range)", "OpenBLAS GFLOP/s (range)",
                  "ratio", "target"]
SEED_HEADERS = ["op", "m x n x k", "operands", "threads", "NumPy matmul+bias+relu us (range)",
                "fastnn fused us (range)", "speedup", "target", "NumPy matmul us",
                "fastnn gemm us", "speedup"]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.gemm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2,
                        help="threads for both libraries in the main comparison (default 2)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer sizes and repeats; implies --no-write")
    parser.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    parser.add_argument("--only", choices=("square", "seed"),
                        help="run one part only; implies --no-write")
    args = parser.parse_args(argv)

    try:
        from fastnn import _gemm_binding
    except ImportError as exc:
        sys.exit(f"bench.gemm: fastnn's compiled GEMM is not built ({exc}); "
                 "run `pip install -e .` or `python setup.py build_ext --inplace` first")
    gemm = _gemm_binding.gemm
    rng = np.random.default_rng(0)

    sizes = (512, 1024) if args.quick else SQUARE_SIZES
    # Within about two minutes on 2 cores: the single-thread squares take the
    # longest per repeat, so they get fewer.
    repeats_sq = {args.threads: 3 if args.quick else 6, 1: 3 if args.quick else 4}
    repeats_seed = 4 if args.quick else 24
    thread_counts = [args.threads] + ([1] if args.threads != 1 else [])

    header = (f"Machine: {machine_summary()}.\n"
              f"fastnn micro-kernel: {_gemm_binding.kernel_name()}; threads: "
              f"{' and '.join(str(t) for t in thread_counts)} for both fastnn and NumPy's BLAS "
              f"(threadpoolctl).")
    print(header, flush=True)

    square_rows, seed_rows, checks = [], [], []
    for threads in (thread_counts if args.only != "seed" else []):
        print(f"\nSquare products, {threads} thread(s): " + " | ".join(SQUARE_HEADERS), flush=True)
        r, c = _square_rows(gemm, (np.float32, np.float64), sizes, threads, repeats_sq[threads],
                            rng)
        square_rows += r
        checks += c if threads == args.threads else []
    for threads in (thread_counts if args.only != "square" else []):
        print(f"\nSeed MLP shapes (float32), {threads} thread(s): " + " | ".join(SEED_HEADERS),
              flush=True)
        r, c = _seed_rows(gemm, threads, repeats_seed, rng)
        seed_rows += r
        checks += c if threads == args.threads else []

    verdict = (f"All targets met at {args.threads} threads." if all(checks) else
               f"{checks.count(False)} of {len(checks)} targets missed at {args.threads} threads.")
    verdict += f" Load average at the end of the run: {os.getloadavg()[0]:.1f}."
    print("\n" + verdict)
    body = "\n".join([
        "Produced by `python -m bench.gemm`. " + header,
        "",
        "### Square products (GFLOP/s at the median time of "
        f"{repeats_sq[args.threads]} interleaved repeats; {repeats_sq[1]} for 1 thread)",
        "",
        markdown_table(SQUARE_HEADERS, square_rows, align="lrrrrrl"),
        "",
        f"### Seed MLP shapes, float32 (microseconds per call, median of {repeats_seed} "
        "interleaved repeats)",
        "",
        "Forward `z = relu(x @ W + b)`, and the backward products `dW = x^T dz`, `dx = dz W^T`, "
        "each with the fused bias + relu epilogue against NumPy's `matmul` + `+=` + `maximum` "
        "(in place); the last three columns compare the bare products.",
        "",
        markdown_table(SEED_HEADERS, seed_rows, align="llllrrrlrrr"),
        "",
        "Reading the ranges: on a shared 2-core machine, a 2-thread call stalls for a "
        "scheduler slice (4-30 ms) whenever another process holds the second core, since "
        "the call ends only when both threads have run. A median in milliseconds, or a range "
        "reaching them, marks such stalls. fastnn notices when its threads repeatedly fail to "
        "finish together and runs the next small products on one thread for a while "
        "(csrc/gemm.c); OpenBLAS keeps waiting.",
        "",
        verdict,
    ])
    if not (args.quick or args.no_write or args.only):
        update_results_section("GEMM", body)
        print("wrote the GEMM section of bench/RESULTS.md")
    return 0 if all(checks) else 1


if __name__ == "__main__":
    sys.exit(main())
