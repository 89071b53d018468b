"""Tests of ppl.optim's wrappers (chapter 8): lazy optimizers for params that appear during training.

The oracles are torch.optim itself (one optimizer per param, as Pyro builds them) and Pyro's
ClippedAdam. Every check compares iterates exactly or to float rounding, so any difference in
the update rule, in which params are stepped or in the optimizer state fails the test.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import ppl
from ppl.optim import SGD, Adam, ClippedAdam, ClippedAdamOptimizer, PyroOptim

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from pyro.optim import ClippedAdam as PyroClippedAdamWrapper
    from pyro.optim.clipped_adam import ClippedAdam as PyroClippedAdam


@pytest.fixture(autouse=True)
def clean_store():
    ppl.clear_param_store()
    yield
    ppl.clear_param_store()


TARGETS = {
    "a": torch.tensor([1.0, -2.0, 3.0]),
    "b": torch.tensor(0.5),
    "c": torch.tensor([[2.0, -1.0]]),
}


def quadratic_grads(params: dict[str, torch.Tensor], step: int) -> None:
    """Set each param's .grad to the gradient of a step-dependent quadratic (no randomness)."""
    for name, p in params.items():
        p.grad = 2 * (p.detach() - TARGETS[name]) * (1 + 0.1 * step)


def leaves(names, init=0.0) -> dict[str, torch.Tensor]:
    return {n: torch.full_like(TARGETS[n], init).requires_grad_() for n in names}


def run_torch(constructor, kwargs, schedule, num_steps=20):
    """Reference: one torch optimizer per param, created the first step the param is used."""
    params, optims = leaves(TARGETS), {}
    for step in range(num_steps):
        used = {n: params[n] for n in schedule(step)}
        quadratic_grads(used, step)
        for n, p in used.items():
            if n not in optims:
                optims[n] = constructor([p], **kwargs)
            optims[n].step()
            p.grad = None
    return params


def run_ppl(optim: PyroOptim, schedule, num_steps=20):
    params = leaves(TARGETS)
    for step in range(num_steps):
        used = {n: params[n] for n in schedule(step)}
        quadratic_grads(used, step)
        optim(list(used.values()))
        for p in used.values():
            p.grad = None
    return params, optim


ALL = lambda step: ["a", "b", "c"]
LATE_C = lambda step: ["a", "b"] + (["c"] if step >= 7 else [])
SOMETIMES_B = lambda step: ["a", "c"] + (["b"] if step % 3 == 0 else [])


@pytest.mark.parametrize(
    "schedule", [ALL, LATE_C, SOMETIMES_B], ids=["all", "late", "sometimes"]
)
@pytest.mark.parametrize(
    "wrapper, constructor, kwargs",
    [
        (Adam, torch.optim.Adam, {"lr": 0.1}),
        (
            Adam,
            torch.optim.Adam,
            {"lr": 0.05, "betas": (0.8, 0.99), "weight_decay": 0.01},
        ),
        (SGD, torch.optim.SGD, {"lr": 0.05}),
        (SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ],
)
def test_same_iterates_as_one_torch_optimizer_per_param(
    wrapper, constructor, kwargs, schedule
):
    ours, _ = run_ppl(wrapper(kwargs), schedule)
    theirs = run_torch(constructor, kwargs, schedule)
    for name in TARGETS:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-6, atol=1e-7)


def test_one_torch_optimizer_picks_up_late_params():
    ours, optim = run_ppl(Adam({"lr": 0.1}), LATE_C)
    assert isinstance(optim.optimizer, torch.optim.Adam)
    assert len(optim.optimizer.param_groups) == 1
    assert len(optim.optimizer.param_groups[0]["params"]) == 3
    assert optim.optimizer.param_groups[0]["foreach"] is True
    # c appeared at step 7 and took 13 Adam steps: its step count says so
    assert int(optim.optimizer.state[ours["c"]]["step"]) == 13
    assert int(optim.optimizer.state[ours["a"]]["step"]) == 20


def test_params_not_passed_are_not_updated_even_with_a_gradient():
    params = leaves(["a", "b"])
    optim = Adam({"lr": 0.1})
    quadratic_grads(params, 0)
    optim(list(params.values()))
    before = params["b"].detach().clone()
    quadratic_grads(params, 1)  # b has a gradient, but this step uses only a
    optim([params["a"]])
    assert torch.equal(params["b"].detach(), before)
    assert params["b"].grad is not None  # its gradient is left as it was
    assert int(optim.optimizer.state[params["b"]]["step"]) == 1


def test_callable_optim_args_one_argument_gets_the_param_name():
    a = ppl.param("a", torch.zeros(3))
    b = ppl.param("b", torch.tensor(0.0))
    optim = SGD(lambda name: {"lr": 0.1 if name == "a" else 0.01})
    for step in range(3):
        quadratic_grads({"a": a, "b": b}, step)
        optim([a, b])
        a.grad = b.grad = None
    lrs = sorted(group["lr"] for group in optim.optimizer.param_groups)
    assert lrs == [0.01, 0.1]
    reference = run_torch(
        torch.optim.SGD, {"lr": 0.01}, lambda step: ["b"], num_steps=3
    )
    torch.testing.assert_close(b.detach(), reference["b"].detach())


def test_callable_optim_args_two_arguments_get_module_and_param_names():
    seen = []

    def per_param(module_name, param_name):
        seen.append((module_name, param_name))
        return {"lr": 0.5 if param_name == "weight" else 0.0}

    net = ppl.module("net", torch.nn.Linear(2, 1))
    loc = ppl.param("loc", torch.tensor(0.0))
    weight, bias = net.weight, net.bias
    optim = SGD(per_param)
    before = {"weight": weight.detach().clone(), "bias": bias.detach().clone()}
    for p in (weight, bias, loc):
        p.grad = torch.ones_like(p)
    optim([weight, bias, loc])
    assert sorted(seen) == [("loc", "loc"), ("net", "bias"), ("net", "weight")]
    assert torch.equal(weight.detach(), before["weight"] - 0.5)
    assert torch.equal(bias.detach(), before["bias"])


def test_callable_optim_args_need_params_from_the_store():
    stray = torch.zeros(2, requires_grad=True)
    stray.grad = torch.ones(2)
    with pytest.raises(ValueError, match="param store"):
        Adam(lambda name: {"lr": 0.1})([stray])


def test_optim_args_must_be_a_dict_or_a_function():
    with pytest.raises(TypeError, match="optim_args"):
        Adam(0.01)


def test_params_with_different_settings_get_their_own_groups_with_torch_defaults():
    a = ppl.param("a", torch.zeros(3))
    b = ppl.param("b", torch.tensor(0.0))
    optim = Adam(
        lambda name: {"lr": 0.1, "betas": (0.5, 0.5)} if name == "a" else {"lr": 0.2}
    )
    a.grad, b.grad = torch.ones(3), torch.ones(())
    optim([a, b])
    groups = {len(g["params"][0].shape): g for g in optim.optimizer.param_groups}
    assert groups[1]["betas"] == (0.5, 0.5)
    assert groups[0]["betas"] == (0.9, 0.999)  # torch's default, not a's setting
    assert groups[0]["lr"] == 0.2


def test_clip_args_clip_each_params_gradient_norm():
    params = leaves(["a"])
    params["a"].grad = torch.tensor([30.0, 40.0, 0.0])  # norm 50
    SGD({"lr": 1.0}, clip_args={"clip_norm": 5.0})([params["a"]])
    torch.testing.assert_close(params["a"].detach(), torch.tensor([-3.0, -4.0, 0.0]))


@pytest.mark.parametrize(
    "settings",
    [
        {"lr": 0.05},
        {"lr": 0.1, "lrd": 0.95, "clip_norm": 0.5},
        {
            "lr": 0.1,
            "lrd": 0.99,
            "clip_norm": 2.0,
            "weight_decay": 0.1,
            "centered_variance": True,
        },
    ],
)
def test_clipped_adam_matches_pyros(settings):
    ours, _ = run_ppl(ClippedAdam(settings), LATE_C, num_steps=25)
    theirs = run_torch(PyroClippedAdam, settings, LATE_C, num_steps=25)
    for name in TARGETS:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-6, atol=1e-7)


def test_clipped_adam_clips_elements_and_decays_the_learning_rate():
    p = torch.zeros(2, requires_grad=True)
    optimizer = ClippedAdamOptimizer(
        [p], lr=0.1, clip_norm=1.0, lrd=0.5, betas=(0.0, 0.0)
    )
    # betas 0: the update is lr * g / |g| with the clipped g = (1, -0.25): a plain sign step
    p.grad = torch.tensor([10.0, -0.25])
    optimizer.step()
    # the param's own rate decays; the group keeps the starting lr
    assert optimizer.state[p]["lr"] == pytest.approx(0.05)
    assert optimizer.param_groups[0]["lr"] == 0.1
    torch.testing.assert_close(
        p.detach(), torch.tensor([-0.05, 0.05]), rtol=1e-5, atol=1e-7
    )
    p.grad = torch.tensor([0.0, 3.0])
    optimizer.step()
    assert optimizer.state[p]["lr"] == pytest.approx(0.025)


def test_clipped_adam_decays_each_params_rate_at_its_own_updates_as_pyro_does():
    # Issue 10: ppl decayed the rate of the whole group at every step, so b, updated at
    # one step in three, ended at lr * lrd**30 where Pyro's per-param optimizers give
    # lr * lrd**10. The oracle is Pyro's wrapper itself, one optimizer per param.
    settings = {"lr": 0.05, "lrd": 0.9, "clip_norm": 5.0}
    ours = ClippedAdam(settings)
    theirs = PyroClippedAdamWrapper(settings)
    ppl_params, pyro_params = leaves(TARGETS), leaves(TARGETS)
    for step in range(30):
        used = SOMETIMES_B(step)
        for params, optim in ((ppl_params, ours), (pyro_params, theirs)):
            quadratic_grads({n: params[n] for n in used}, step)
            optim([params[n] for n in used])
            for n in used:
                params[n].grad = None
    for name in TARGETS:
        torch.testing.assert_close(
            ppl_params[name], pyro_params[name], rtol=0, atol=1e-6
        )
    for name in TARGETS:
        lr = ours.optimizer.state[ppl_params[name]]["lr"]
        pyro_lr = theirs.optim_objs[pyro_params[name]].param_groups[0]["lr"]
        assert abs(lr - pyro_lr) < 1e-12
    updates_of_b = len([s for s in range(30) if "b" in SOMETIMES_B(s)])
    assert ours.optimizer.state[ppl_params["b"]]["lr"] == pytest.approx(
        0.05 * 0.9**updates_of_b
    )
    assert updates_of_b == 10


def test_clipped_adam_rejects_bad_settings():
    with pytest.raises(ValueError, match="clip_norm"):
        ClippedAdamOptimizer([torch.zeros(1, requires_grad=True)], clip_norm=0.0)


@pytest.mark.parametrize(
    "wrapper, settings", [(Adam, {"lr": 0.1}), (ClippedAdam, {"lr": 0.1, "lrd": 0.9})]
)
def test_get_state_then_set_state_continues_the_same_run(wrapper, settings):
    def store_params():
        return {n: ppl.param(n, torch.zeros_like(TARGETS[n])) for n in TARGETS}

    def steps(optim, params, first, last):
        for step in range(first, last):
            quadratic_grads(params, step)
            optim(list(params.values()))
            for p in params.values():
                p.grad = None

    params = store_params()
    steps(wrapper(settings), params, 0, 12)
    straight = {n: p.detach().clone() for n, p in params.items()}

    ppl.clear_param_store()
    params = store_params()
    first = wrapper(settings)
    steps(first, params, 0, 5)
    state = first.get_state()
    assert set(state) == set(TARGETS)
    second = wrapper(settings)
    second.set_state(state)
    steps(second, params, 5, 12)
    for name in TARGETS:
        torch.testing.assert_close(
            params[name].detach(), straight[name], rtol=0, atol=0
        )

    # the saved state is a copy: stepping first leaves it unchanged
    steps(first, params, 5, 6)
    assert int(state["a"]["state"][0]["step"]) == 5


def test_set_state_on_a_running_optimizer_rewinds_its_state(tmp_path):
    params = {n: ppl.param(n, torch.zeros_like(TARGETS[n])) for n in TARGETS}
    optim = Adam({"lr": 0.1})
    quadratic_grads(params, 0)
    optim(list(params.values()))
    optim.save(tmp_path / "optim.pt")
    for step in range(1, 4):
        quadratic_grads(params, step)
        optim(list(params.values()))
    optim.load(tmp_path / "optim.pt")
    quadratic_grads(params, 4)
    optim(list(params.values()))
    assert int(optim.optimizer.state[params["a"]]["step"]) == 2


def test_get_state_is_in_pyros_per_param_format():
    a = ppl.param("a", torch.zeros(3))
    optim = Adam({"lr": 0.1})
    for step in range(3):
        quadratic_grads({"a": a}, step)
        optim([a])
        a.grad = None
    fresh = torch.zeros(3, requires_grad=True)
    reference = torch.optim.Adam([fresh], lr=0.1)
    # torch reads it as its own state_dict
    reference.load_state_dict(optim.get_state()["a"])
    with torch.no_grad():
        fresh.copy_(a)
    quadratic_grads({"a": a}, 3)
    fresh.grad = a.grad.clone()
    optim([a])
    reference.step()
    torch.testing.assert_close(fresh.detach(), a.detach())


def test_clipped_adam_state_moves_between_ppl_and_pyro_in_both_directions():
    # get_state writes each param's decayed rate as its group's lr, Pyro's format, and
    # set_state reads Pyro's: a run continues the same after either hand-over.
    settings = {"lr": 0.1, "lrd": 0.8}
    a = ppl.param("a", torch.zeros(3))
    ours = ClippedAdam(settings)
    for step in range(4):
        quadratic_grads({"a": a}, step)
        ours([a])
        a.grad = None
    state = ours.get_state()["a"]
    assert state["param_groups"][0]["lr"] == pytest.approx(0.1 * 0.8**4)
    assert "lr" not in state["state"][0]
    # ppl -> Pyro: Pyro's optimizer over a copy of the param continues the run
    fresh = a.detach().clone().requires_grad_()
    theirs = PyroClippedAdam([fresh], **settings)
    theirs.load_state_dict(state)
    for step in range(4, 7):
        quadratic_grads({"a": a}, step)
        fresh.grad = a.grad.clone()
        ours([a])
        theirs.step()
        a.grad = None
    torch.testing.assert_close(fresh.detach(), a.detach(), rtol=0, atol=0)
    # Pyro -> ppl: a new wrapper takes Pyro's state and continues with it
    second = ClippedAdam(settings)
    second.set_state({"a": theirs.state_dict()})
    for step in range(7, 10):
        quadratic_grads({"a": a}, step)
        fresh.grad = a.grad.clone()
        second([a])
        theirs.step()
        a.grad = None
    torch.testing.assert_close(fresh.detach(), a.detach(), rtol=0, atol=0)
    assert second.get_state()["a"]["param_groups"][0]["lr"] == pytest.approx(
        0.1 * 0.8**10
    )


# A step is all or nothing (issue 9, defects 1 and 2): whatever fails, the params, the torch
# optimizer's state and settings, and the wrapper's bookkeeping are as they were before it.


def everything(optim: PyroOptim, params: dict[str, torch.Tensor]) -> dict:
    """Deep copies of what an update may change: values, per-param state, group settings."""

    def copy(value):
        return value.detach().clone() if isinstance(value, torch.Tensor) else value

    torch_optim = optim.optimizer
    state = (
        {}
        if torch_optim is None
        else {
            n: {k: copy(v) for k, v in torch_optim.state[p].items()}
            for n, p in params.items()
            if p in torch_optim.state
        }
    )
    groups = (
        []
        if torch_optim is None
        else [
            {k: copy(v) for k, v in g.items() if k != "params"}
            | {"params": [id(p) for p in g["params"]]}
            for g in torch_optim.param_groups
        ]
    )
    return {
        "values": {n: copy(p) for n, p in params.items()},
        "state": state,
        "groups": groups,
    }


def assert_same(before, after) -> None:
    """Recursively equal: dicts key by key, lists item by item, tensors exactly."""
    if isinstance(before, dict):
        assert before.keys() == after.keys()
        for key in before:
            assert_same(before[key], after[key])
    elif isinstance(before, list):
        assert len(before) == len(after)
        for b, a in zip(before, after):
            assert_same(b, a)
    elif isinstance(before, torch.Tensor):
        assert torch.equal(before, after)
    else:
        assert before == after


def test_an_unknown_optim_arg_fails_when_the_wrapper_is_built():
    with pytest.raises(TypeError, match=r"'bogus'.*momentum"):
        SGD({"lr": 0.1, "bogus": 1})
    with pytest.raises(TypeError, match="'clip'"):
        ClippedAdam({"lr": 0.1, "clip": 1.0})
    Adam({"lr": 0.1, "betas": (0.8, 0.9), "amsgrad": True})  # known arguments are fine


def test_settings_that_torch_rejects_at_the_first_update_leave_the_wrapper_as_it_was():
    # Settings from a function are known only at a param's first update.
    settings = {"lr": 0.1, "bogus": 1}
    params = {n: ppl.param(n, torch.zeros_like(TARGETS[n])) for n in ("a", "b")}
    optim = SGD(lambda name: settings)
    quadratic_grads(params, 0)
    with pytest.raises(TypeError, match=r"'bogus'.*'a'"):
        optim(list(params.values()))
    assert optim.optimizer is None
    assert all(torch.equal(p.detach(), torch.zeros_like(p)) for p in params.values())
    del settings["bogus"]  # fixed: the same wrapper now takes exactly torch's steps
    for step in range(3):
        quadratic_grads(params, step)
        optim(list(params.values()))
        for p in params.values():
            p.grad = None
    reference = run_torch(
        torch.optim.SGD, {"lr": 0.1}, lambda step: ["a", "b"], num_steps=3
    )
    for name, p in params.items():
        torch.testing.assert_close(p.detach(), reference[name].detach(), rtol=0, atol=0)


class FlakyAdam(torch.optim.Adam):
    """torch.optim.Adam that raises after its update, when ``fail`` is set: a fault mid-step."""

    fail = False

    def step(self, closure=None):
        loss = super().step(closure)
        if FlakyAdam.fail:
            raise RuntimeError("fault after the update")
        return loss


@pytest.mark.parametrize(
    "late", [False, True], ids=["known-params", "a-new-param-joins"]
)
def test_an_optimizer_step_that_raises_changes_nothing(late):
    def run(fail_at):
        params = leaves(TARGETS)
        optim = PyroOptim(FlakyAdam, {"lr": 0.1})
        for step in range(6):
            used = {n: params[n] for n in (LATE_C(step + 4) if late else ALL(step))}
            quadratic_grads(used, step)
            if step == fail_at:
                before = everything(optim, used)
                FlakyAdam.fail = True
                try:
                    with pytest.raises(RuntimeError, match="fault after the update"):
                        optim(list(used.values()))
                finally:
                    FlakyAdam.fail = False
                assert_same(before, everything(optim, used))
            optim(list(used.values()))  # the same update again, now without the fault
            for p in used.values():
                p.grad = None
        return params

    ours, straight = run(fail_at=3), run(fail_at=None)
    for name in TARGETS:
        torch.testing.assert_close(ours[name], straight[name], rtol=0, atol=0)


@pytest.mark.parametrize(
    "wrapper, settings",
    [
        (Adam, {"lr": 0.1}),
        (ClippedAdam, {"lr": 0.1, "lrd": 0.9}),
        (SGD, {"lr": 0.1, "momentum": 0.9}),
    ],
)
def test_a_param_that_is_not_finite_after_the_update_is_rolled_back(wrapper, settings):
    params = {n: ppl.param(n, torch.zeros_like(TARGETS[n])) for n in ("a", "b")}
    optim = wrapper(settings)
    for step in range(3):
        quadratic_grads(params, step)
        optim(list(params.values()))
    before = everything(optim, params)
    # a gradient that makes b nan (ClippedAdam clips inf)
    params["b"].grad = torch.tensor(float("nan"))
    with pytest.raises(
        FloatingPointError, match=r"param 'b'.*undone.*learning rate"
    ) as info:
        optim(list(params.values()))
    assert "'a'" not in str(info.value)
    assert_same(before, everything(optim, params))
