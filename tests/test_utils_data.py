"""fastnn.utils.data: TensorDataset, Subset, random_split, default_collate, DataLoader."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import nn, optim
from fastnn.utils.data import DataLoader, Dataset, TensorDataset, default_collate, random_split


def arrays(n=10, d=3):
    x = np.arange(n * d, dtype=np.float32).reshape(n, d)
    y = np.arange(n, dtype=np.int64) % 3
    return x, y


class Rows(Dataset):
    """A plain map-style dataset over the same arrays (the sample-by-sample path)."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __getitem__(self, i):
        return fastnn.tensor(self.x[i]), int(self.y[i])

    def __len__(self):
        return len(self.x)


def test_tensor_dataset_samples_and_errors():
    x, y = arrays()
    ds = TensorDataset(x, fastnn.tensor(y))
    assert len(ds) == 10
    xi, yi = ds[3]
    np.testing.assert_array_equal(xi.numpy(), x[3])
    assert yi.item() == y[3]
    assert ds.tensors[0].shape == (10, 3)
    with pytest.raises(ValueError, match=r"tensors\[1\] has 9"):
        TensorDataset(x, y[:9])
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()
    with pytest.raises(ValueError, match=r"tensors\[0\] is a scalar"):
        TensorDataset(np.float32(1.0))


def test_loader_in_order_batches_and_drop_last():
    x, y = arrays(n=10)
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    assert [b[0].shape for b in batches] == [(4, 3), (4, 3), (2, 3)]
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in batches]), x)
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), y)
    dropped = DataLoader(TensorDataset(x, y), batch_size=4, drop_last=True)
    assert len(dropped) == 2 and [b[0].shape[0] for b in dropped] == [4, 4]


def test_shuffle_is_a_new_permutation_each_epoch_and_seeded():
    x, y = arrays(n=50, d=1)
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)

    def epoch():
        return np.concatenate([xb.numpy()[:, 0] for xb, _ in loader]).astype(int).tolist()
    fastnn.manual_seed(3)
    first, second = epoch(), epoch()
    assert sorted(first) == sorted(second) == list(range(50))
    assert first != second
    fastnn.manual_seed(3)
    assert epoch() == first
    own = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True,
                     generator=np.random.default_rng(1))
    again = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True,
                       generator=np.random.default_rng(1))
    for (a, _), (b, _) in zip(own, again):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_whole_array_gathers_equal_sample_by_sample_collation():
    x, y = arrays(n=23, d=4)
    order = np.random.default_rng(0).permutation(23).tolist()
    fast = DataLoader(TensorDataset(x, y), batch_size=5, sampler=order)
    slow = DataLoader(Rows(x, y), batch_size=5, sampler=order)
    count = 0
    for (xf, yf), (xs, ys) in zip(fast, slow):
        np.testing.assert_array_equal(xf.numpy(), xs.numpy())
        np.testing.assert_array_equal(yf.numpy(), ys.numpy())
        assert xf.dtype == xs.dtype and yf.dtype == ys.dtype == np.int64
        count += 1
    assert count == len(fast) == 5


def test_default_collate_keeps_the_structure():
    batch = [{"x": np.ones(2, np.float32) * i, "label": i, "w": 0.5, "name": f"s{i}"}
             for i in range(3)]
    out = default_collate(batch)
    assert out["x"].shape == (3, 2) and out["x"].dtype == np.float32
    assert out["label"].dtype == np.int64 and out["label"].numpy().tolist() == [0, 1, 2]
    assert out["w"].dtype == np.float64
    assert out["name"] == ["s0", "s1", "s2"]
    pairs = default_collate([(np.zeros(2), 1), (np.ones(2), 2)])
    assert isinstance(pairs, tuple) and pairs[0].shape == (2, 2)
    with pytest.raises(ValueError, match="different lengths"):
        default_collate([(1, 2), (3,)])
    with pytest.raises(TypeError, match="cannot batch"):
        default_collate([object(), object()])


def test_random_split_by_sizes_and_fractions():
    x, y = arrays(n=10)
    ds = TensorDataset(x, y)
    a, b = random_split(ds, [7, 3], generator=np.random.default_rng(0))
    assert (len(a), len(b)) == (7, 3)
    assert sorted(np.concatenate([a.indices, b.indices]).tolist()) == list(range(10))
    xa, _ = next(iter(DataLoader(a, batch_size=7)))               # a Subset is gathered too
    np.testing.assert_array_equal(xa.numpy(), x[a.indices])
    np.testing.assert_array_equal(a[2][0].numpy(), x[a.indices[2]])
    parts = random_split(ds, [0.5, 0.3, 0.2])
    assert [len(p) for p in parts] == [5, 3, 2]
    assert [len(p) for p in random_split(TensorDataset(np.zeros(11)), [0.5, 0.5])] == [6, 5]
    with pytest.raises(ValueError, match="sum to 9"):
        random_split(ds, [5, 4])
    with pytest.raises(ValueError, match="sum to 1"):
        random_split(ds, [0.5, 0.2])
    with pytest.raises(TypeError, match="all ints or all fractions"):
        random_split(ds, [5, 0.5])


def test_batch_sampler_and_unbatched_loading():
    x, y = arrays(n=6)
    loader = DataLoader(TensorDataset(x, y), batch_sampler=[[0, 5], [2], [1, 3, 4]])
    assert len(loader) == 3
    assert [b[1].numpy().tolist() for b in loader] == [[y[0], y[5]], [y[2]], [y[1], y[3], y[4]]]
    single = list(DataLoader(TensorDataset(x, y), batch_size=None))
    assert len(single) == 6 and single[4][0].shape == (3,)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"batch_size": 2.0}, TypeError, "batch_size"),
    ({"shuffle": "yes"}, TypeError, "shuffle"),
    ({"shuffle": True, "sampler": [0, 1]}, ValueError, "mutually exclusive with shuffle"),
    ({"batch_sampler": [[0]], "batch_size": 4}, ValueError, "batch_sampler"),
    ({"num_workers": -1}, ValueError, "num_workers"),
    ({"collate_fn": 3}, TypeError, "collate_fn"),
    ({"generator": 0}, TypeError, "generator"),
    ({"sampler": 5}, TypeError, "sampler"),
])
def test_loader_rejects_bad_arguments(kwargs, error, match):
    x, y = arrays()
    with pytest.raises(error, match=match):
        DataLoader(TensorDataset(x, y), **kwargs)


def test_loader_needs_a_map_style_dataset():
    with pytest.raises(TypeError, match="dataset"):
        DataLoader(iter(range(3)))


def test_pytorch_style_training_through_the_loader():
    """The seed's loop over a DataLoader: the loss falls on a separable problem."""
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=3.0, size=(3, 4))
    y = np.arange(300) % 3
    x = (centers[y] + 0.5 * rng.normal(size=(300, 4))).astype(np.float32)
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, num_workers=2)
    losses = []
    for _ in range(5):
        total = 0.0
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * xb.shape[0]
        losses.append(total / len(x))
    assert losses[-1] < 0.5 * losses[0]


def test_lengths_match_pytorch():
    torch = pytest.importorskip("torch")
    from torch.utils import data as tdata
    x, y = arrays(n=23)
    for bs, drop in [(1, False), (5, False), (5, True), (23, True), (30, False)]:
        ours = DataLoader(TensorDataset(x, y), batch_size=bs, drop_last=drop)
        theirs = tdata.DataLoader(tdata.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                                  batch_size=bs, drop_last=drop)
        assert len(ours) == len(theirs)
        assert [b[0].shape[0] for b in ours] == [b[0].shape[0] for b in theirs]
    for lengths in ([0.5, 0.3, 0.2], [0.1] * 10, [1 / 3] * 3):
        ours = [len(p) for p in random_split(TensorDataset(x), lengths)]
        theirs = [len(p) for p in tdata.random_split(tdata.TensorDataset(torch.zeros(23)), lengths)]
        assert ours == theirs


def test_collate_keeps_bools_and_namedtuples():
    from collections import namedtuple
    P = namedtuple("P", "x flag")
    batch = default_collate([P(0.0, False), P(1.0, True), P(2.0, False), P(3.0, True)])
    assert isinstance(batch, P) and batch.flag.dtype == np.bool_
    assert batch.x[batch.flag].numpy().tolist() == [1.0, 3.0]  # a mask, not indices


def test_random_split_takes_an_array_of_lengths():
    parts = random_split(TensorDataset(np.arange(10.0)), np.array([7, 3]),
                         generator=fastnn.Generator().manual_seed(0))
    assert [len(p) for p in parts] == [7, 3]


def test_concat_dataset():
    from fastnn.utils.data import ConcatDataset
    a, b = TensorDataset(np.arange(3.0)), TensorDataset(np.arange(10.0, 12.0))
    both = ConcatDataset([a, b])
    assert len(both) == 5 and both.cumulative_sizes == [3, 5]
    assert [float(both[i][0].item()) for i in range(-5, 5)] == [0, 1, 2, 10, 11] * 2
    xs = [xb.numpy().tolist() for (xb,) in DataLoader(both, batch_size=2)]
    assert xs == [[0.0, 1.0], [2.0, 10.0], [11.0]]
    with pytest.raises(IndexError):
        both[5]
    with pytest.raises(ValueError, match="empty"):
        ConcatDataset([])


def test_samplers():
    from fastnn.utils.data import (BatchSampler, RandomSampler, SequentialSampler,
                                   SubsetRandomSampler, WeightedRandomSampler)
    data = TensorDataset(np.arange(10.0))
    assert list(SequentialSampler(data)) == list(range(10))
    g = fastnn.Generator().manual_seed(3)
    order = list(RandomSampler(data, generator=g))
    assert sorted(order) == list(range(10)) and len(RandomSampler(data)) == 10
    assert order != list(RandomSampler(data, generator=fastnn.Generator().manual_seed(4)))
    many = list(RandomSampler(data, num_samples=25, generator=g))
    assert len(many) == 25 and sorted(many[:10]) == sorted(many[10:20]) == list(range(10))
    drawn = list(RandomSampler(data, replacement=True, num_samples=100, generator=g))
    assert len(drawn) == 100 and set(drawn) <= set(range(10))
    sub = list(SubsetRandomSampler([2, 5, 7], generator=g))
    assert sorted(sub) == [2, 5, 7]
    w = WeightedRandomSampler([0.0, 1.0, 3.0], num_samples=4000, generator=g)
    counts = np.bincount(list(w), minlength=3)
    assert counts[0] == 0 and 0.7 < counts[2] / 4000 < 0.8
    once = list(WeightedRandomSampler([1.0, 0.0, 5.0, 2.0], 3, replacement=False, generator=g))
    assert sorted(once) == [0, 2, 3]
    with pytest.raises(ValueError, match="without replacement"):
        WeightedRandomSampler([1.0, 0.0], 2, replacement=False)
    batches = BatchSampler(SequentialSampler(data), batch_size=4, drop_last=False)
    assert list(batches) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] and len(batches) == 3
    assert len(BatchSampler(range(10), 4, True)) == 2
    loader = DataLoader(data, batch_sampler=BatchSampler(SubsetRandomSampler([1, 3, 5], g), 2, False))
    assert sorted(v for (xb,) in loader for v in xb.numpy().tolist()) == [1.0, 3.0, 5.0]
    loader = DataLoader(data, batch_size=5, sampler=RandomSampler(data, generator=g))
    assert sorted(v for (xb,) in loader for v in xb.numpy().tolist()) == list(range(10))


def test_fractional_indices_are_refused_not_truncated():
    from fastnn.utils.data import Subset
    data = TensorDataset(np.arange(5.0))
    with pytest.raises(TypeError, match="integer indices"):
        Subset(data, [0.5, 3.9])
    with pytest.raises(TypeError, match="integer indices"):
        list(DataLoader(data, sampler=[1.9, 2.7]))
    assert Subset(data, np.array([1.0, 3.0])).indices.tolist() == [1, 3]


def test_collate_of_python_numbers_takes_the_widest_kind():
    assert default_collate([1, 2.5]).numpy().tolist() == [1.0, 2.5]   # was truncated to [1, 2]
    assert default_collate([1, 2]).numpy().dtype == np.int64
    assert default_collate([True, 2]).numpy().dtype == np.int64
    with pytest.raises(TypeError, match="mixes numbers"):
        default_collate([1, "a"])


def test_collate_of_dicts_with_different_keys_says_so():
    with pytest.raises(ValueError, match="different keys"):
        default_collate([{"a": 1}, {"b": 2}])


def test_samplers_refuse_fractional_indices():
    from fastnn.utils.data import BatchSampler, SubsetRandomSampler
    with pytest.raises(TypeError, match="integer indices"):
        SubsetRandomSampler([0.5, 1.7])
    with pytest.raises(TypeError, match="integer indices"):
        list(BatchSampler([0.5, 1.7, 3.9], 2, False))
    assert list(BatchSampler([4, 1, 3], 2, True)) == [[4, 1]]
