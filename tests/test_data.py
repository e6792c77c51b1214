"""fastnn.data: hold-out, k-fold and stratified splits, cross-validation, batches.

Expected index sets for the unshuffled splitters are worked out by hand from
scikit-learn's documented rules (fold sizes n//k + 1 for the first n%k folds;
stratified folds dealt round-robin over the class-sorted labels).
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastnn import utils
from fastnn.data import KFold, StratifiedKFold, batches, cross_validate, train_test_split

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- train_test_split

def test_default_split_is_a_quarter_test_rounded_up():
    x = np.arange(10)
    x_train, x_test = train_test_split(x, random_state=0)
    assert len(x_test) == 3 and len(x_train) == 7  # ceil(0.25 * 10) = 3
    assert sorted(np.concatenate([x_train, x_test])) == list(range(10))


def test_return_order_is_train_test_per_array_and_rows_stay_aligned():
    x = np.arange(20).reshape(10, 2)
    y = np.arange(10) * 10
    names = [f"s{i}" for i in range(10)]
    x_tr, x_te, y_tr, y_te, n_tr, n_te = train_test_split(x, y, names, test_size=4, random_state=3)
    assert x_tr.shape == (6, 2) and x_te.shape == (4, 2)
    np.testing.assert_array_equal(x_tr[:, 0] // 2 * 10, y_tr)
    np.testing.assert_array_equal(x_te[:, 0] // 2 * 10, y_te)
    assert isinstance(n_tr, list) and n_tr == [f"s{v // 10}" for v in y_tr]
    assert n_te == [f"s{v // 10}" for v in y_te]


def test_sizes_follow_sklearn_rounding():
    x = np.arange(11)
    tr, te = train_test_split(x, test_size=0.3, random_state=0)   # ceil(3.3) = 4
    assert (len(tr), len(te)) == (7, 4)
    tr, te = train_test_split(x, train_size=0.3, random_state=0)  # floor(3.3) = 3
    assert (len(tr), len(te)) == (3, 8)
    tr, te = train_test_split(x, train_size=0.5, test_size=0.2, random_state=0)  # 5 and 3
    assert (len(tr), len(te)) == (5, 3)
    tr, te = train_test_split(x, train_size=4, test_size=2, random_state=0)
    assert (len(tr), len(te)) == (4, 2)


def test_no_shuffle_takes_the_head_then_the_next_part():
    x = np.arange(10)
    tr, te = train_test_split(x, test_size=3, shuffle=False)
    np.testing.assert_array_equal(tr, np.arange(7))
    np.testing.assert_array_equal(te, [7, 8, 9])
    tr, te = train_test_split(x, train_size=4, test_size=2, shuffle=False)
    np.testing.assert_array_equal(tr, [0, 1, 2, 3])
    np.testing.assert_array_equal(te, [4, 5])


def test_same_seed_same_split_and_global_seed_controls_none():
    x = np.arange(50)
    a = train_test_split(x, random_state=7)
    b = train_test_split(x, random_state=7)
    np.testing.assert_array_equal(a[1], b[1])
    utils.set_random_seed(123)
    c = train_test_split(x)
    utils.set_random_seed(123)
    d = train_test_split(x)
    np.testing.assert_array_equal(c[1], d[1])
    assert not np.array_equal(train_test_split(x, random_state=1)[1],
                              train_test_split(x, random_state=2)[1])


def test_stratified_split_exact_counts_per_class():
    # classes of sizes 10, 6, 4; test 0.25 of 20 = 5: exact shares 2.5, 1.5, 1.0.
    # The train part (15: shares 7.5, 4.5, 3) is drawn first: floors 7, 4, 3 plus one
    # for class 0 or 1 (the largest remainders, tie broken at random); the test part
    # takes the rest: (2, 2, 1) or (3, 1, 1).
    y = np.array([0] * 10 + [1] * 6 + [2] * 4)
    x = np.arange(20)
    for seed in range(10):
        x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y, random_state=seed)
        test_counts = np.bincount(y_te, minlength=3)
        assert tuple(test_counts) in ((3, 1, 1), (2, 2, 1))
        np.testing.assert_array_equal(np.bincount(y_tr, minlength=3) + test_counts, [10, 6, 4])
        np.testing.assert_array_equal(y[x_te], y_te)


def test_stratified_split_one_hot_labels():
    y = np.eye(3)[np.array([0] * 8 + [1] * 8 + [2] * 4)]
    _, y_te = train_test_split(y, test_size=0.25, stratify=y, random_state=0)
    np.testing.assert_array_equal(y_te.sum(axis=0), [2, 2, 1])


@FAST
@given(n=st.integers(2, 60), frac=st.floats(0.05, 0.95), seed=st.integers(0, 2**31),
       shuffle=st.booleans())
def test_property_split_partitions_the_samples(n, frac, seed, shuffle):
    x = np.arange(n)
    try:
        tr, te = train_test_split(x, test_size=frac, random_state=seed if shuffle else None,
                                  shuffle=shuffle)
    except ValueError as exc:  # only an empty train set is impossible here
        assert "empty" in str(exc)
        assert n - int(np.ceil(frac * n)) == 0
        return
    assert len(te) == int(np.ceil(frac * n))
    assert len(tr) == n - len(te)
    assert sorted(np.concatenate([tr, te]).tolist()) == list(range(n))


@FAST
@given(counts=st.lists(st.integers(2, 30), min_size=2, max_size=5), frac=st.floats(0.1, 0.9),
       seed=st.integers(0, 2**31))
def test_property_stratified_split_keeps_proportions(counts, frac, seed):
    y = np.repeat(np.arange(len(counts)), counts)
    n = len(y)
    x = np.arange(n)
    n_test = int(np.ceil(frac * n))
    if n_test < len(counts) or n - n_test < len(counts):
        with pytest.raises(ValueError, match="number of classes|empty"):
            train_test_split(x, y, test_size=frac, stratify=y, random_state=seed)
        return
    tr, te, y_tr, y_te = train_test_split(x, y, test_size=frac, stratify=y, random_state=seed)
    assert len(te) == n_test and len(tr) == n - n_test
    assert sorted(np.concatenate([tr, te]).tolist()) == list(range(n))
    # Each class's test count is within 1 of its exact share (floor, plus at most one).
    share = np.asarray(counts) * n_test / n
    test_counts = np.bincount(y_te, minlength=len(counts))
    assert np.all(test_counts >= np.floor(share) - 1e-9)
    assert np.all(test_counts <= np.ceil(share) + 1 + 1e-9)


@pytest.mark.parametrize("kwargs, exc, word", [
    (dict(test_size=0.0), ValueError, "test_size"),
    (dict(test_size=1.0), ValueError, "test_size"),
    (dict(test_size=10), ValueError, "test_size"),
    (dict(test_size=-1), ValueError, "test_size"),
    (dict(train_size=1.5), ValueError, "train_size"),
    (dict(train_size=0), ValueError, "train_size"),
    (dict(test_size=0.6, train_size=0.6), ValueError, "test_size"),
    (dict(test_size=6, train_size=5), ValueError, "train_size"),
    (dict(test_size="0.2"), TypeError, "test_size"),
    (dict(train_size=True), TypeError, "train_size"),
    (dict(shuffle="yes"), TypeError, "shuffle"),
    (dict(random_state=1.5), TypeError, "random_state"),
    (dict(random_state=-3), ValueError, "random_state"),
    (dict(shuffle=False, stratify=np.zeros(10)), ValueError, "shuffle"),
    (dict(stratify=np.arange(10)), ValueError, "least populated class"),
    (dict(stratify=np.zeros(9)), ValueError, "stratify"),
])
def test_bad_arguments_name_the_argument(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        train_test_split(np.arange(10), **kwargs)


def test_bad_arrays():
    with pytest.raises(ValueError, match="at least one array"):
        train_test_split()
    with pytest.raises(ValueError, match="inconsistent"):
        train_test_split(np.arange(5), np.arange(6))
    with pytest.raises(TypeError, match="arrays"):
        train_test_split(3)
    with pytest.raises(ValueError, match="empty"):  # 1 sample: nothing left to train on
        train_test_split(np.arange(1))


@FAST
@given(bad=st.one_of(st.text(max_size=3), st.floats(allow_nan=True).filter(lambda v: not 0 < v < 1),
                     st.integers(max_value=0), st.integers(min_value=10)))
def test_property_bad_test_size_is_refused(bad):
    with pytest.raises((ValueError, TypeError), match="test_size"):
        train_test_split(np.arange(10), test_size=bad)


# --------------------------------------------------------------------------- KFold

def test_kfold_fold_sizes_and_order():
    folds = list(KFold(n_splits=3).split(np.zeros(7)))
    np.testing.assert_array_equal(folds[0][1], [0, 1, 2])
    np.testing.assert_array_equal(folds[1][1], [3, 4])
    np.testing.assert_array_equal(folds[2][1], [5, 6])
    np.testing.assert_array_equal(folds[1][0], [0, 1, 2, 5, 6])
    assert KFold(4).get_n_splits() == 4


def test_kfold_shuffle_is_seeded_and_sorted():
    a = list(KFold(3, shuffle=True, random_state=0).split(np.zeros(10)))
    b = list(KFold(3, shuffle=True, random_state=0).split(np.zeros(10)))
    for (tr1, te1), (tr2, te2) in zip(a, b):
        np.testing.assert_array_equal(te1, te2)
        assert np.all(np.diff(te1) > 0) and np.all(np.diff(tr1) > 0)
    assert [len(te) for _, te in a] == [4, 3, 3]
    assert any(not np.array_equal(te, np.arange(len(te)) + te[0]) for _, te in a)


@FAST
@given(n=st.integers(2, 80), k=st.integers(2, 10), shuffle=st.booleans(), seed=st.integers(0, 1000))
def test_property_kfold_partitions(n, k, shuffle, seed):
    if k > n:
        with pytest.raises(ValueError, match="n_splits"):
            list(KFold(k).split(np.zeros(n)))
        return
    cv = KFold(k, shuffle=shuffle, random_state=seed if shuffle else None)
    tests = []
    for train, test in cv.split(np.zeros(n)):
        assert len(np.intersect1d(train, test)) == 0
        assert len(train) + len(test) == n
        tests.append(test)
    assert sorted(np.concatenate(tests).tolist()) == list(range(n))
    sizes = sorted((len(t) for t in tests), reverse=True)
    assert sizes == [n // k + 1] * (n % k) + [n // k] * (k - n % k)


@pytest.mark.parametrize("args, kwargs, exc, word", [
    ((1,), {}, ValueError, "n_splits"),
    ((2.5,), {}, TypeError, "n_splits"),
    ((3,), dict(shuffle=1), TypeError, "shuffle"),
    ((3,), dict(random_state=0), ValueError, "random_state"),
    ((3,), dict(shuffle=True, random_state="a"), TypeError, "random_state"),
])
def test_kfold_bad_arguments(args, kwargs, exc, word):
    with pytest.raises(exc, match=word):
        KFold(*args, **kwargs)
    with pytest.raises(exc, match=word):
        StratifiedKFold(*args, **kwargs)


# --------------------------------------------------------------------------- StratifiedKFold

def test_stratified_kfold_hand_computed():
    # Sorted labels 0 0 0 1 1 1 1 2 2 2 dealt round-robin to 3 folds:
    # fold 0 gets positions 0,3,6,9 -> one 0, two 1s, one 2; folds 1, 2 one of each.
    y = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2])
    folds = [te for _, te in StratifiedKFold(3).split(np.zeros(10), y)]
    np.testing.assert_array_equal(folds[0], [0, 3, 4, 7])
    np.testing.assert_array_equal(folds[1], [1, 5, 8])
    np.testing.assert_array_equal(folds[2], [2, 6, 9])


def test_stratified_kfold_numbers_classes_by_first_appearance():
    # Label 5 appears first, so it is class 0 of the allocation: same folds as above
    # after renaming 0 -> 5.
    y = np.array([5, 5, 5, 1, 1, 1, 1, 2, 2, 2])
    folds = [te for _, te in StratifiedKFold(3).split(np.zeros(10), y)]
    np.testing.assert_array_equal(folds[0], [0, 3, 4, 7])


@FAST
@given(counts=st.lists(st.integers(1, 25), min_size=1, max_size=4), k=st.integers(2, 6),
       shuffle=st.booleans(), seed=st.integers(0, 1000))
def test_property_stratified_kfold(counts, k, shuffle, seed):
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.repeat(np.arange(len(counts)), counts))
    n = len(y)
    cv = StratifiedKFold(k, shuffle=shuffle, random_state=seed if shuffle else None)
    if k > n or all(k > c for c in counts):
        with pytest.raises(ValueError, match="n_splits"):
            list(cv.split(np.zeros(n), y))
        return
    with pytest.warns(UserWarning) if min(counts) < k else _nothing():
        pairs = list(cv.split(np.zeros(n), y))
    assert len(pairs) == k
    all_test = np.concatenate([te for _, te in pairs])
    assert sorted(all_test.tolist()) == list(range(n))
    per_fold = np.array([np.bincount(y[te], minlength=len(counts)) for _, te in pairs])
    # Every class is spread over the folds as evenly as possible.
    assert np.all(per_fold.max(axis=0) - per_fold.min(axis=0) <= 1)
    for train, test in pairs:
        assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == n


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_stratified_kfold_needs_labels():
    with pytest.raises(ValueError, match="y"):
        list(StratifiedKFold(2).split(np.zeros(4), None))
    with pytest.raises(ValueError, match="y"):
        list(StratifiedKFold(2).split(np.zeros(4), np.array([0.5, 1.5, 0.5, 1.5])))
    with pytest.raises(ValueError, match="y"):
        list(StratifiedKFold(2).split(np.zeros(4), np.zeros(5)))


# --------------------------------------------------------------------------- batches

def test_batches_sizes_and_coverage():
    x = np.arange(10).reshape(10, 1)
    y = np.arange(10) * 2
    out = list(batches(x, y, batch_size=4, seed=0))
    assert [len(xb) for xb, _ in out] == [4, 4, 2]
    seen = np.concatenate([xb[:, 0] for xb, _ in out])
    assert sorted(seen.tolist()) == list(range(10))
    for xb, yb in out:
        np.testing.assert_array_equal(xb[:, 0] * 2, yb)


def test_batches_unshuffled_and_x_only():
    out = list(batches(np.arange(5), batch_size=2, shuffle=False))
    assert [b.tolist() for b in out] == [[0, 1], [2, 3], [4]]


def test_batches_seeded():
    a = [b.tolist() for b in batches(np.arange(9), batch_size=3, seed=5)]
    b = [b.tolist() for b in batches(np.arange(9), batch_size=3, seed=5)]
    assert a == b and a != [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


@pytest.mark.parametrize("kwargs, exc, word", [
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(batch_size=2.0), TypeError, "batch_size"),
    (dict(shuffle=None), TypeError, "shuffle"),
    (dict(seed="x"), TypeError, "seed"),
    (dict(y=np.arange(4)), ValueError, "y"),
])
def test_batches_bad_arguments_fail_at_the_call(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        batches(np.arange(5), **kwargs)


# --------------------------------------------------------------------------- cross_validate

class _MeanModel:
    """A stand-in model: predicts the training mean; evaluate returns its MSE."""

    def fit(self, x, y, verbose=0, epochs=1):
        self.fitted_on = np.asarray(x).copy()
        self.mean = float(np.mean(y))
        self.epochs = epochs

    def predict(self, x, verbose=0):
        return np.full((len(x), 1), self.mean)

    def evaluate(self, x, y, verbose=0, return_dict=False):
        return {"loss": float(np.mean((np.asarray(y) - self.mean) ** 2))}


def test_cross_validate_kfold_on_regression_targets():
    x = np.arange(6.0).reshape(6, 1)
    y = np.array([0.0, 0.0, 1.0, 1.0, 2.0, 2.0])
    models = []

    def build():
        models.append(_MeanModel())
        return models[-1]

    res = cross_validate(build, x, y, cv=3, fit_kwargs={"epochs": 4})
    # Float targets -> KFold(3): test folds [0,1], [2,3], [4,5]. Fold 1 trains on
    # y = 1,1,2,2 (mean 1.5) and tests on 0,0: MSE 2.25; fold 2: mean 1.0, MSE 0;
    # fold 3: mean 0.5, MSE 2.25.
    np.testing.assert_allclose(res["test_loss"], [2.25, 0.0, 2.25])
    assert set(res) == {"fit_time", "score_time", "test_loss"}
    assert len(models) == 3 and all(m.epochs == 4 for m in models)
    np.testing.assert_array_equal(models[0].fitted_on[:, 0], [2, 3, 4, 5])


def test_cross_validate_stratifies_integer_labels_and_custom_scoring():
    x = np.arange(8.0).reshape(8, 1)
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    res = cross_validate(_MeanModel, x, y, cv=2,
                         scoring=lambda model, xt, yt: float(np.mean(yt)))
    # StratifiedKFold(2): each test fold holds two 0s and two 1s -> mean 0.5.
    np.testing.assert_allclose(res["test_score"], [0.5, 0.5])


def test_cross_validate_takes_fastnn_metric_functions_as_their_names():
    # fastnn.metrics.mse is f(y_true, y_pred): it used to be called as a scorer
    # f(model, x_test, y_test) and fail.
    from fastnn import metrics
    x = np.arange(6.0).reshape(6, 1)
    y = np.array([0.0, 0.0, 1.0, 1.0, 2.0, 2.0])
    by_name = cross_validate(_MeanModel, x, y, cv=3, scoring="mean_squared_error")
    res = cross_validate(_MeanModel, x, y, cv=3, scoring=metrics.mse)
    np.testing.assert_array_equal(res["test_mean_squared_error"], by_name["test_mean_squared_error"])
    np.testing.assert_allclose(res["test_mean_squared_error"], [2.25, 0.0, 2.25])
    res = cross_validate(_MeanModel, x, y, cv=3, scoring=[metrics.mae, "mse"])
    np.testing.assert_allclose(res["test_mean_absolute_error"], [1.5, 0.0, 1.5])
    res = cross_validate(_MeanModel, x, y, cv=3, scoring={"err": metrics.mae})
    np.testing.assert_allclose(res["test_err"], [1.5, 0.0, 1.5])


def test_cross_validate_accepts_a_splitter_and_pairs():
    x = np.arange(6.0).reshape(6, 1)
    y = np.arange(6.0)
    res = cross_validate(_MeanModel, x, y, cv=KFold(2))
    np.testing.assert_allclose(res["test_loss"], [np.mean((np.arange(3) - 4.0) ** 2),
                                                  np.mean((np.arange(3, 6) - 1.0) ** 2)])
    res = cross_validate(_MeanModel, x, y, cv=[([0, 1], [2]), ([2, 3], [4, 5])])
    np.testing.assert_allclose(res["test_loss"], [(2 - 0.5) ** 2, np.mean([1.5 ** 2, 2.5 ** 2])])


def test_cross_validate_bad_arguments():
    x, y = np.zeros((4, 1)), np.zeros(4)
    with pytest.raises(TypeError, match="build_fn"):
        cross_validate(None, x, y)
    with pytest.raises(TypeError, match="fit_kwargs"):
        cross_validate(_MeanModel, x, y, fit_kwargs=[1])
    with pytest.raises(TypeError, match="cv"):
        cross_validate(_MeanModel, x, y, cv="five")
    with pytest.raises(ValueError, match="samples"):
        cross_validate(_MeanModel, x, np.zeros(3))
    with pytest.raises(TypeError, match="scoring"):
        cross_validate(_MeanModel, x, y, scoring=3)


def test_cross_validate_a_real_model_on_digits():
    import fastnn
    from fastnn.datasets import digits

    x, y = digits.load()
    x, y = x[:400], y[:400]

    def build():
        model = fastnn.Sequential([fastnn.layers.Dense(32, activation="relu", input_shape=(64,)),
                                   fastnn.layers.Dense(10, activation="softmax")])
        model.compile(optimizer=fastnn.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    utils.set_random_seed(0)
    res = cross_validate(build, x, y, cv=3, fit_kwargs={"epochs": 8})
    assert set(res) == {"fit_time", "score_time", "test_loss", "test_accuracy"}
    assert res["test_accuracy"].shape == (3,) and np.all(res["test_accuracy"] > 0.8)
    utils.set_random_seed(0)
    again = cross_validate(build, x, y, cv=3, fit_kwargs={"epochs": 8}, scoring="accuracy")
    # Same seed, same folds: the metric over predict equals evaluate's accuracy.
    np.testing.assert_allclose(again["test_accuracy"], res["test_accuracy"], rtol=1e-6)
