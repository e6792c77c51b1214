"""History: the per-epoch record that ``fit`` returns, and its plot."""
from __future__ import annotations

from fastnn.callbacks.base import Callback

__all__ = ["History"]


class History(Callback):
    """Records the epoch logs: ``history.history['loss'][i]`` is the loss of epoch ``i``.

    Attributes
    ----------
    history : dict[str, list[float]]
        One list per key of the epoch logs (``'loss'``, each metric, their
        ``'val_'`` twins, ``'learning_rate'`` when a learning-rate callback adds it).
    epoch : list[int]
        The epoch indices recorded (they start at ``initial_epoch``).

    A History passed to a second ``fit`` keeps appending to both. (Keras keeps
    appending to ``history`` but restarts ``epoch``, so that the two no longer
    line up.)
    """

    supports_chunked_batches = True

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        if self.model is not None:
            try:
                self.model.history = self
            except AttributeError:  # a model that forbids new attributes
                pass

    def plot(self, keys=None, figsize=None):
        """Draw the training curves: one panel per quantity, training and validation together.

        Parameters
        ----------
        keys : list of str, optional
            Quantities to draw (without the ``val_`` prefix), e.g.
            ``['loss', 'accuracy']``. Default: every recorded quantity, loss first.
        figsize : tuple, optional
            Matplotlib figure size; default 4.5 inches wide per panel.

        Returns
        -------
        matplotlib.figure.Figure

        Raises
        ------
        ImportError
            When matplotlib is not installed (``pip install fastnn[plot]``).
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:
            raise ImportError(
                "History.plot() needs matplotlib, an optional dependency of fastnn: "
                "pip install fastnn[plot]  (or: pip install matplotlib)") from exc
        base = []
        for key in self.history:
            name = key[4:] if key.startswith("val_") else key
            if name not in base:
                base.append(name)
        if keys is None:
            keys = sorted(base, key=lambda k: (k != "loss", base.index(k)))
        else:
            if isinstance(keys, str):
                keys = [keys]
            unknown = [k for k in keys if k not in base]
            if unknown:
                raise ValueError(f"keys {unknown} were not recorded; recorded: {base}")
        if not keys:
            raise ValueError("nothing to plot: the history is empty (was fit run?)")
        if figsize is None:
            figsize = (4.5 * len(keys), 3.5)
        fig, axes = plt.subplots(1, len(keys), figsize=figsize, squeeze=False)
        epochs = [e + 1 for e in self.epoch] if self.epoch else None
        for ax, key in zip(axes[0], keys):
            for prefix, label in (("", "training"), ("val_", "validation")):
                values = self.history.get(prefix + key)
                if values is None:
                    continue
                x = epochs if epochs is not None and len(epochs) == len(values) else range(1, len(values) + 1)
                ax.plot(list(x), values, marker="o", markersize=3, label=label)
            ax.set_title(key)
            ax.set_xlabel("epoch")
            ax.grid(True, alpha=0.3)
            ax.legend()
        fig.tight_layout()
        return fig
