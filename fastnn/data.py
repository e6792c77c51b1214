"""Splitting data: hold-out, k-fold, stratified k-fold, cross-validation, mini-batches.

The seed names three ways to split data: at random, stratified (every part keeps
the class proportions of the whole) and k-fold. This module follows
scikit-learn's names, argument order, defaults and semantics, so that code and
habits carry over:

>>> import numpy as np
>>> from fastnn.data import train_test_split, KFold, StratifiedKFold
>>> x, y = np.arange(40.0).reshape(20, 2), np.arange(20) % 2
>>> x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2,
...                                                     stratify=y, random_state=0)
>>> x_train.shape, np.bincount(y_test)
((16, 2), array([2, 2]))
>>> [len(test_idx) for train_idx, test_idx in StratifiedKFold(n_splits=5).split(x, y)]
[4, 4, 4, 4, 4]

One difference: randomness comes from :func:`fastnn.utils.make_rng` (fastnn's
Philox generator), not from NumPy's legacy ``RandomState``, so a shuffled split for a
given ``random_state`` is not the same as scikit-learn's. Unshuffled splits
(``KFold()``, ``StratifiedKFold()``, ``train_test_split(..., shuffle=False)``) are
index for index identical to scikit-learn's. ``random_state=None`` draws from
fastnn's generator, so :func:`fastnn.utils.set_random_seed` makes every split
reproducible.
"""
from __future__ import annotations

import math
import numbers
import time
import warnings

import numpy as np

from fastnn import utils
from fastnn._validation import check_bool, check_int

__all__ = ["train_test_split", "KFold", "StratifiedKFold", "cross_validate", "batches"]


# --------------------------------------------------------------------------- helpers

def _num_samples(a, name: str) -> int:
    """len(a) for an array-like with a first dimension, else a TypeError naming it."""
    if isinstance(a, (str, bytes)) or not hasattr(a, "__len__"):
        raise TypeError(f"{name} must be an array-like with a length, got {type(a).__name__}")
    shape = getattr(a, "shape", None)
    if shape is not None and len(shape) == 0:
        raise TypeError(f"{name} must be an array-like with a length, got a 0-d array")
    return len(a)


def _take(a, indices: np.ndarray):
    """``a`` restricted to the rows ``indices``, keeping its kind (array, list, frame)."""
    if a is None:
        return None
    if hasattr(a, "iloc"):  # pandas objects index rows by position through .iloc
        return a.iloc[indices]
    if isinstance(a, np.ndarray) or hasattr(a, "__array__") and hasattr(a, "shape"):
        return a[indices]
    return [a[i] for i in indices]


def _check_random_state(random_state, name: str = "random_state"):
    """Validate ``random_state`` (None, an int >= 0 or a generator) early."""
    if random_state is None or utils.is_generator(random_state):
        return random_state
    if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral):
        raise TypeError(f"{name} must be None, an int or a generator, got {random_state!r}")
    if random_state < 0:
        raise ValueError(f"{name} must be >= 0, got {random_state}")
    return int(random_state)


def _size_kind(value, name: str):
    """'i' for an int size, 'f' for a float fraction, None for None; else TypeError."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a float in (0, 1), an int or None, got {value!r}")
    if isinstance(value, numbers.Integral):
        return "i"
    if isinstance(value, numbers.Real):
        return "f"
    raise TypeError(f"{name} must be a float in (0, 1), an int or None, got {value!r}")


def _validate_split_sizes(n_samples: int, test_size, train_size, default_test_size=0.25):
    """(n_train, n_test) from scikit-learn's size arguments, with its rules and errors.

    A float is a fraction of ``n_samples`` (the test part rounds up, the train part
    rounds down); an int is an absolute count; ``None`` is the complement of the
    other one (``test_size`` defaults to ``default_test_size`` when both are None).
    """
    if test_size is None and train_size is None:
        test_size = default_test_size
    test_kind = _size_kind(test_size, "test_size")
    train_kind = _size_kind(train_size, "train_size")
    for value, kind, name in ((test_size, test_kind, "test_size"),
                              (train_size, train_kind, "train_size")):
        if kind == "i" and not 0 < value < n_samples:
            raise ValueError(
                f"{name}={value} should be either positive and smaller than the number of "
                f"samples {n_samples} or a float in the (0, 1) range"
            )
        if kind == "f" and not 0.0 < value < 1.0:
            raise ValueError(
                f"{name}={value} should be either positive and smaller than the number of "
                f"samples {n_samples} or a float in the (0, 1) range"
            )
    if test_kind == "f" and train_kind == "f" and train_size + test_size > 1:
        raise ValueError(
            f"the sum of test_size and train_size = {train_size + test_size} should be in "
            "the (0, 1) range; reduce test_size and/or train_size"
        )
    n_test = math.ceil(test_size * n_samples) if test_kind == "f" else test_size
    n_train = math.floor(train_size * n_samples) if train_kind == "f" else train_size
    if train_size is None:
        n_train = n_samples - n_test
    elif test_size is None:
        n_test = n_samples - n_train
    if n_train + n_test > n_samples:
        raise ValueError(
            f"the sum of train_size and test_size = {n_train + n_test} should be smaller than "
            f"the number of samples {n_samples}; reduce test_size and/or train_size"
        )
    n_train, n_test = int(n_train), int(n_test)
    if n_train == 0:
        raise ValueError(
            f"with n_samples={n_samples}, test_size={test_size} and train_size={train_size}, "
            "the train set would be empty; adjust test_size or train_size"
        )
    if n_test == 0:
        raise ValueError(
            f"with n_samples={n_samples}, test_size={test_size} and train_size={train_size}, "
            "the test set would be empty; adjust test_size or train_size"
        )
    return n_train, n_test


def _class_codes(y, name: str) -> np.ndarray:
    """Integer codes (0..k-1, in sorted class order) for the classes of ``y``.

    A 2-D ``y`` is taken row-wise: each distinct row is a class (one-hot labels,
    multi-output targets), as scikit-learn does for stratification.
    """
    arr = np.asarray(y)
    if arr.dtype == object:
        try:
            arr = arr.astype(str)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must hold class labels (numbers or strings)") from None
    if arr.ndim == 0:
        raise TypeError(f"{name} must be an array-like of class labels, got a scalar")
    if arr.ndim == 2:
        if arr.shape[1] == 1:
            arr = arr[:, 0]
        else:
            _, codes = np.unique(arr, axis=0, return_inverse=True)
            return codes.reshape(-1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (or 2-D, one row per sample), got shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite labels")
    _, codes = np.unique(arr, return_inverse=True)
    return codes.reshape(-1)


def _approximate_mode(class_counts: np.ndarray, n_draws: int, rng) -> np.ndarray:
    """How many of ``n_draws`` to take from each class so the counts keep the
    class proportions: the floor of each exact share, then the leftover draws go
    to the largest remainders (ties broken at random). scikit-learn's rule."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.nonzero(remainder == value)
            add_now = min(len(inds), need_to_add)
            floored[rng.choice(inds, size=add_now, replace=False)] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(np.int64)


def _stratified_split(codes: np.ndarray, n_train: int, n_test: int, rng):
    """One stratified random split (scikit-learn's StratifiedShuffleSplit)."""
    class_counts = np.bincount(codes)
    n_classes = len(class_counts)
    if class_counts.min() < 2:
        raise ValueError(
            "stratify: the least populated class has only 1 member, which is too few; "
            "every class needs at least 2 members"
        )
    if n_train < n_classes:
        raise ValueError(f"train_size = {n_train} should be >= the number of classes = {n_classes}")
    if n_test < n_classes:
        raise ValueError(f"test_size = {n_test} should be >= the number of classes = {n_classes}")
    class_indices = np.split(np.argsort(codes, kind="mergesort"), np.cumsum(class_counts)[:-1])
    n_i = _approximate_mode(class_counts, n_train, rng)
    t_i = _approximate_mode(class_counts - n_i, n_test, rng)
    train, test = [], []
    for i in range(n_classes):
        members = class_indices[i][rng.permutation(class_counts[i])]
        train.append(members[: n_i[i]])
        test.append(members[n_i[i]: n_i[i] + t_i[i]])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


# --------------------------------------------------------------------------- hold-out

def train_test_split(*arrays, test_size=None, train_size=None, random_state=None, shuffle=True,
                     stratify=None):
    """Split arrays into random train and test subsets (scikit-learn's function).

    Parameters
    ----------
    *arrays : sequence of array-likes
        Arrays (NumPy arrays, lists, pandas objects) with the same first dimension.
    test_size : float, int or None
        A float in (0, 1) is the fraction of samples in the test set (rounded up); an
        int is its size. ``None``: the complement of ``train_size``, or 0.25 if that is
        None too.
    train_size : float, int or None
        Same for the train set (a fraction is rounded down); ``None``: the complement
        of ``test_size``.
    random_state : int, generator (fastnn.utils.Generator or numpy.random.Generator) or None
        Seed of the shuffle. None draws from fastnn's generator
        (:func:`fastnn.utils.set_random_seed`).
    shuffle : bool
        Shuffle before splitting. Without shuffling the first ``n_train`` samples are
        the train set and the next ``n_test`` the test set.
    stratify : array-like or None
        Class labels: the split keeps their proportions in both parts (each class
        is split as closely as integer counts allow). Requires ``shuffle=True``.

    Returns
    -------
    list
        ``[a_train, a_test, b_train, b_test, ...]``, two entries per input array, each
        the same kind as its input.

    Raises
    ------
    ValueError
        No arrays, mismatched lengths, sizes outside their range or summing to more
        than the data, an empty train set, a class with a single member when
        stratifying, ``stratify`` with ``shuffle=False``.
    TypeError
        Sizes that are not numbers, a non-bool ``shuffle``, a bad ``random_state``.

    Examples
    --------
    >>> import numpy as np
    >>> x, y = np.zeros((10, 3)), np.array([0, 1] * 5)
    >>> x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2,
    ...                                                     stratify=y, random_state=0)
    >>> x_train.shape, sorted(y_test.tolist())
    ((8, 3), [0, 1])
    """
    if not arrays:
        raise ValueError("train_test_split: at least one array is required")
    lengths = [None if a is None else _num_samples(a, f"arrays[{i}]") for i, a in enumerate(arrays)]
    known = [n for n in lengths if n is not None]
    if not known:
        raise ValueError("train_test_split: all arrays are None")
    if len(set(known)) > 1:
        raise ValueError(f"train_test_split: arrays have inconsistent numbers of samples: {known}")
    n_samples = known[0]
    shuffle = check_bool(shuffle, "shuffle")
    random_state = _check_random_state(random_state)
    n_train, n_test = _validate_split_sizes(n_samples, test_size, train_size)

    if not shuffle:
        if stratify is not None:
            raise ValueError("stratify: a stratified split needs shuffle=True")
        train = np.arange(n_train)
        test = np.arange(n_train, n_train + n_test)
    elif stratify is not None:
        if _num_samples(stratify, "stratify") != n_samples:
            raise ValueError(
                f"stratify has {len(stratify)} labels but the arrays have {n_samples} samples"
            )
        codes = _class_codes(stratify, "stratify")
        train, test = _stratified_split(codes, n_train, n_test, utils.make_rng(random_state))
    else:
        permutation = utils.make_rng(random_state).permutation(n_samples)
        test = permutation[:n_test]
        train = permutation[n_test: n_test + n_train]

    out = []
    for a in arrays:
        out.extend((_take(a, train), _take(a, test)))
    return out


# --------------------------------------------------------------------------- k-fold

class _BaseKFold:
    """Shared checks and the split loop of the k-fold splitters."""

    def __init__(self, n_splits=5, *, shuffle=False, random_state=None):
        self.n_splits = check_int(n_splits, "n_splits")
        if self.n_splits < 2:
            raise ValueError(
                f"n_splits must be >= 2 (k-fold needs at least one train/test split), "
                f"got {self.n_splits}"
            )
        self.shuffle = check_bool(shuffle, "shuffle")
        self.random_state = _check_random_state(random_state)
        if not self.shuffle and random_state is not None:
            raise ValueError(
                "random_state has no effect since shuffle is False; leave random_state=None "
                "or set shuffle=True"
            )

    def get_n_splits(self, x=None, y=None, groups=None) -> int:
        """The number of train/test splits (``n_splits``)."""
        return self.n_splits

    def _check_n_samples(self, x) -> int:
        n_samples = _num_samples(x, "x")
        if self.n_splits > n_samples:
            raise ValueError(
                f"n_splits={self.n_splits} cannot be greater than the number of samples "
                f"n_samples={n_samples}"
            )
        return n_samples

    def _test_folds(self, n_samples: int, y) -> np.ndarray:
        """The fold number of every sample."""
        raise NotImplementedError

    def split(self, x, y=None, groups=None):
        """Yield ``(train_idx, test_idx)`` index arrays, one pair per fold.

        Both index arrays are sorted (scikit-learn's order). Every sample is in
        exactly one test fold.
        """
        n_samples = self._check_n_samples(x)
        folds = self._test_folds(n_samples, y)
        indices = np.arange(n_samples)
        for k in range(self.n_splits):
            in_test = folds == k
            yield indices[~in_test], indices[in_test]

    def __repr__(self):
        return (f"{type(self).__name__}(n_splits={self.n_splits}, shuffle={self.shuffle}, "
                f"random_state={self.random_state!r})")


class KFold(_BaseKFold):
    """K-fold cross-validation splitter (scikit-learn's ``KFold``).

    The samples are split into ``n_splits`` consecutive folds (after a shuffle if
    ``shuffle``); each fold is the test set once while the others train. The first
    ``n_samples % n_splits`` folds have ``n_samples // n_splits + 1`` samples, the
    others ``n_samples // n_splits``.

    Parameters
    ----------
    n_splits : int, default 5
        Number of folds, >= 2.
    shuffle : bool, default False
        Shuffle the samples before cutting them into folds.
    random_state : int, generator (fastnn.utils.Generator or numpy.random.Generator) or None
        Seed of the shuffle; only allowed with ``shuffle=True``.

    Examples
    --------
    >>> for train_idx, test_idx in KFold(n_splits=3).split(np.zeros(7)):
    ...     print(test_idx)
    [0 1 2]
    [3 4]
    [5 6]
    """

    def _test_folds(self, n_samples, y):
        order = np.arange(n_samples)
        if self.shuffle:
            utils.make_rng(self.random_state).shuffle(order)
        fold_sizes = np.full(self.n_splits, n_samples // self.n_splits, dtype=np.int64)
        fold_sizes[: n_samples % self.n_splits] += 1
        folds = np.empty(n_samples, dtype=np.int64)
        folds[order] = np.repeat(np.arange(self.n_splits), fold_sizes)
        return folds


class StratifiedKFold(_BaseKFold):
    """Stratified k-fold splitter (scikit-learn's ``StratifiedKFold``).

    Each test fold keeps the class proportions of ``y`` as closely as integer counts
    allow: the samples of every class are dealt to the folds round-robin by count,
    in blocks that keep the data's order (then shuffled within the class if
    ``shuffle``). Fold sizes differ by at most one sample per class.

    Parameters
    ----------
    n_splits : int, default 5
        Number of folds, >= 2; may not exceed the size of every class.
    shuffle : bool, default False
        Shuffle each class's samples before dealing them to the folds.
    random_state : int, generator (fastnn.utils.Generator or numpy.random.Generator) or None
        Seed of the shuffle; only allowed with ``shuffle=True``.

    Warns
    -----
    UserWarning
        When the smallest class has fewer members than ``n_splits`` (some folds then
        lack that class).
    """

    def split(self, x, y, groups=None):
        """Yield ``(train_idx, test_idx)`` index arrays, stratified by ``y``."""
        if y is None:
            raise ValueError("y: StratifiedKFold needs the class labels y to stratify")
        return super().split(x, y, groups)

    def _test_folds(self, n_samples, y):
        if _num_samples(y, "y") != n_samples:
            raise ValueError(f"y has {len(y)} labels but x has {n_samples} samples")
        arr = np.asarray(y)
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise ValueError(
                f"y must be a 1-D array of class labels for StratifiedKFold, got shape {arr.shape}"
            )
        if arr.dtype.kind == "f" and not np.all(arr == np.round(arr)):
            raise ValueError("y: StratifiedKFold needs class labels, got continuous values")
        # Classes are numbered by order of first appearance (scikit-learn's rule), so
        # the round-robin allocation below does not depend on how labels sort.
        _, first_index, inverse = np.unique(_class_codes(arr, "y"), return_index=True,
                                            return_inverse=True)
        _, class_perm = np.unique(first_index, return_inverse=True)
        codes = class_perm[inverse.reshape(-1)]
        n_classes = len(first_index)
        counts = np.bincount(codes, minlength=n_classes)
        if np.all(self.n_splits > counts):
            raise ValueError(
                f"n_splits={self.n_splits} cannot be greater than the number of members "
                "in each class"
            )
        if self.n_splits > counts.min():
            warnings.warn(
                f"the least populated class in y has only {counts.min()} members, which is "
                f"less than n_splits={self.n_splits}",
                UserWarning, stacklevel=3,
            )
        # Deal the class-sorted samples round-robin to the folds: fold k gets the
        # classes of positions k, k + n_splits, ... That fixes each fold's count
        # per class; the samples of a class then fill its folds in data order.
        by_class = np.sort(codes)
        allocation = np.array([np.bincount(by_class[k:: self.n_splits], minlength=n_classes)
                               for k in range(self.n_splits)])
        rng = utils.make_rng(self.random_state) if self.shuffle else None
        folds = np.empty(n_samples, dtype=np.int64)
        for c in range(n_classes):
            folds_for_class = np.repeat(np.arange(self.n_splits), allocation[:, c])
            if rng is not None:
                rng.shuffle(folds_for_class)
            folds[codes == c] = folds_for_class
        return folds


# --------------------------------------------------------------------------- cross-validation

def _is_class_labels(y) -> np.ndarray | None:
    """Class codes when ``y`` looks like class labels (ints/bools, or one-hot rows), else None."""
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim == 1 and arr.dtype.kind in "biu":
        return arr
    if (arr.ndim == 2 and arr.dtype.kind in "biuf" and arr.shape[1] > 1
            and np.all((arr == 0) | (arr == 1)) and np.all(arr.sum(axis=1) == 1)):
        return arr.argmax(axis=1)
    return None


def _check_cv(cv, y):
    """A splitter from ``cv``: an int (stratified for class labels), a splitter or an iterable."""
    if cv is None:
        cv = 5
    if isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
        labels = _is_class_labels(y)
        if labels is not None:
            return StratifiedKFold(cv), labels
        return KFold(cv), y
    if isinstance(cv, (str, bytes, bool)):  # str has a split() method too
        cv_error = True
    elif hasattr(cv, "split"):
        return cv, y
    else:
        cv_error = not hasattr(cv, "__iter__")
    if cv_error:
        raise TypeError(
            f"cv must be an int, a splitter with a split(x, y) method or an iterable of "
            f"(train_idx, test_idx) pairs, got {cv!r}"
        )
    return _FixedSplits(list(cv)), y


class _FixedSplits:
    """A splitter over precomputed (train_idx, test_idx) pairs."""

    def __init__(self, pairs):
        self.pairs = pairs

    def split(self, x, y=None, groups=None):
        for i, pair in enumerate(self.pairs):
            try:
                train, test = pair
            except (TypeError, ValueError):
                raise TypeError(f"cv[{i}] must be a (train_idx, test_idx) pair") from None
            yield np.asarray(train), np.asarray(test)


def _metric_name(s):
    """The name of ``s`` if it is one of fastnn.metrics' functions, else ``s``.

    Those functions take ``(y_true, y_pred)``, not a scorer's ``(model, x, y)``:
    passed as scoring they mean the metric of that name.
    """
    from fastnn.metrics import _function_name
    name = _function_name(s) if callable(s) else None
    return s if name is None else name


def _scorers(scoring):
    """Normalize ``scoring`` to None (use evaluate) or a dict name -> scorer(model, x, y)."""
    if scoring is None:
        return None
    scoring = _metric_name(scoring)
    if callable(scoring) and not isinstance(scoring, str):
        return {"score": scoring}
    if isinstance(scoring, str):
        scoring = [scoring]
    if isinstance(scoring, dict):
        items = [(name, _metric_name(s)) for name, s in scoring.items()]
    elif isinstance(scoring, (list, tuple)):
        scoring = [_metric_name(s) for s in scoring]
        items = [(s if isinstance(s, str) else getattr(s, "name", f"score_{i}"), s)
                 for i, s in enumerate(scoring)]
    else:
        raise TypeError(
            f"scoring must be None, a callable, a metric name or a list/dict of them, got {scoring!r}"
        )
    out = {}
    for name, s in items:
        if not isinstance(name, str):
            raise TypeError(f"scoring: score names must be strings, got {name!r}")
        if callable(s) and not hasattr(s, "update_state"):
            out[name] = s
        elif isinstance(s, str) or hasattr(s, "update_state"):
            out[name] = _metric_scorer(s)
        else:
            raise TypeError(f"scoring[{name!r}] must be a metric name, a metric or a callable")
    return out


def _metric_scorer(metric):
    """scorer(model, x, y): a fresh copy of ``metric`` over the model's predictions."""
    def scorer(model, x, y):
        from fastnn import metrics
        m = metrics.get(metric, loss=getattr(model, "loss", None))
        if hasattr(m, "reset_state"):
            m.reset_state()
        m.update_state(y, model.predict(x, verbose=0))
        return m.result()
    return scorer


def cross_validate(build_fn, x, y, cv=5, fit_kwargs=None, scoring=None):
    """Evaluate a model by cross-validation: fit a fresh model on each fold.

    Parameters
    ----------
    build_fn : callable
        ``build_fn()`` returns a new, compiled model (a fresh one each call, so no
        fold sees weights trained on another fold's test data).
    x, y : array-like
        Inputs and targets.
    cv : int, splitter or iterable, default 5
        An int k means k folds: :class:`StratifiedKFold` when ``y`` holds class labels
        (an integer or bool dtype, or one-hot rows), :class:`KFold` otherwise (both
        unshuffled, as scikit-learn). A splitter (anything with ``split(x, y)``) or an
        iterable of ``(train_idx, test_idx)`` pairs is used as given.
    fit_kwargs : dict or None
        Keyword arguments for ``model.fit`` (default ``verbose=0``).
    scoring : None, str, callable, list or dict
        None: the model's own ``evaluate`` (its loss and compiled metrics, keys
        ``test_loss``, ``test_accuracy``...). A metric name (``'accuracy'``) or a
        list of names: those metrics over ``model.predict`` of the test fold (a
        function of :mod:`fastnn.metrics`, such as ``fastnn.metrics.auc``, means
        its name). A callable ``scoring(model, x_test, y_test) -> float`` (key
        ``test_score``); a dict maps names to names or callables.

    Returns
    -------
    dict of numpy.ndarray
        ``fit_time`` and ``score_time`` (seconds) and ``test_<name>`` for each score,
        one entry per fold, in fold order.
    """
    if not callable(build_fn):
        raise TypeError(f"build_fn must be a callable returning a compiled model, got {build_fn!r}")
    if fit_kwargs is None:
        fit_kwargs = {}
    if not isinstance(fit_kwargs, dict):
        raise TypeError(f"fit_kwargs must be a dict or None, got {type(fit_kwargs).__name__}")
    fit_kwargs = {"verbose": 0, **fit_kwargs}
    n_samples = _num_samples(x, "x")
    if _num_samples(y, "y") != n_samples:
        raise ValueError(f"mismatched number of samples: x has {n_samples}, y has {len(y)}")
    scorers = _scorers(scoring)
    splitter, split_y = _check_cv(cv, y)
    x_arr, y_arr = np.asarray(x), np.asarray(y)

    results: dict[str, list] = {"fit_time": [], "score_time": []}
    for train, test in splitter.split(x_arr, split_y):
        model = build_fn()
        if not hasattr(model, "fit"):
            raise TypeError(f"build_fn must return a model with fit(), got {type(model).__name__}")
        start = time.perf_counter()
        model.fit(x_arr[train], y_arr[train], **fit_kwargs)
        fitted = time.perf_counter()
        if scorers is None:
            scores = model.evaluate(x_arr[test], y_arr[test], verbose=0, return_dict=True)
        else:
            scores = {}
            for name, scorer in scorers.items():
                value = scorer(model, x_arr[test], y_arr[test])
                if isinstance(value, dict):
                    scores.update({f"{name}_{k}" if name != "score" else k: v
                                   for k, v in value.items()})
                else:
                    scores[name] = value
        results["fit_time"].append(fitted - start)
        results["score_time"].append(time.perf_counter() - fitted)
        for name, value in scores.items():
            results.setdefault(f"test_{name}", []).append(float(value))
    return {k: np.asarray(v, dtype=np.float64) for k, v in results.items()}


# --------------------------------------------------------------------------- mini-batches

def batches(x, y=None, batch_size=32, shuffle=True, seed=None):
    """Yield mini-batches of ``x`` (and ``y``), for hand-written training loops.

    Parameters
    ----------
    x : array-like
        Inputs, first dimension = samples.
    y : array-like or None
        Targets with the same number of samples.
    batch_size : int, default 32
        Samples per batch; the last batch holds the remainder (it is smaller when
        ``batch_size`` does not divide the number of samples).
    shuffle : bool, default True
        Visit the samples in a random order (a new order each call).
    seed : int, generator (fastnn.utils.Generator or numpy.random.Generator) or None
        Seed of the shuffle; None draws from fastnn's generator.

    Yields
    ------
    numpy.ndarray or tuple of numpy.ndarray
        ``x_batch`` when ``y`` is None, else ``(x_batch, y_batch)``.

    Examples
    --------
    >>> import numpy as np
    >>> x, y = np.zeros((70, 4)), np.arange(70)
    >>> [len(yb) for xb, yb in batches(x, y, batch_size=32, seed=0)]
    [32, 32, 6]

    In a PyTorch-style loop::

        for xb, yb in batches(x_train, y_train, batch_size=32, seed=0):
            optimizer.zero_grad(); criterion(model(xb), yb).backward(); optimizer.step()
    """
    n = _num_samples(x, "x")
    if n == 0:
        raise ValueError("x is empty; expected at least one sample")
    if y is not None and _num_samples(y, "y") != n:
        raise ValueError(f"mismatched number of samples: x has {n}, y has {len(y)}")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    shuffle = check_bool(shuffle, "shuffle")
    seed = _check_random_state(seed, "seed")
    x_arr = np.asarray(x)
    y_arr = None if y is None else np.asarray(y)
    # Checks and the draw of the order happen here, at the call (a generator body
    # would run only at the first next()), so errors and randomness follow call order.
    order = utils.make_rng(seed).permutation(n) if shuffle else None
    return _iter_batches(x_arr, y_arr, n, batch_size, order)


def _iter_batches(x, y, n, batch_size, order):
    for start in range(0, n, batch_size):
        if order is None:
            sel = slice(start, start + batch_size)
        else:
            sel = order[start: start + batch_size]
        yield x[sel] if y is None else (x[sel], y[sel])
