"""The command line: ``python -m fastnn demo`` / ``info`` / ``--help``."""
import gzip
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastnn import __main__ as cli
from fastnn import config
from fastnn.datasets import mnist

ROOT = Path(__file__).resolve().parents[1]
ACCURACY = re.compile(r"^test accuracy: ([0-9.]+) \((\d+)/(\d+)\)$", re.M)


@pytest.fixture(autouse=True)
def keep_settings(monkeypatch):
    """The demo sets the seed (and may set threads): restore the global settings."""
    threads = config.get_num_threads()
    backend = config.get_backend()

    def refuse(url, timeout=None):
        raise OSError(f"network disabled in tests ({url})")

    monkeypatch.setattr(mnist, "_fetch", refuse)
    yield
    config.set_num_threads(threads)
    config.set_backend(backend)


def _confusion_rows(text):
    lines = text.splitlines()
    start = lines.index("confusion matrix (rows: true label, columns: predicted label)")
    header = lines[start + 1].split()
    assert header == ["true\\pred"] + [str(j) for j in range(10)]
    rows = [list(map(int, line.split())) for line in lines[start + 2: start + 12]]
    assert [r[0] for r in rows] == list(range(10))
    return np.array([r[1:] for r in rows])


def test_demo_in_a_subprocess_learns_the_digits():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "fastnn", "demo"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    match = ACCURACY.search(out)
    assert match, out
    accuracy, correct, total = float(match[1]), int(match[2]), int(match[3])
    assert accuracy > 0.9 and total == 355 and abs(accuracy - correct / total) < 1e-4
    # Not a terminal, so verbose='auto' prints one line per epoch.
    assert re.search(r"^Epoch 30/30\b.*loss: [0-9.]+", out, re.M), out
    table = _confusion_rows(out)
    assert table.sum() == total and np.trace(table) == correct
    np.testing.assert_array_equal(table.sum(axis=1), [35, 36, 35, 36, 36, 36, 36, 35, 34, 36])


def test_confusion_matrix_by_hand():
    m = cli.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    np.testing.assert_array_equal(m, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    text = cli.format_confusion(m)
    assert text.splitlines()[1].split() == ["true\\pred", "0", "1", "2"]
    assert text.splitlines()[4].split() == ["2", "1", "0", "2"]


def test_help_and_no_command(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "demo" in out and "info" in out
    assert cli.main([]) == 2
    with pytest.raises(SystemExit) as info:
        cli.main(["demo", "--epochs", "0"])
    assert info.value.code == 2
    assert "positive integer" in capsys.readouterr().err


def test_info_reports_the_build(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    import fastnn
    assert out.startswith(f"fastnn {fastnn.__version__}\n")
    assert f"backend: {config.get_backend()}" in out
    assert f"openmp: {config.openmp_enabled()}" in out
    assert f"threads: {config.get_num_threads()}" in out
    kernel = re.search(r"^gemm kernel: (.+)$", out, re.M)[1]
    if config.fast_available():
        assert kernel in ("avx2_fma", "portable")


def test_demo_save_reloads_identically(tmp_path, capsys):
    path = tmp_path / "digits.fnn"
    assert cli.main(["demo", "--epochs", "2", "--verbose", "0", "--save", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"saved to {path}; reloaded predictions identical: True" in out
    assert path.is_file()


def _idx(arr):
    return bytes([0, 0, 8, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes()


def test_demo_mnist_path_runs_the_seed_network(tmp_path, capsys):
    # A tiny stand-in for MNIST in the real file format: the 784-64-64-10 path runs.
    rng = np.random.default_rng(0)
    for kind, n in (("train", 64), ("t10k", 20)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        (tmp_path / f"{kind}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images)))
        (tmp_path / f"{kind}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(labels)))
    assert cli.main(["demo", "--mnist", str(tmp_path), "--epochs", "1", "--verbose", "0"]) == 0
    out = capsys.readouterr().out
    assert "MNIST (64 train / 20 test images)" in out
    assert "784-64-64-10" in out and "1 epoch," in out
    match = ACCURACY.search(out)
    assert match and int(match[3]) == 20
    assert _confusion_rows(out).sum() == 20


def test_demo_mnist_offline_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["demo", "--mnist", str(tmp_path / "none"), "--verbose", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: could not download") and "offline" in err
