"""Data sets: ``digits`` (shipped with fastnn) and ``mnist`` (IDX files, downloaded once).

::

    from fastnn.datasets import digits, mnist
    (x_train, y_train), (x_test, y_test) = digits.load_data()   # 8x8 digits, no download
    (x_train, y_train), (x_test, y_test) = mnist.load_data()    # 28x28, Keras's layout

Both return ``((x_train, y_train), (x_test, y_test))`` as ``keras.datasets`` does.
"""
from fastnn.datasets import digits, mnist

__all__ = ["digits", "mnist"]
