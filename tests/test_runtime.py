"""Tests of ppl.runtime: messages, the handler stack, apply_stack, validation and seeds."""

import dataclasses
import random
import threading

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import ppl.distributions as dist
from ppl import runtime
from ppl.distributions import constraints
from ppl.runtime import (
    Message,
    Messenger,
    am_i_wrapped,
    apply_stack,
    check_observation,
    enable_validation,
    get_rng_state,
    get_stack,
    is_validation_enabled,
    new_message,
    set_rng_seed,
    set_rng_state,
    validation_enabled,
)

pytestmark = pytest.mark.usefixtures("clean_state")


def test_new_message_sets_every_key_of_a_message():
    msg = new_message("param", "theta", print, ("theta",))
    assert set(msg) == set(Message.__annotations__)
    assert msg["kwargs"] == {} and msg["infer"] == {} and msg["value"] is None
    assert (msg["scale"], msg["mask"], msg["cond_indep_stack"]) == (1.0, None, ())
    assert not msg["done"] and not msg["stop"] and msg["continuation"] is None
    # fresh dicts: one message's kwargs or infer never leak into the next
    assert new_message("sample", "z", print)["infer"] is not msg["infer"]


def make_msg(name="z", fn=None, value=None, is_observed=False, **extra):
    fn = fn if fn is not None else dist.Normal(0.0, 1.0)
    msg = new_message("sample", name, fn, value=value, is_observed=is_observed)
    msg.update(extra)
    return msg


class Recorder(Messenger):
    """Appends (label, phase, value-is-set) to a shared log; optionally stops or sets values."""

    def __init__(self, label, log, stop=False, set_value=None):
        self.label, self.log, self.stop, self.set_value = label, log, stop, set_value

    def process_message(self, msg):
        self.log.append((self.label, "process", msg["value"] is not None))
        if self.set_value is not None:
            msg["value"] = self.set_value
        if self.stop:
            msg["stop"] = True

    def postprocess_message(self, msg):
        self.log.append((self.label, "post", msg["value"] is not None))


# --- the stack and Messenger -------------------------------------------------------------------


def test_get_stack_is_the_live_list_and_am_i_wrapped():
    assert get_stack() is get_stack() and get_stack() == [] and not am_i_wrapped()
    with Messenger() as m:
        assert get_stack() == [m] and am_i_wrapped()
    assert get_stack() == [] and not am_i_wrapped()


def test_enter_pushes_exit_pops_in_nesting_order():
    a, b = Messenger(), Messenger()
    with a:
        with b:
            assert get_stack() == [a, b]
        assert get_stack() == [a]
    assert get_stack() == []


def test_entering_one_instance_twice_raises():
    m = Messenger()
    with m:
        with pytest.raises(RuntimeError, match="already on the handler stack"):
            with m:
                pass
    assert get_stack() == []


def test_exit_out_of_order_raises():
    a, b = Messenger(), Messenger()
    a.__enter__()
    b.__enter__()
    with pytest.raises(RuntimeError, match="not on top"):
        a.__exit__(None, None, None)
    get_stack().clear()


def test_exception_removes_the_handler_and_everything_above_it():
    outer, middle, leaked = Messenger(), Messenger(), Messenger()
    with pytest.raises(KeyError):
        with outer:
            with middle:
                leaked.__enter__()  # entered by hand: never reaches its own __exit__
                raise KeyError("boom")
    assert get_stack() == []


def test_exit_does_not_swallow_the_exception():
    with pytest.raises(ZeroDivisionError):
        with Messenger():
            1 / 0


def test_call_wraps_a_function_to_run_inside_the_handler():
    m = Messenger()

    def model(a, b=1):
        """doc"""
        assert get_stack() == [m]
        return a + b

    wrapped = m(model)
    assert wrapped(2, b=3) == 5 and get_stack() == []
    assert wrapped.__name__ == "model" and wrapped.__doc__ == "doc"


def test_call_rejects_what_is_not_callable():
    with pytest.raises(ValueError, match="not callable"):
        Messenger()({"z": 1.0})


def test_wrapped_function_raising_leaves_stack_empty():
    def model():
        raise RuntimeError("inside")

    with pytest.raises(RuntimeError, match="inside"):
        Messenger()(Messenger()(model))()
    assert get_stack() == []


def test_each_thread_has_its_own_handler_stack(run_in_threads):
    barrier = threading.Barrier(2, timeout=10)

    def program(label):
        log = []
        with Recorder(label, log) as handler:
            barrier.wait()  # both threads have a handler on their stack now
            seen = list(get_stack())
            apply_stack(make_msg(value=torch.tensor(1.0)))
            barrier.wait()
        # a handler left behind in "a"
        left = Messenger().__enter__() if label == "a" else None
        barrier.wait()
        return handler, seen, log, list(get_stack()), left

    results = run_in_threads(
        lambda: program("a"), lambda: program("b"), barrier=barrier
    )
    for (handler, seen, log, after, left), label in zip(results, "ab"):
        assert seen == [handler]  # no handler of the other thread
        # no message of the other
        assert log == [(label, "process", True), (label, "post", True)]
        # the leftover is visible in "a" only
        assert after == ([left] if label == "a" else [])
    assert get_stack() == []  # nor in the main thread


# --- apply_stack -------------------------------------------------------------------------------


def test_apply_stack_order_is_top_down_then_bottom_up():
    log = []
    with Recorder("outer", log), Recorder("middle", log), Recorder("inner", log):
        msg = apply_stack(make_msg())
    assert [(label, phase) for label, phase, _ in log] == [
        ("inner", "process"),
        ("middle", "process"),
        ("outer", "process"),
        ("outer", "post"),
        ("middle", "post"),
        ("inner", "post"),
    ]
    # no value on the way down, a value on the way up
    assert [has for _, phase, has in log if phase == "process"] == [False, False, False]
    assert all(has for _, phase, has in log if phase == "post")
    assert msg["done"] and isinstance(msg["value"], torch.Tensor)


def test_stop_hides_the_message_from_handlers_below():
    log = []
    with (
        Recorder("outer", log),
        Recorder("blocker", log, stop=True),
        Recorder("inner", log),
    ):
        msg = apply_stack(make_msg())
    assert [(label, phase) for label, phase, _ in log] == [
        ("inner", "process"),
        ("blocker", "process"),
        ("blocker", "post"),
        ("inner", "post"),
    ]
    assert msg["value"] is not None  # the default behaviour still runs


def test_the_outermost_handler_has_the_last_word_on_the_way_down():
    log = []
    with (
        Recorder("outer", log, set_value=torch.tensor(2.0)),
        Recorder("inner", log, set_value=torch.tensor(1.0)),
    ):
        msg = apply_stack(make_msg())
    assert msg["value"] == 2.0


def test_default_draws_only_when_no_value():
    torch.manual_seed(0)
    drawn = apply_stack(make_msg())["value"]
    torch.manual_seed(0)
    assert torch.equal(drawn, dist.Normal(0.0, 1.0)())
    given = torch.tensor(0.25)
    assert apply_stack(make_msg(value=given))["value"] is given


def test_default_calls_fn_with_args_and_kwargs():
    def fn(a, b=0):
        return torch.tensor(float(a + b))

    msg = make_msg(fn=fn, args=(2,), kwargs={"b": 3}, type="custom")
    assert apply_stack(msg)["value"] == 5.0


def test_done_message_is_left_alone():
    def fn():
        raise AssertionError("must not be called")

    msg = apply_stack(make_msg(fn=fn, done=True, type="custom", value=None))
    assert msg["value"] is None


def test_continuation_is_called_last():
    seen = []
    log = []
    with Recorder("h", log):
        apply_stack(
            make_msg(
                continuation=lambda m: seen.append((len(log), m["value"] is not None))
            )
        )
    assert seen == [(2, True)]


def test_apply_stack_with_empty_stack_runs_default():
    msg = apply_stack(make_msg())
    assert msg["done"] and msg["value"].shape == ()


# --- validation --------------------------------------------------------------------------------


def test_validation_on_by_default_and_switchable():
    assert is_validation_enabled()
    enable_validation(False)
    assert not is_validation_enabled()
    assert torch.distributions.Distribution._validate_args is False
    enable_validation()
    assert (
        is_validation_enabled()
        and torch.distributions.Distribution._validate_args is True
    )


def test_validation_enabled_context_restores():
    with validation_enabled(False):
        assert not is_validation_enabled()
        with pytest.raises(RuntimeError):
            with validation_enabled(True):
                assert is_validation_enabled()
                raise RuntimeError
        assert not is_validation_enabled()
    assert is_validation_enabled()


def test_check_observation_accepts_good_values():
    check_observation(
        make_msg(fn=dist.Normal(torch.zeros(3), 1.0), value=torch.zeros(3))
    )
    # broadcasts
    check_observation(
        make_msg(fn=dist.Normal(torch.zeros(3), 1.0), value=torch.zeros(5, 3))
    )
    check_observation(
        make_msg(fn=dist.Normal(torch.zeros(3), 1.0), value=torch.zeros(()))
    )
    check_observation(make_msg(fn=dist.Bernoulli(0.3), value=torch.tensor(1.0)))


@pytest.mark.parametrize(
    "fn, value, error, pattern",
    [
        (dist.Normal(torch.zeros(3), 1.0), torch.zeros(2), ValueError, "shape"),
        (
            dist.MultivariateNormal(torch.zeros(3), torch.eye(3)),
            torch.zeros(3, 2),
            ValueError,
            "event_shape",
        ),
        (
            dist.MultivariateNormal(torch.zeros(3), torch.eye(3)),
            torch.zeros(()),
            ValueError,
            "shape",
        ),
        (dist.Bernoulli(0.3), torch.tensor(0.5), ValueError, "support"),
        (dist.Gamma(2.0, 1.0), torch.tensor([-1.0, 1.0]), ValueError, "support"),
        (dist.Normal(0.0, 1.0), 0.5, TypeError, "tensor"),
    ],
)
def test_check_observation_errors_name_the_site(fn, value, error, pattern):
    with pytest.raises(error, match=pattern) as info:
        check_observation(make_msg(name="my_site", fn=fn, value=value))
    assert "'my_site'" in str(info.value)


@pytest.mark.parametrize(
    "fn",
    [
        dist.Normal(torch.zeros(4), 1.0),
        dist.Normal(torch.zeros(4), 1.0).to_event(1),
        dist.Normal(torch.zeros(2, 2), 1.0).to_event(2),
    ],
)
def test_real_support_check_finds_the_nan_and_accepts_infinities(fn):
    # The real line's check is one sum (nan if any entry is); +inf and -inf together also sum to
    # nan, and the full check must then accept them.
    bad = torch.tensor([0.0, 1.0, float("nan"), 2.0]).reshape(
        fn.batch_shape + fn.event_shape
    )
    with pytest.raises(ValueError, match="'y'.*support.*e.g. nan"):
        check_observation(make_msg(name="y", fn=fn, value=bad))
    both = torch.tensor([float("inf"), float("-inf"), 0.0, 1.0]).reshape(bad.shape)
    assert torch.isnan(both.sum())
    check_observation(make_msg(name="y", fn=fn, value=both))
    # ints
    check_observation(
        make_msg(name="y", fn=fn, value=torch.arange(4).reshape(bad.shape))
    )


shapes = st.lists(st.integers(0, 3), max_size=4).map(tuple)


@given(value_shape=shapes, batch_shape=shapes)
def test_check_observation_shape_rule_is_torchs_broadcasting(value_shape, batch_shape):
    # check_observation's plain-Python broadcasting rule against torch.broadcast_shapes
    try:
        torch.broadcast_shapes(value_shape, batch_shape)
        expected = True
    except RuntimeError:
        expected = False
    assert (
        runtime._broadcastable(torch.Size(value_shape), torch.Size(batch_shape))
        == expected
    )
    fn = dist.Normal(torch.zeros(batch_shape), 1.0)
    msg = make_msg(name="y", fn=fn, value=torch.zeros(value_shape))
    if expected:
        check_observation(msg)
    else:
        with pytest.raises(ValueError, match="'y'.*shape"):
            check_observation(msg)


def test_observed_values_are_checked_only_when_validation_is_on():
    msg = make_msg(
        name="flip", fn=dist.Bernoulli(0.5), value=torch.tensor(0.5), is_observed=True
    )
    with pytest.raises(ValueError, match="'flip'"):
        apply_stack(dict(msg))
    enable_validation(False)
    assert apply_stack(dict(msg))["value"] == 0.5


def test_unobserved_values_set_by_handlers_are_not_checked():
    msg = make_msg(
        name="z", fn=dist.Bernoulli(0.5), value=torch.tensor(0.5), is_observed=False
    )
    assert apply_stack(msg)["value"] == 0.5


# Observed values that are not floating point: torch scores some (it promotes a count to a float)
# and fails deep inside others. check_observation must reject exactly those torch cannot score.
DTYPE_CASES = [
    (dist.Bernoulli(0.3), torch.tensor(1)),
    (dist.Bernoulli(torch.full((3,), 0.3)), torch.tensor([1, 0, 1], dtype=torch.int32)),
    (dist.Bernoulli(torch.full((3,), 0.3)).to_event(1), torch.tensor([1, 0, 1])),
    (dist.Bernoulli(0.3).mask(torch.tensor([True, False])), torch.tensor([1, 0])),
    (dist.Bernoulli(0.3), torch.tensor(True)),
    (dist.ContinuousBernoulli(0.3), torch.tensor(1)),
    (dist.Poisson(2.0), torch.tensor(3)),
    (dist.Poisson(torch.full((2,), 2.0)).to_event(1), torch.tensor([3, 0])),
    (dist.Binomial(5, 0.3), torch.tensor(2)),
    (dist.Categorical(torch.ones(3)), torch.tensor(2)),
    (dist.Categorical(torch.ones(3)), torch.tensor(True)),
    (dist.Normal(0.0, 1.0), torch.tensor(1)),
    (dist.Normal(0.0, 1.0), torch.tensor(True)),
    (dist.Geometric(0.3), torch.tensor(True)),
]


@pytest.mark.parametrize("fn, value", DTYPE_CASES)
def test_check_observation_rejects_exactly_the_dtypes_torch_cannot_score(fn, value):
    try:
        fn.log_prob(value)
        torch_scores = True
    except (RuntimeError, TypeError, ValueError):
        torch_scores = False
    msg = make_msg(name="obs", fn=fn, value=value, is_observed=True)
    if torch_scores:
        check_observation(msg)
    else:
        with pytest.raises(TypeError, match=f"'obs'.*{value.dtype}.*floating.*float()"):
            check_observation(msg)
    assert not fn.log_prob(value.float()).isnan().any()  # the advice works


def test_dtype_check_is_skipped_for_floating_point_and_remembered_for_the_rest(
    monkeypatch,
):
    calls = []
    real = dist.Poisson.log_prob
    monkeypatch.setattr(
        dist.Poisson, "log_prob", lambda self, v: calls.append(v.dtype) or real(self, v)
    )
    check_observation(make_msg(fn=dist.Poisson(2.0), value=torch.tensor(3.0)))
    assert calls == []  # a floating-point value needs no trial
    runtime._SCORES_DTYPE.pop((dist.Poisson, torch.int16), None)
    for _ in range(3):
        check_observation(
            make_msg(
                fn=dist.Poisson(torch.full((2,), 2.0)),
                value=torch.tensor([3, 1], dtype=torch.int16),
            )
        )
    assert calls == [torch.int16]  # tried once, then remembered


# --- seeds -------------------------------------------------------------------------------------


def test_set_rng_seed_seeds_torch_and_random():
    set_rng_seed(3)
    first = (torch.rand(2), random.random())
    set_rng_seed(3)
    second = (torch.rand(2), random.random())
    assert torch.equal(first[0], second[0]) and first[1] == second[1]


def test_rng_state_round_trip():
    set_rng_seed(0)
    state = get_rng_state()
    a = (torch.rand(3), random.random())
    torch.rand(10)
    set_rng_state(state)
    b = (torch.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and a[1] == b[1]
    if runtime.numpy is not None:
        set_rng_state(state)
        x = runtime.numpy.random.rand()
        set_rng_state(state)
        assert runtime.numpy.random.rand() == x


ONE_NUMBER_SUPPORTS = [
    constraints.real,
    constraints.boolean,
    constraints.positive,
    constraints.nonnegative,
    constraints.unit_interval,
    constraints.nonnegative_integer,
    constraints.positive_integer,
]


def test_one_number_checks_cover_these_supports():
    assert set(runtime._ONE_NUMBER_CHECKS) == {
        id(support) for support in ONE_NUMBER_SUPPORTS
    }


@pytest.mark.parametrize("support", ONE_NUMBER_SUPPORTS)
@pytest.mark.parametrize(
    "number",
    [
        0.0,
        -0.0,
        1.0,
        0.5,
        -1.0,
        2.0,
        3.5,
        1e30,
        float("inf"),
        float("-inf"),
        float("nan"),
    ],
)
def test_one_number_checks_agree_with_torchs(support, number):
    # check_observation's plain-Python check of a one-element value against the torch check.
    check = runtime._ONE_NUMBER_CHECKS[id(support)]
    assert check(number) == bool(support.check(torch.tensor(number)))
    for value in (torch.tensor(number), torch.tensor([number])):
        assert check(value.item()) == bool(support.check(value).all())


@pytest.mark.parametrize("support", ONE_NUMBER_SUPPORTS)
def test_one_number_checks_cover_ints_and_bools(support):
    for value in (
        torch.tensor(0),
        torch.tensor(3),
        torch.tensor(-2),
        torch.tensor(True),
    ):
        assert runtime._ONE_NUMBER_CHECKS[id(support)](value.item()) == bool(
            support.check(value).all()
        )


@dataclasses.dataclass
class AtLeast(constraints.Constraint):
    # A user's constraint; a dataclass defines __eq__, so it is unhashable.
    bound: float = 0.0

    def check(self, value):
        return value >= self.bound


class NormalAboveZero(dist.Normal):
    @property
    def support(self):
        return AtLeast(0.0)


@pytest.mark.parametrize("value", [torch.tensor(1.0), torch.tensor([1.0, 2.0])])
def test_check_observation_takes_an_unhashable_user_constraint(value):
    check_observation(make_msg(name="y", fn=NormalAboveZero(0.0, 1.0), value=value))
    with pytest.raises(ValueError, match="'y'.*support"):
        check_observation(
            make_msg(name="y", fn=NormalAboveZero(0.0, 1.0), value=-value)
        )
