"""Models: ``Sequential`` (``Model`` is an alias for now), ``save_model`` and ``load_model``.

::

    model = fastnn.models.Sequential([...])
    model.save('model.fnn')
    restored = fastnn.models.load_model('model.fnn')
"""
from __future__ import annotations

from fastnn.models.sequential import Sequential

__all__ = ["Sequential", "Model", "save_model", "load_model"]

Model = Sequential


def save_model(model, filepath, *args, **kwargs):
    """Save ``model`` to ``filepath`` (see :mod:`fastnn.models.saving`)."""
    from fastnn.models import saving
    return saving.save_model(model, filepath, *args, **kwargs)


def load_model(filepath, *args, **kwargs):
    """Load a model saved with :func:`save_model` (see :mod:`fastnn.models.saving`)."""
    from fastnn.models import saving
    return saving.load_model(filepath, *args, **kwargs)
