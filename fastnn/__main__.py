"""Command line: ``python -m fastnn demo`` and ``python -m fastnn info``.

``demo`` trains the seed's network (Dense 64 relu, Dense 64 relu, Dense 10
softmax; Adam; sparse categorical cross-entropy) on the digits set that ships
with fastnn, in seconds, and prints the progress, the test accuracy and a
confusion table. ``demo --mnist [PATH]`` runs the seed's exact example on MNIST
(784-64-64-10, 5 epochs, batch 32, pixels scaled to [0, 1]).

``info`` prints the version, the active backend, OpenMP, threads and the GEMM
micro-kernel in use.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time

import numpy as np

DIGITS_EPOCHS = 30
MNIST_EPOCHS = 5


def _build_model(n_inputs: int):
    import fastnn
    model = fastnn.Sequential([
        fastnn.layers.Dense(64, activation="relu", input_shape=(n_inputs,)),
        fastnn.layers.Dense(64, activation="relu"),
        fastnn.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """Counts ``m[i, j]`` of samples of true class i predicted as class j."""
    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return m


def format_confusion(m: np.ndarray) -> str:
    """The confusion matrix as a table: rows are true labels, columns predictions."""
    width = max(4, len(str(int(m.max()))) + 1)
    labels = range(m.shape[0])
    lines = ["confusion matrix (rows: true label, columns: predicted label)",
             "true\\pred" + "".join(f"{j:>{width}}" for j in labels)]
    for i in labels:
        lines.append(f"{i:>9}" + "".join(f"{int(v):>{width}}" for v in m[i]))
    return "\n".join(lines)


def _load(args):
    if args.mnist is None:
        from fastnn.datasets import digits
        (x_train, y_train), (x_test, y_test) = digits.load_data()
        name = (f"digits (embedded, 8x8 images: {len(x_train)} train / {len(x_test)} test samples)")
        return name, x_train, y_train, x_test, y_test
    from fastnn.datasets import mnist
    (x_train, y_train), (x_test, y_test) = mnist.load_data(args.mnist or None)
    # The seed's preprocessing: flatten the 28x28 images, scale pixels to [0, 1].
    x_train = x_train.reshape(-1, 784).astype(np.float32) / 255.0
    x_test = x_test.reshape(-1, 784).astype(np.float32) / 255.0
    return (f"MNIST ({len(x_train)} train / {len(x_test)} test images)", x_train,
            y_train.astype(np.int64), x_test, y_test.astype(np.int64))


def run_demo(args) -> int:
    import fastnn
    from fastnn import config, utils

    if args.backend:
        config.set_backend(args.backend)
    if args.threads:
        config.set_num_threads(args.threads)
    utils.set_random_seed(args.seed)
    name, x_train, y_train, x_test, y_test = _load(args)
    epochs = args.epochs if args.epochs is not None else (
        DIGITS_EPOCHS if args.mnist is None else MNIST_EPOCHS)
    model = _build_model(x_train.shape[1])
    print(f"fastnn {fastnn.__version__} demo: {name}")
    print(f"network {x_train.shape[1]}-64-64-10 (relu, relu, softmax), adam, "
          f"sparse_categorical_crossentropy; {epochs} epoch{'s' if epochs != 1 else ''}, "
          f"batch size {args.batch_size}; "
          f"backend {config.get_backend()}, {config.get_num_threads()} thread(s), seed {args.seed}")
    sys.stdout.flush()

    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=epochs, batch_size=args.batch_size, verbose=args.verbose)
    seconds = time.perf_counter() - start
    probabilities = model.predict(x_test, verbose=0)
    predicted = probabilities.argmax(axis=1)
    correct = int((predicted == y_test).sum())
    print(f"training time: {seconds:.2f} s ({seconds / epochs:.3f} s per epoch)")
    print(f"test accuracy: {correct / len(y_test):.4f} ({correct}/{len(y_test)})")
    print(format_confusion(confusion_matrix(y_test, predicted, 10)))

    if args.save:
        model.save(args.save)
        restored = fastnn.models.load_model(args.save)
        same = np.array_equal(restored.predict(x_test, verbose=0), probabilities)
        print(f"saved to {args.save}; reloaded predictions identical: {same}")
        if not same:
            return 1
    return 0


def run_info(args) -> int:
    import fastnn
    from fastnn import backends, config
    print(f"fastnn {fastnn.__version__}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    error = backends.fast_import_error()
    print(f"backend: {config.get_backend()} (available: {', '.join(backends.available())})")
    if error is not None:
        print(f"fast backend unavailable: {error}")
    print(f"openmp: {config.openmp_enabled()}")
    print(f"threads: {config.get_num_threads()}")
    try:
        from fastnn import _gemm_binding
        kernel = _gemm_binding.kernel_name()
    except ImportError as exc:
        kernel = f"unavailable ({exc})"
    print(f"gemm kernel: {kernel}")
    print(f"floatx: {config.floatx()}")
    return 0


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _verbose(text):
    if text == "auto":
        return text
    if text in ("0", "1", "2"):
        return int(text)
    raise argparse.ArgumentTypeError(f"expected 0, 1, 2 or auto, got {text!r}")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fastnn",
        description="fastnn: small neural networks, as clear as the math and fast on a CPU.")
    sub = parser.add_subparsers(dest="command", metavar="{demo,info}")
    demo = sub.add_parser(
        "demo", help="train the seed's 784-64-64-10 style network and report test accuracy",
        description="Train Dense(64, relu) - Dense(64, relu) - Dense(10, softmax) with Adam on "
                    "the embedded digits set (default) or on MNIST, then print the test "
                    "accuracy and a confusion table.")
    demo.add_argument("--mnist", nargs="?", const="", default=None, metavar="PATH",
                      help="run the seed's example on MNIST: PATH is the folder of the four IDX "
                           "files (default $FASTNN_DATA/mnist or ~/.fastnn/datasets/mnist, "
                           "downloaded when missing)")
    demo.add_argument("--epochs", type=_positive_int, default=None,
                      help=f"epochs (default {DIGITS_EPOCHS} on digits, {MNIST_EPOCHS} on MNIST)")
    demo.add_argument("--batch-size", type=_positive_int, default=32, help="default 32")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--backend", choices=["fast", "reference"], default=None,
                      help="default: fast when compiled")
    demo.add_argument("--threads", type=_positive_int, default=None, help="kernel threads")
    demo.add_argument("--verbose", type=_verbose, default="auto",
                      help="0 silent, 1 progress bar, 2 one line per epoch (default auto)")
    demo.add_argument("--save", metavar="FILE", default=None,
                      help="save the trained model to FILE and check that it reloads")
    demo.set_defaults(func=run_demo)
    info = sub.add_parser("info", help="version, backend, OpenMP, threads, GEMM kernel")
    info.set_defaults(func=run_info)
    return parser


def main(argv=None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
