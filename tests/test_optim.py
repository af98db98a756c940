"""Update rules (derivations/optim.md): kernel forms, optimisers, checkpoints, schedules."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexnet.kernels import optim as K
from indexnet.nn.optim import (
    SGD, Adam, ConstantLR, CosineLR, Momentum, StepLR, _fast_kernel, make_optimizer, make_schedule,
)

RULES = ("sgd_step", "momentum_step", "adam_step")
#: loops vs numpy: the same IEEE operations in the same order, so in practice equal;
#: the contract allows this much.
RTOL_NUMPY = {np.float64: 1e-12, np.float32: 1e-6}
#: fast (FMA contraction allowed) vs loops
RTOL_FAST = 1e-10


def kernel_case(rule, P, seed, dtype=np.float64):
    """Random θ, g, state and the scalar arguments of one kernel call of ``rule``."""
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(P).astype(dtype)
    g = rng.standard_normal(P).astype(dtype)
    lr = float(10 ** rng.uniform(-4, 0))
    wd = float(rng.choice([0.0, 10 ** rng.uniform(-5, -1)]))
    if rule == "sgd_step":
        return theta, g, [], (lr,), wd
    if rule == "momentum_step":
        return theta, g, [rng.standard_normal(P).astype(dtype)], (lr, float(rng.uniform(0, 0.99))), wd
    m = rng.standard_normal(P).astype(dtype)
    v = (rng.standard_normal(P) ** 2).astype(dtype)
    t = int(rng.integers(1, 200))
    return theta, g, [m, v], (t, lr, float(rng.uniform(0, 0.99)), float(rng.uniform(0.9, 0.9999)), 1e-8), wd


def run_kernel(fn, case, in_place):
    """Call one kernel form on copies of ``case``; returns (θ after, state after)."""
    theta, g, state, scalars, wd = case
    theta, state = theta.copy(), [s.copy() for s in state]
    out = theta if in_place else np.full_like(theta, np.nan)
    ret = fn(theta, g, *state, *scalars, wd, out)
    assert ret is out
    return out, state


def assert_same(a, b):
    for x, y in zip([a[0], *a[1]], [b[0], *b[1]]):
        np.testing.assert_array_equal(x, y)


def assert_close(a, b, rtol):
    for x, y in zip([a[0], *a[1]], [b[0], *b[1]]):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * 1e-3)


cases = dict(
    rule=st.sampled_from(RULES),
    P=st.integers(1, 70),
    seed=st.integers(0, 2**32 - 1),
    in_place=st.booleans(),
)


# ------------------------------------------------------------------------ kernel forms
@given(**cases)
def test_literal_equals_loops_bit_for_bit(rule, P, seed, in_place):
    """literal and loops forms of every rule give identical θ and state in float64."""
    case = kernel_case(rule, P, seed)
    assert_same(run_kernel(getattr(K, f"{rule}_literal"), case, in_place),
                run_kernel(getattr(K, f"{rule}_loops"), case, in_place))


@given(dtype=st.sampled_from([np.float64, np.float32]), **cases)
def test_loops_vs_numpy(rule, P, seed, in_place, dtype):
    """loops and numpy forms agree within RTOL_NUMPY, in float64 and float32, and keep the dtype."""
    case = kernel_case(rule, P, seed, dtype)
    a = run_kernel(getattr(K, f"{rule}_loops"), case, in_place)
    b = run_kernel(getattr(K, f"{rule}_numpy"), case, in_place)
    assert a[0].dtype == b[0].dtype == dtype
    assert_close(a, b, RTOL_NUMPY[dtype])


@given(**cases)
def test_fast_vs_loops(rule, P, seed, in_place):
    """The fastmath build agrees with the exact build within RTOL_FAST."""
    case = kernel_case(rule, P, seed)
    assert_close(run_kernel(_fast_kernel(rule), case, in_place),
                 run_kernel(getattr(K, f"{rule}_loops"), case, in_place), RTOL_FAST)


@pytest.mark.parametrize("rule", RULES)
def test_small_fast_updates_run_the_serial_twin_with_the_same_numbers(rule):
    """With the fast engine an update whose largest array is small (the digits run's 51 200 weights) runs
    the serial twin of the loops form (no threads to wake, and one build to compile instead of two), a large
    one the parallel fast build; both give the fast build's numbers."""
    from indexnet import _jit
    from indexnet.nn.optim import _kernel

    small, large = _kernel(rule, "fast", 51_200), _kernel(rule, "fast", 1 << 20)
    assert small is _jit.serial_twin(getattr(K, f"{rule}_loops")) and large is _fast_kernel(rule)
    case = kernel_case(rule, 1000, 5)
    assert_close(run_kernel(small, case, True), run_kernel(large, case, True), RTOL_FAST)
    opt = make_optimizer({"sgd_step": "sgd", "momentum_step": "momentum", "adam_step": "adam"}[rule], lr=0.01,
                         engine="fast")
    theta = np.ones(64)
    opt.step([theta], [np.full(64, 0.5)], [True])
    assert small.signatures and np.all(theta < 1)


@pytest.mark.parametrize("form", ["literal", "loops", "numpy"])
@pytest.mark.parametrize("rule", RULES)
def test_out_may_alias_theta(rule, form):
    """Writing into θ itself gives the same numbers as writing into a separate buffer."""
    case = kernel_case(rule, 33, 7)
    fn = getattr(K, f"{rule}_{form}")
    assert_same(run_kernel(fn, case, True), run_kernel(fn, case, False))


def test_adam_kernel_first_steps_by_hand():
    """Two Adam steps of the kernel equal eq. O12 evaluated by hand in Python floats."""
    lr, b1, b2, eps, wd = 0.01, 0.9, 0.999, 1e-8, 0.1
    theta0 = [1.0, -2.0, 0.5]
    grads = [[0.3, -0.1, 0.0], [-0.2, 0.4, 1e-3]]
    th, m, v = list(theta0), [0.0] * 3, [0.0] * 3
    for t, g in enumerate(grads, start=1):
        for i in range(3):
            gh = g[i] + wd * th[i]
            m[i] = b1 * m[i] + (1 - b1) * gh
            v[i] = b2 * v[i] + (1 - b2) * gh * gh
            th[i] -= lr * (m[i] / (1 - b1**t)) / (math.sqrt(v[i] / (1 - b2**t)) + eps)
    theta, M, V = np.array(theta0), np.zeros(3), np.zeros(3)
    for t, g in enumerate(grads, start=1):
        K.adam_step_loops(theta, np.array(g), M, V, t, lr, b1, b2, eps, wd, theta)
    np.testing.assert_allclose(theta, th, rtol=1e-15)
    np.testing.assert_allclose(M, m, rtol=1e-15)
    np.testing.assert_allclose(V, v, rtol=1e-15)


# -------------------------------------------------------------------------- optimisers
def quadratic(n, seed):
    """A = Qᵀ diag(1..10) Q, J = ½ θᵀAθ (minimum 0 at θ = 0), and a start θ0."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = Q.T @ np.diag(np.linspace(1.0, 10.0, n)) @ Q
    return A, rng.standard_normal(n)


def make_params(seed, dtype=np.float64):
    """A weight matrix, a bias, a conv kernel: the shapes a network hands over."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in [(4, 3), (4,), (2, 3, 2, 2)]]


def run(opt, steps, seed, params=None, mask=(True, False, True), schedule=None):
    """``steps`` updates with reproducible pseudo-gradients (a function of θ and t)."""
    params = make_params(seed) if params is None else params
    for _ in range(steps):
        grads = [np.sin(p * (opt.t + 1)) + 0.1 * p for p in params]
        lr = None if schedule is None else schedule.lr_at(opt.t)
        opt.step(params, grads, list(mask), lr=lr)
    return params


OPTS = [
    lambda **kw: SGD(0.05, **kw),
    lambda **kw: Momentum(0.05, mu=0.8, **kw),
    lambda **kw: Adam(0.01, **kw),
]


@pytest.mark.parametrize("engine", ["loops", "numpy", "fast"])
def test_sgd_converges_on_quadratic(engine):
    """SGD on J = ½θᵀAθ follows θ_k = (I − ηA)^k θ0 and reaches the minimum θ = 0."""
    A, theta0 = quadratic(6, 1)
    eta, k = 0.15, 150  # η < 2/λ_max = 0.2: contraction factor max|1 − ηλ| = 0.85
    theta = theta0.copy()
    opt = SGD(eta, engine=engine)
    for _ in range(k):
        opt.step([theta], [A @ theta], [False])
    expected = np.linalg.matrix_power(np.eye(6) - eta * A, k) @ theta0
    np.testing.assert_allclose(theta, expected, rtol=1e-9, atol=1e-14)
    assert np.linalg.norm(theta) < 1e-9 * np.linalg.norm(theta0)
    assert opt.t == k


@pytest.mark.parametrize("opt", [Momentum(0.05, mu=0.9), Adam(0.05)], ids=["momentum", "adam"])
def test_momentum_and_adam_reduce_quadratic(opt):
    """Momentum and Adam drive J = ½θᵀAθ from its start to below 1e-6 of its value."""
    A, theta = quadratic(6, 2)
    J0 = 0.5 * theta @ A @ theta
    for _ in range(400):
        opt.step([theta], [A @ theta], [True])
    assert 0.5 * theta @ A @ theta < 1e-6 * J0


def test_adam_first_step_is_lr_times_sign():
    """At t = 1 Adam moves every coordinate by η g/(|g| + ε) ≈ η sign(g), whatever |g| (eq. O12)."""
    g = np.array([1e-3, -5.0, 300.0, -2e-2])
    theta = np.zeros(4)
    Adam(lr=0.1).step([theta], [g.copy()], [True])
    np.testing.assert_allclose(theta, -0.1 * g / (np.abs(g) + 1e-8), rtol=1e-15)
    np.testing.assert_allclose(theta, -0.1 * np.sign(g), rtol=1e-5)


@pytest.mark.parametrize("make", OPTS, ids=["sgd", "momentum", "adam"])
@pytest.mark.parametrize("engine", ["loops", "numpy"])
def test_weight_decay_equals_adding_lambda_theta(make, engine):
    """weight_decay=λ gives bit for bit the run with λθ added to the gradient of decayed
    parameters only (eq. O7); the biases (mask False) are untouched by λ."""
    lam = 0.03
    a, b = make(weight_decay=lam, engine=engine), make(engine=engine)
    pa, pb = make_params(3), make_params(3)
    mask = [True, False, True]
    for _ in range(5):
        grads = [np.cos(p) for p in pa]
        a.step(pa, [g.copy() for g in grads], mask)
        b.step(pb, [g + lam * p if d else g for g, p, d in zip(grads, pb, mask)], mask)
    for x, y in zip(pa, pb):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("engine", ["literal", "loops", "numpy"])
def test_momentum_mu0_equals_sgd(engine):
    """Momentum with μ = 0 is SGD exactly (eq. O9 with μ = 0 is eq. O8), decay included."""
    a = run(Momentum(0.05, mu=0.0, weight_decay=0.01, engine=engine), 6, 4)
    b = run(SGD(0.05, weight_decay=0.01, engine=engine), 6, 4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("make", OPTS, ids=["sgd", "momentum", "adam"])
def test_engines_agree_over_steps(make):
    """Several steps on several shapes: literal == loops bit for bit, numpy within RTOL_NUMPY."""
    lit, loops, vec = (run(make(engine=e, weight_decay=0.01), 4, 5) for e in ("literal", "loops", "numpy"))
    for a, b, c in zip(lit, loops, vec):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(c, b, rtol=RTOL_NUMPY[np.float64])


def test_float32_parameters_stay_float32():
    """float32 parameters are updated in float32 (state too) and loops ≈ numpy to 1e-6."""
    runs = []
    for engine in ("loops", "numpy"):
        opt = Adam(0.01, engine=engine)
        runs.append(run(opt, 3, 6, params=make_params(6, np.float32)))
        assert all(a.dtype == np.float32 for arrays in opt.state.values() for a in arrays)
    for a, b in zip(*runs):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=RTOL_NUMPY[np.float32])


@pytest.mark.parametrize("make", OPTS, ids=["sgd", "momentum", "adam"])
@pytest.mark.parametrize("engine", ["loops", "numpy"])
def test_state_dict_round_trip_resumes_bit_for_bit(make, engine, tmp_path):
    """k steps, save to .npz, load (allow_pickle=False) into a new optimiser, continue:
    identical to an uninterrupted run, including the step counter and a schedule."""
    k, more = 4, 5
    sched = CosineLR(0.05, total_steps=k + more)
    whole = make(engine=engine, weight_decay=0.01)
    expected = run(whole, k + more, 8, schedule=sched)

    first = make(engine=engine, weight_decay=0.01)
    params = run(first, k, 8, schedule=sched)
    np.savez(tmp_path / "ckpt.npz", **first.state_dict(), **{f"param.{i}": p for i, p in enumerate(params)})
    with np.load(tmp_path / "ckpt.npz", allow_pickle=False) as f:
        stored = {key: f[key] for key in f.files}
    resumed = make(engine=engine)  # other hyperparameters: the checkpoint's win
    resumed.load_state_dict({key: v for key, v in stored.items() if not key.startswith("param.")})
    assert resumed.t == k and resumed.weight_decay == 0.01
    params = [stored[f"param.{i}"] for i in range(len(params))]
    run(resumed, more, 8, params=params, schedule=sched)
    assert resumed.t == whole.t == k + more
    for a, b in zip(params, expected):
        np.testing.assert_array_equal(a, b)


def test_state_dict_is_plain():
    """state_dict holds only ints, floats and ndarrays (no objects), copies not views."""
    opt = Adam()
    run(opt, 2, 9)
    d = opt.state_dict()
    assert sorted(d) == ["beta1", "beta2", "eps", "lr", "m.0", "m.1", "m.2", "t", "v.0", "v.1", "v.2", "weight_decay"]
    assert all(isinstance(v, (int, float, np.ndarray)) for v in d.values())
    assert all(v.dtype != object for v in d.values() if isinstance(v, np.ndarray))
    d["m.0"][...] = 123.0
    assert not np.any(opt.state["m"][0] == 123.0)


# ------------------------------------------------------------------------- schedules
@pytest.mark.parametrize("sched, steps, expected", [
    (ConstantLR(0.1), [0, 1, 1000], [0.1, 0.1, 0.1]),
    (StepLR(0.1, step_size=10, gamma=0.5), [0, 9, 10, 19, 20, 35], [0.1, 0.1, 0.05, 0.05, 0.025, 0.0125]),
    (CosineLR(0.1, total_steps=100), [0, 50, 100, 150], [0.1, 0.05, 0.0, 0.0]),
    (CosineLR(0.1, total_steps=100, lr_min=0.02), [0, 25, 50, 100, 200],
     [0.1, 0.02 + 0.04 * (1 + math.sqrt(0.5)), 0.06, 0.02, 0.02]),
], ids=["constant", "step", "cosine", "cosine-min"])
def test_schedule_values(sched, steps, expected):
    """η_t at chosen steps equals eqs. O13-O15 worked by hand."""
    np.testing.assert_allclose([sched.lr_at(t) for t in steps], expected, rtol=1e-14, atol=1e-17)


def test_cosine_is_monotone_and_factories_build_the_classes():
    """Cosine falls monotonically from η to η_min; the factories return the named classes."""
    c = make_schedule("cosine", lr=1.0, total_steps=37, lr_min=0.1)
    values = [c.lr_at(t) for t in range(40)]
    assert values[0] == 1.0 and values[-1] == pytest.approx(0.1) and np.all(np.diff(values) <= 0)
    assert isinstance(make_schedule("step", lr=1.0, step_size=3), StepLR)
    assert isinstance(make_schedule("constant", lr=1.0), ConstantLR)
    assert isinstance(make_optimizer("momentum", lr=0.1, mu=0.5), Momentum)
    assert isinstance(make_optimizer("adam"), Adam)
    assert isinstance(make_optimizer("sgd", lr=0.1, engine="numpy"), SGD)


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize("call, match", [
    (lambda: make_optimizer("rmsprop", lr=0.1), r"optimizer: expected one of 'sgd', 'momentum', 'adam', got 'rmsprop'"),
    (lambda: make_optimizer("sgd", lr=0.0), r"lr: expected a number > 0.0, got 0.0"),
    (lambda: make_optimizer("sgd", lr=-1), r"lr: expected a number > 0.0, got -1"),
    (lambda: make_optimizer("sgd", lr=float("nan")), r"lr: expected a number > 0.0, got nan"),
    (lambda: make_optimizer("sgd", lr="0.1"), r"lr: expected a number > 0.0, got '0.1'"),
    (lambda: make_optimizer("sgd", lr=0.1, weight_decay=-1e-4), r"weight_decay: expected a number >= 0.0, got -0.0001"),
    (lambda: make_optimizer("sgd", lr=0.1, mu=0.9), r"optimizer 'sgd': unexpected argument\(s\) mu; expected some of lr, weight_decay, engine"),
    (lambda: make_optimizer("sgd"), r"optimizer 'sgd': missing required argument\(s\) lr"),
    (lambda: make_optimizer("sgd", lr=0.1, engine="gpu"), r"engine: expected one of .*'fast', got 'gpu'"),
    (lambda: make_optimizer("momentum", lr=0.1, mu=1.0), r"mu: expected a number in \[0.0, 1.0\), got 1.0"),
    (lambda: make_optimizer("adam", beta1=-0.1), r"beta1: expected a number in \[0.0, 1.0\), got -0.1"),
    (lambda: make_optimizer("adam", beta2=1), r"beta2: expected a number in \[0.0, 1.0\), got 1"),
    (lambda: make_optimizer("adam", eps=0), r"eps: expected a number > 0.0, got 0"),
    (lambda: make_schedule("linear", lr=0.1), r"schedule: expected one of 'constant', 'step', 'cosine', got 'linear'"),
    (lambda: make_schedule("step", lr=0.1, step_size=0), r"step_size: expected an integer >= 1, got 0"),
    (lambda: make_schedule("step", lr=0.1, step_size=5, gamma=1.5), r"gamma: expected a number in \(0.0, 1.0\], got 1.5"),
    (lambda: make_schedule("cosine", lr=0.1, total_steps=2.5), r"total_steps: expected an integer >= 1, got 2.5"),
    (lambda: make_schedule("cosine", lr=0.1, total_steps=9, lr_min=0.2), r"lr_min: expected a number in \[0.0, 0.1\], got 0.2"),
    (lambda: ConstantLR(0.1).lr_at(-1), r"step: expected an integer >= 0, got -1"),
])
def test_bad_hyperparameters_are_named(call, match):
    """Bad names and values raise ValueError naming the argument, the expectation and the value."""
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_step_arguments_are_named():
    """step() names the offending list entry: shape, dtype, contiguity, mask, lengths, lr."""
    opt = SGD(0.1)
    p = [np.zeros((3, 2)), np.zeros(3)]
    with pytest.raises(ValueError, match=r"grads\[0\]: expected shape \(3, 2\), got \(2, 3\)"):
        opt.step(p, [np.zeros((2, 3)), np.zeros(3)], [True, False])
    with pytest.raises(TypeError, match=r"grads\[1\]: expected dtype float64, got float32"):
        opt.step(p, [np.zeros((3, 2)), np.zeros(3, np.float32)], [True, False])
    with pytest.raises(ValueError, match=r"params\[0\]: expected a C-contiguous array"):
        opt.step([np.zeros((2, 3)).T, p[1]], [np.zeros((3, 2)), np.zeros(3)], [True, False])
    with pytest.raises(TypeError, match=r"decay_mask\[1\]: expected a bool, got 0"):
        opt.step(p, [np.zeros((3, 2)), np.zeros(3)], [True, 0])
    with pytest.raises(ValueError, match=r"expected lists of one length, got lengths 2, 1, 2"):
        opt.step(p, [np.zeros((3, 2))], [True, False])
    with pytest.raises(ValueError, match=r"lr: expected a number >= 0.0, got -0.5"):
        opt.step(p, [np.zeros((3, 2)), np.zeros(3)], [True, False], lr=-0.5)
    assert opt.t == 0  # nothing was applied


def test_load_state_dict_rejects_foreign_checkpoints():
    """A checkpoint of another optimiser or another model is refused with a named reason."""
    mom = Momentum(0.1)
    run(mom, 1, 10)
    with pytest.raises(ValueError, match=r"state_dict: expected key 'beta1' for Adam"):
        Adam().load_state_dict(mom.state_dict())
    with pytest.raises(ValueError, match=r"unexpected keys \['v.0', 'v.1', 'v.2'\] for SGD"):
        SGD(0.1).load_state_dict({k: v for k, v in mom.state_dict().items() if k != "mu"})
    other = Momentum(0.1)
    other.load_state_dict(mom.state_dict())
    with pytest.raises(ValueError, match=r"v: expected optimiser state shaped like params"):
        other.step([np.zeros(2)], [np.zeros(2)], [True])
    with pytest.raises(ValueError, match=r"v: expected optimiser state shaped like params"):
        other.step([np.zeros(2)], [np.zeros(2)], [True], trusted=True)  # a training step's own arrays: still checked
    broken = mom.state_dict()
    del broken["v.1"]
    with pytest.raises(ValueError, match=r"expected state arrays \['v.0', 'v.1'\], got \['v.0', 'v.2'\]"):
        Momentum(0.1).load_state_dict(broken)
