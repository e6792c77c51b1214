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
    epochs_by_key : dict[str, list[int]]
        For each key of :attr:`history`, the epoch indices its values belong to
        (``history.history[key][i]`` is from epoch ``epochs_by_key[key][i]``).
        The same as :attr:`epoch` for keys logged every epoch; shorter for the
        ``'val_'`` keys when ``fit`` validated only some epochs
        (``validation_freq``).

    A History passed to a second ``fit`` keeps appending to both. (Keras keeps
    appending to ``history`` but restarts ``epoch``, so that the two no longer
    line up.)
    """

    supports_chunked_batches = True

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []
        self.epochs_by_key = {}

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
            self.epochs_by_key.setdefault(key, []).append(epoch)
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

        Each curve is drawn at the epochs it was logged: with ``fit(...,
        validation_freq=k)`` the validation points sit at epochs k, 2k, ...
        (:attr:`epochs_by_key`), not at 1, 2, ...

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
        for ax, key in zip(axes[0], keys):
            for prefix, label in (("", "training"), ("val_", "validation")):
                values = self.history.get(prefix + key)
                if values is None:
                    continue
                ax.plot(self._plot_epochs(prefix + key, values), values, marker="o",
                        markersize=3, label=label)
            ax.set_title(key)
            ax.set_xlabel("epoch")
            ax.grid(True, alpha=0.3)
            ax.legend()
        fig.tight_layout()
        return fig

    def _plot_epochs(self, key, values):
        """The 1-based epoch numbers at which ``values`` (the list of ``key``) were logged."""
        # A History filled by hand (or made before epochs_by_key existed) has no
        # per-key record; fall back to the epoch list, then to 1..n.
        recorded = getattr(self, "epochs_by_key", {}).get(key)
        if recorded is not None and len(recorded) == len(values):
            return [e + 1 for e in recorded]
        if len(self.epoch) == len(values):
            return [e + 1 for e in self.epoch]
        return list(range(1, len(values) + 1))
