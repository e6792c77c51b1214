"""Datasets and mini-batch loading for PyTorch-style training loops (``torch.utils.data``).

::

    from fastnn.utils.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=32, shuffle=True)
    for epoch in range(5):
        for xb, yb in loader:          # a new shuffle every epoch
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()

Mini-batch gradient descent visits the training samples in a new random order every
epoch, a batch at a time. A :class:`TensorDataset` over in-memory arrays is batched
by one gather per array (``array[batch_indices]``), not sample by sample: an epoch
never copies the whole data set (the ``x[perm]`` of a hand-written loop) and a batch
of 32 MNIST images costs microseconds. Any other dataset goes through ``dataset[i]``
per sample and :func:`default_collate`, as in PyTorch.

Shuffles draw from fastnn's generator (:func:`fastnn.manual_seed` makes them
reproducible) unless ``generator=`` gives a generator (``fastnn.Generator`` or ``numpy.random.Generator``).
``num_workers`` and ``pin_memory`` are accepted so that PyTorch code runs unchanged:
batches are always made in the calling thread (gathering rows already in memory is
cheaper than sending them between processes) and there is no GPU memory to pin.

Modules: ``dataset`` (Dataset, TensorDataset, Subset, ConcatDataset, random_split),
``sampler`` (the samplers that order the samples and form batches) and
``dataloader`` (DataLoader, default_collate). Everything is importable from here.
"""
from fastnn.utils.data.dataloader import DataLoader, default_collate
from fastnn.utils.data.dataset import ConcatDataset, Dataset, Subset, TensorDataset, random_split
from fastnn.utils.data.sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler,
                                       SubsetRandomSampler, WeightedRandomSampler)

__all__ = ["Dataset", "TensorDataset", "Subset", "ConcatDataset", "random_split",
           "default_collate", "DataLoader", "Sampler", "SequentialSampler", "RandomSampler",
           "SubsetRandomSampler", "WeightedRandomSampler", "BatchSampler"]

# Objects pickled before this module became a package name their classes here.
for _name in __all__:
    if isinstance(globals()[_name], type):
        globals()[_name].__module__ = __name__
del _name
