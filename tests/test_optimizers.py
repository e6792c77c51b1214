"""Keras-style optimizers: torch.optim trajectories, hand-computed steps, clipping, state, config."""
from __future__ import annotations

import math

import numpy as np
import pytest

from fastnn import optimizers
from fastnn.optimizers import SGD, Adagrad, Adam, AdamW, RMSprop, schedules


# -- a small non-quadratic objective, so the gradients change along the path ------------
def _problem(seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(5, 4))
    b = rng.normal(size=5)
    params = [rng.normal(size=(4,)), rng.normal(size=(2, 3))]
    return a, b, params


def _grads(a, b, params):
    w, u = params
    r = a @ w - b
    return [2 * a.T @ r + 0.4 * w ** 3, np.sin(u) + 0.3 * u]


def _run_fastnn(opt, steps, seed=0):
    a, b, params = _problem(seed)
    path = []
    for _ in range(steps):
        opt.apply(_grads(a, b, params), params)
        path.append([p.copy() for p in params])
    return path


def _run_torch(make_opt, steps, seed=0, lr_at=None):
    torch = pytest.importorskip("torch")
    a, b, params = _problem(seed)
    tparams = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in params]
    opt = make_opt(tparams)
    path = []
    for t in range(steps):
        if lr_at is not None:
            for group in opt.param_groups:
                group["lr"] = lr_at(t)
        grads = _grads(a, b, [p.detach().numpy() for p in tparams])
        for p, g in zip(tparams, grads):
            p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        path.append([p.detach().numpy().copy() for p in tparams])
    return path


def _assert_paths_close(ours, theirs, rtol=1e-8):
    for t, (ps, qs) in enumerate(zip(ours, theirs)):
        for p, q in zip(ps, qs):
            np.testing.assert_allclose(p, q, rtol=rtol, atol=rtol * max(1.0, np.abs(q).max()),
                                       err_msg=f"step {t + 1}")


TORCH_CASES = {
    "sgd": (lambda: SGD(learning_rate=0.01),
            lambda t, p: t.optim.SGD(p, lr=0.01)),
    "sgd_momentum": (lambda: SGD(learning_rate=0.01, momentum=0.9),
                     lambda t, p: t.optim.SGD(p, lr=0.01, momentum=0.9)),
    "sgd_nesterov": (lambda: SGD(learning_rate=0.02, momentum=0.8, nesterov=True),
                     lambda t, p: t.optim.SGD(p, lr=0.02, momentum=0.8, nesterov=True)),
    "adam": (lambda: Adam(learning_rate=0.01),
             lambda t, p: t.optim.Adam(p, lr=0.01, eps=1e-7)),
    "adam_betas": (lambda: Adam(learning_rate=0.03, beta_1=0.5, beta_2=0.9, epsilon=1e-3),
                   lambda t, p: t.optim.Adam(p, lr=0.03, betas=(0.5, 0.9), eps=1e-3)),
    "amsgrad": (lambda: Adam(learning_rate=0.01, amsgrad=True),
                lambda t, p: t.optim.Adam(p, lr=0.01, eps=1e-7, amsgrad=True)),
    "adamw": (lambda: AdamW(learning_rate=0.01, weight_decay=0.1),
              lambda t, p: t.optim.AdamW(p, lr=0.01, weight_decay=0.1, eps=1e-7)),
    "adamw_default_wd": (lambda: AdamW(learning_rate=0.01),
                         lambda t, p: t.optim.AdamW(p, lr=0.01, weight_decay=0.004, eps=1e-7)),
    "adamw_amsgrad": (lambda: AdamW(learning_rate=0.01, weight_decay=0.05, amsgrad=True),
                      lambda t, p: t.optim.AdamW(p, lr=0.01, weight_decay=0.05, eps=1e-7, amsgrad=True)),
    # Keras's weight_decay on Adam is decoupled: Adam(weight_decay=w) is torch's AdamW.
    "adam_weight_decay": (lambda: Adam(learning_rate=0.01, weight_decay=0.2),
                          lambda t, p: t.optim.AdamW(p, lr=0.01, weight_decay=0.2, eps=1e-7)),
    "rmsprop": (lambda: RMSprop(learning_rate=0.01),
                lambda t, p: t.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-7)),
    "rmsprop_momentum": (lambda: RMSprop(learning_rate=0.005, rho=0.8, momentum=0.7),
                         lambda t, p: t.optim.RMSprop(p, lr=0.005, alpha=0.8, eps=1e-7, momentum=0.7)),
    "rmsprop_centered": (lambda: RMSprop(learning_rate=0.01, centered=True),
                         lambda t, p: t.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-7, centered=True)),
    "rmsprop_centered_momentum": (
        lambda: RMSprop(learning_rate=0.005, momentum=0.5, centered=True, epsilon=1e-4),
        lambda t, p: t.optim.RMSprop(p, lr=0.005, alpha=0.9, eps=1e-4, momentum=0.5, centered=True)),
    "adagrad": (lambda: Adagrad(learning_rate=0.05),
                lambda t, p: t.optim.Adagrad(p, lr=0.05, initial_accumulator_value=0.1, eps=1e-7)),
    "adagrad_zero_init": (lambda: Adagrad(learning_rate=0.05, initial_accumulator_value=0.0, epsilon=1e-3),
                          lambda t, p: t.optim.Adagrad(p, lr=0.05, initial_accumulator_value=0.0, eps=1e-3)),
}


@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_trajectory_matches_torch(case, use_backend):
    torch = pytest.importorskip("torch")
    ours_factory, torch_factory = TORCH_CASES[case]
    ours = _run_fastnn(ours_factory(), 40)
    theirs = _run_torch(lambda p: torch_factory(torch, p), 40)
    _assert_paths_close(ours, theirs)
    # the path actually moved: a matching trajectory that stands still proves nothing
    assert np.abs(ours[-1][0] - _problem()[2][0]).max() > 1e-3


@pytest.mark.parametrize("make", [
    lambda lr: Adam(learning_rate=lr),
    lambda lr: SGD(learning_rate=lr, momentum=0.9),
])
def test_schedule_trajectory_matches_torch_with_lr_set_per_step(make):
    torch = pytest.importorskip("torch")
    sched = schedules.ExponentialDecay(0.05, decay_steps=5, decay_rate=0.5)
    opt = make(sched)
    ours = _run_fastnn(opt, 30)
    if isinstance(opt, Adam):
        theirs = _run_torch(lambda p: torch.optim.Adam(p, lr=0.05, eps=1e-7), 30, lr_at=sched)
    else:
        theirs = _run_torch(lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9), 30, lr_at=sched)
    _assert_paths_close(ours, theirs)
    assert opt.iterations == 30
    assert opt.current_learning_rate() == pytest.approx(0.05 * 0.5 ** 6)


# -- hand-computed steps ------------------------------------------------------------------
def test_sgd_momentum_two_steps_by_hand():
    p = np.array([1.0, -2.0])
    opt = SGD(learning_rate=0.1, momentum=0.9)
    opt.apply([np.array([1.0, 2.0])], [p])
    np.testing.assert_allclose(p, [0.9, -2.2])          # v = g
    opt.apply([np.array([0.5, 0.0])], [p])
    # v = 0.9 * [1, 2] + [0.5, 0] = [1.4, 1.8]
    np.testing.assert_allclose(p, [0.9 - 0.14, -2.2 - 0.18])


def test_sgd_nesterov_two_steps_by_hand():
    p = np.array([0.0])
    opt = SGD(learning_rate=0.1, momentum=0.5, nesterov=True)
    opt.apply([np.array([1.0])], [p])
    np.testing.assert_allclose(p, [-0.1 * (1 + 0.5 * 1)])   # v = 1, step g + mu v
    opt.apply([np.array([2.0])], [p])
    # v = 0.5 + 2 = 2.5; step 2 + 0.5 * 2.5 = 3.25
    np.testing.assert_allclose(p, [-0.15 - 0.325])


def test_sgd_decoupled_weight_decay_by_hand():
    p = np.array([2.0, -1.0])
    opt = SGD(learning_rate=0.1, weight_decay=0.5)
    opt.apply([np.array([1.0, 1.0])], [p])
    # p <- p * (1 - 0.1 * 0.5) - 0.1 * g
    np.testing.assert_allclose(p, [2.0 * 0.95 - 0.1, -1.0 * 0.95 - 0.1])


def test_adam_first_step_by_hand():
    g = np.array([0.5, -3.0, 1e-3])
    p = np.zeros(3)
    opt = Adam(learning_rate=0.01)
    opt.apply([g], [p])
    # m_hat = g, v_hat = g^2: the first step is lr * g / (|g| + eps)
    np.testing.assert_allclose(p, -0.01 * g / (np.abs(g) + 1e-7), rtol=1e-12)


def test_adam_two_steps_by_hand():
    b1, b2, eps, lr = 0.9, 0.999, 1e-7, 0.1
    p = np.array([1.0])
    opt = Adam(learning_rate=lr)
    opt.apply([np.array([2.0])], [p])
    opt.apply([np.array([-1.0])], [p])
    m = b1 * (1 - b1) * 2.0 + (1 - b1) * -1.0
    v = b2 * (1 - b2) * 4.0 + (1 - b2) * 1.0
    step2 = lr / (1 - b1 ** 2) * m / (math.sqrt(v) / math.sqrt(1 - b2 ** 2) + eps)
    expected = 1.0 - lr * 2.0 / (2.0 + eps) - step2
    np.testing.assert_allclose(p, [expected], rtol=1e-13)


def test_rmsprop_first_step_by_hand():
    g = np.array([2.0, -0.5])
    p = np.ones(2)
    RMSprop(learning_rate=0.01, rho=0.9).apply([g], [p])
    np.testing.assert_allclose(p, 1 - 0.01 * g / (np.sqrt(0.1 * g * g) + 1e-7), rtol=1e-13)


def test_adagrad_two_steps_by_hand():
    p = np.array([1.0])
    opt = Adagrad(learning_rate=0.1)
    opt.apply([np.array([1.0])], [p])
    opt.apply([np.array([2.0])], [p])
    expected = 1.0 - 0.1 * 1 / (math.sqrt(1.1) + 1e-7) - 0.1 * 2 / (math.sqrt(5.1) + 1e-7)
    np.testing.assert_allclose(p, [expected], rtol=1e-13)
    np.testing.assert_allclose(opt.slots[0]["accumulator"], [5.1])


def test_float32_params_stay_float32_and_follow_float64(use_backend):
    a, b, params64 = _problem()
    params32 = [p.astype(np.float32) for p in params64]
    o64, o32 = Adam(learning_rate=0.01), Adam(learning_rate=0.01)
    for _ in range(10):
        o64.apply(_grads(a, b, params64), params64)
        o32.apply([g.astype(np.float32) for g in _grads(a, b, params32)], params32)
    for p32, p64 in zip(params32, params64):
        assert p32.dtype == np.float32
        np.testing.assert_allclose(p32, p64, rtol=1e-4, atol=1e-5)
    assert o32.slots[0]["momentum"].dtype == np.float32


def test_apply_gradients_equals_apply():
    a, b, p1 = _problem()
    _, _, p2 = _problem()
    o1, o2 = RMSprop(learning_rate=0.01, momentum=0.5), RMSprop(learning_rate=0.01, momentum=0.5)
    for _ in range(5):
        o1.apply(_grads(a, b, p1), p1)
        o2.apply_gradients(zip(_grads(a, b, p2), p2))
    for x, y in zip(p1, p2):
        np.testing.assert_array_equal(x, y)
    assert o1.iterations == o2.iterations == 5


# -- clipping -------------------------------------------------------------------------------
def _one_sgd_step(grads, **clip):
    params = [np.zeros(2), np.zeros(1)]
    given = [g.copy() for g in grads]
    SGD(learning_rate=1.0, **clip).apply(grads, params)
    for g, g0 in zip(grads, given):
        np.testing.assert_array_equal(g, g0)  # the caller's gradients are not clipped in place
    return [-p for p in params]  # with lr = 1 the step is the clipped gradient


def test_clipvalue_clips_each_element(use_backend):
    step = _one_sgd_step([np.array([3.0, -0.5]), np.array([-4.0])], clipvalue=1.0)
    np.testing.assert_allclose(step[0], [1.0, -0.5])
    np.testing.assert_allclose(step[1], [-1.0])


def test_clipnorm_clips_each_tensor(use_backend):
    step = _one_sgd_step([np.array([3.0, -4.0]), np.array([0.5])], clipnorm=1.0)
    np.testing.assert_allclose(step[0], [0.6, -0.8])
    np.testing.assert_allclose(step[1], [0.5])


def test_global_clipnorm_scales_all_tensors_together(use_backend):
    step = _one_sgd_step([np.array([3.0, -4.0]), np.array([12.0])], global_clipnorm=2.6)
    scale = 2.6 / 13.0
    np.testing.assert_allclose(step[0], [3.0 * scale, -4.0 * scale])
    np.testing.assert_allclose(step[1], [12.0 * scale])


def test_global_clipnorm_leaves_small_gradients():
    step = _one_sgd_step([np.array([0.3, -0.4]), np.array([0.0])], global_clipnorm=1.0)
    np.testing.assert_allclose(step[0], [0.3, -0.4])


def test_global_clipping_happens_before_the_adam_update():
    torch = pytest.importorskip("torch")
    ours = _run_fastnn(Adam(learning_rate=0.01, global_clipnorm=0.5), 20)
    a, b, params = _problem()
    tparams = [torch.tensor(p, requires_grad=True) for p in params]
    opt = torch.optim.Adam(tparams, lr=0.01, eps=1e-7)
    for t in range(20):
        grads = _grads(a, b, [q.detach().numpy() for q in tparams])
        # Keras's rule, g * c / max(norm, c) (torch's clip_grad_norm_ adds 1e-6 to the norm)
        norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
        for p, g in zip(tparams, grads):
            p.grad = torch.tensor(g * 0.5 / max(norm, 0.5))
        opt.step()
        np.testing.assert_allclose(ours[t][0], tparams[0].detach().numpy(), rtol=1e-8)
        np.testing.assert_allclose(ours[t][1], tparams[1].detach().numpy(), rtol=1e-8)


def test_more_than_one_clip_option_is_an_error():
    with pytest.raises(ValueError, match="only one of clipnorm, clipvalue and global_clipnorm"):
        Adam(clipnorm=1.0, clipvalue=0.5)
    with pytest.raises(ValueError, match="global_clipnorm"):
        SGD(clipnorm=1.0, global_clipnorm=1.0)


# -- learning rate ------------------------------------------------------------------------
def test_learning_rate_is_settable_and_used():
    p = np.array([0.0])
    opt = SGD(learning_rate=0.1)
    opt.learning_rate = 0.5
    assert opt.learning_rate == 0.5 and opt.current_learning_rate() == 0.5
    opt.apply([np.array([1.0])], [p])
    np.testing.assert_allclose(p, [-0.5])


def test_schedule_learning_rate_follows_iterations():
    sched = schedules.PiecewiseConstantDecay([1], [1.0, 0.1])
    opt = SGD(learning_rate=sched)
    p = np.array([0.0])
    rates = []
    for _ in range(4):
        rates.append(opt.current_learning_rate())
        opt.apply([np.array([1.0])], [p])
    assert rates == [1.0, 1.0, 0.1, 0.1]
    np.testing.assert_allclose(p, [-2.2])


def test_float_cannot_replace_a_schedule_but_a_schedule_can():
    opt = Adam(learning_rate=schedules.ExponentialDecay(0.1, 10, 0.5))
    with pytest.raises(TypeError, match="LearningRateSchedule"):
        opt.learning_rate = 0.01
    new = schedules.InverseTimeDecay(0.2, 1, 1.0)
    opt.learning_rate = new
    assert opt.learning_rate is new


# -- state and config ------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: SGD(momentum=0.9), lambda: SGD(), lambda: Adam(amsgrad=True), lambda: AdamW(),
    lambda: RMSprop(momentum=0.5, centered=True), lambda: Adagrad(),
], ids=["sgd_momentum", "sgd", "amsgrad", "adamw", "rmsprop", "adagrad"])
def test_state_round_trip_resumes_bit_identically(make):
    a, b, params = _problem()
    opt = make()
    for _ in range(5):
        opt.apply(_grads(a, b, params), params)
    state = opt.get_state()
    assert state["iterations"] == 5
    for name in opt.slot_names:
        assert len(state[name]) == 2 and all(isinstance(x, np.ndarray) for x in state[name])
    # a copy: changing the optimizer later does not change the exported state
    saved = {k: ([x.copy() for x in v] if isinstance(v, list) else v) for k, v in state.items()}

    other = optimizers.deserialize(optimizers.serialize(opt))
    other.set_state(state)
    resumed = [p.copy() for p in params]
    for _ in range(5):
        opt.apply(_grads(a, b, params), params)
        other.apply(_grads(a, b, resumed), resumed)
    for x, y in zip(params, resumed):
        np.testing.assert_array_equal(x, y)
    for name in opt.slot_names:
        for x, y in zip(state[name], saved[name]):
            np.testing.assert_array_equal(x, y)


def test_set_state_rejects_bad_state():
    opt = Adam()
    with pytest.raises(ValueError, match="missing"):
        opt.set_state({"iterations": 1})
    with pytest.raises(ValueError, match="unknown keys"):
        opt.set_state({"iterations": 1, "momentum": [], "velocity": [], "bogus": []})
    with pytest.raises(ValueError, match="different lengths"):
        opt.set_state({"iterations": 1, "momentum": [np.zeros(2)], "velocity": []})
    with pytest.raises(TypeError, match="state\\['iterations'\\]"):
        opt.set_state({"iterations": 1.5, "momentum": [], "velocity": []})


def test_state_restored_with_wrong_shapes_is_caught_at_apply():
    opt = Adam()
    opt.set_state({"iterations": 3, "momentum": [np.zeros(3)], "velocity": [np.zeros(3)]})
    with pytest.raises(ValueError, match="params\\[0\\] has shape \\(2,\\)"):
        opt.apply([np.zeros(2)], [np.zeros(2)])


def test_config_round_trip_with_schedule():
    sched = schedules.CosineDecay(0.1, 100, alpha=0.1, warmup_target=0.2, warmup_steps=10)
    opt = RMSprop(learning_rate=sched, rho=0.8, momentum=0.3, centered=True, clipnorm=2.0,
                  weight_decay=0.01, name="r")
    cfg = optimizers.serialize(opt)
    import json
    cfg = json.loads(json.dumps(cfg))  # JSON-able
    new = optimizers.deserialize(cfg)
    assert type(new) is RMSprop
    assert new.get_config() == opt.get_config()
    assert isinstance(new.learning_rate, schedules.CosineDecay)
    assert new.learning_rate(55) == sched(55)


@pytest.mark.parametrize("name,cls", [("sgd", SGD), ("adam", Adam), ("adamw", AdamW),
                                      ("rmsprop", RMSprop), ("adagrad", Adagrad), ("Adam", Adam),
                                      ("SGD", SGD)])
def test_get_by_name_gives_keras_defaults(name, cls):
    opt = optimizers.get(name)
    assert type(opt) is cls
    defaults = {SGD: 0.01}.get(cls, 0.001)
    assert opt.learning_rate == defaults


def test_keras_default_hyperparameters():
    assert (SGD().momentum, SGD().nesterov) == (0.0, False)
    a = Adam()
    assert (a.beta_1, a.beta_2, a.epsilon, a.amsgrad, a.weight_decay) == (0.9, 0.999, 1e-7, False, None)
    assert AdamW().weight_decay == 0.004
    r = RMSprop()
    assert (r.rho, r.momentum, r.epsilon, r.centered) == (0.9, 0.0, 1e-7, False)
    g = Adagrad()
    assert (g.initial_accumulator_value, g.epsilon) == (0.1, 1e-7)


def test_get_returns_objects_and_rejects_others():
    opt = Adam()
    assert optimizers.get(opt) is opt
    with pytest.raises(ValueError, match="did you mean 'adam'"):
        optimizers.get("adma")
    with pytest.raises(TypeError, match="optimizer must be"):
        optimizers.get(3)

    class TorchLike:
        def step(self): ...
        def zero_grad(self): ...
    with pytest.raises(TypeError, match="PyTorch-style"):
        optimizers.get(TorchLike())


# -- validation -------------------------------------------------------------------------------
@pytest.mark.parametrize("make,exc,word", [
    (lambda: SGD(learning_rate=-1), ValueError, "learning_rate"),
    (lambda: SGD(learning_rate="fast"), TypeError, "learning_rate"),
    (lambda: SGD(learning_rate=float("nan")), ValueError, "learning_rate"),
    (lambda: SGD(momentum=1.0), ValueError, "momentum"),
    (lambda: SGD(momentum=-0.1), ValueError, "momentum"),
    (lambda: SGD(nesterov=True), ValueError, "nesterov"),
    (lambda: SGD(momentum=0.9, nesterov="yes"), TypeError, "nesterov"),
    (lambda: Adam(beta_1=1.0), ValueError, "beta_1"),
    (lambda: Adam(beta_2=-0.5), ValueError, "beta_2"),
    (lambda: Adam(epsilon=0), ValueError, "epsilon"),
    (lambda: Adam(amsgrad=1), TypeError, "amsgrad"),
    (lambda: AdamW(weight_decay=None), TypeError, "weight_decay"),
    (lambda: Adam(weight_decay=-1), ValueError, "weight_decay"),
    (lambda: RMSprop(rho=1.0), ValueError, "rho"),
    (lambda: RMSprop(centered=None), TypeError, "centered"),
    (lambda: Adagrad(initial_accumulator_value=-0.1), ValueError, "initial_accumulator_value"),
    (lambda: Adam(clipnorm=0), ValueError, "clipnorm"),
    (lambda: Adam(clipvalue=-1), ValueError, "clipvalue"),
    (lambda: Adam(name=3), TypeError, "name"),
])
def test_bad_hyperparameters_are_named(make, exc, word):
    with pytest.raises(exc, match=word):
        make()


def test_a_learning_rate_of_zero_is_accepted():
    # As torch.optim, and as the learning_rate setter always did: a schedule or a
    # callback may anneal the rate to 0, and a model saved then must load again.
    assert SGD(learning_rate=0.0).learning_rate == 0.0
    assert Adam(learning_rate=0).current_learning_rate() == 0.0


def test_bad_apply_arguments_are_named():
    opt = SGD()
    with pytest.raises(ValueError, match="2 gradients for 1 params"):
        opt.apply([np.zeros(2), np.zeros(2)], [np.zeros(2)])
    with pytest.raises(ValueError, match="grads\\[0\\] has shape"):
        opt.apply([np.zeros(3)], [np.zeros(2)])
    with pytest.raises(TypeError, match="params\\[0\\] must be a NumPy array"):
        opt.apply([np.zeros(2)], [[0.0, 0.0]])
    with pytest.raises(TypeError, match="params\\[0\\] must be float32 or float64"):
        opt.apply([np.zeros(2)], [np.zeros(2, dtype=np.int64)])
    with pytest.raises(ValueError, match="grads\\[0\\] is None"):
        opt.apply([None], [np.zeros(2)])
    with pytest.raises(TypeError, match="lists of arrays"):
        opt.apply(np.zeros(2), np.zeros(2))
    with pytest.raises(TypeError, match="\\(grad, param\\) pair"):
        opt.apply_gradients([np.zeros(2)])
    ro = np.zeros(2)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        opt.apply([np.zeros(2)], [ro])
    assert opt.iterations == 0


def test_list_gradients_are_converted_to_the_param_dtype():
    p = np.zeros(2, dtype=np.float32)
    SGD(learning_rate=1.0).apply([[1, 2]], [p])
    assert p.dtype == np.float32
    np.testing.assert_array_equal(p, [-1.0, -2.0])


def test_build_allocates_state_up_front():
    params = [np.ones((2, 2)), np.ones(3)]
    opt = Adagrad(initial_accumulator_value=0.5)
    opt.build(params)
    assert [s["accumulator"].shape for s in opt.slots] == [(2, 2), (3,)]
    assert np.all(opt.slots[1]["accumulator"] == 0.5)
    assert opt.update_rule == "adagrad" and opt.iterations == 0
    assert opt.update_hyperparameters()["epsilon"] == 1e-7


@pytest.mark.parametrize("value,error", [(-5, ValueError), (2**63 - 1, ValueError),
                                         (10**30, ValueError), (2.5, TypeError)])
def test_iterations_is_checked_when_assigned(value, error):
    # a negative count made Adam's bias correction NaN on the compiled path; a count
    # near 2**63 overflowed its C long (NaN weights, or OverflowError)
    from fastnn import optimizers
    opt = optimizers.Adam()
    with pytest.raises(error, match="iterations"):
        opt.iterations = value
    opt.iterations = 12
    assert opt.iterations == 12
