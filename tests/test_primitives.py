"""Tests of ppl.primitives: sample, param, factor, deterministic, module."""

import math
import warnings

import pyro  # first imported, with its warning silenced, in conftest.py
import pyro.distributions as pdist
import pytest
import torch
from pyro import poutine as pyro_poutine

import ppl.distributions as dist
from ppl.distributions import constraints
from ppl.handlers import condition, substitute, trace
from ppl.params import get_param_store
from ppl.primitives import (
    MODULE_NAMESPACE_DIVIDER,
    deterministic,
    factor,
    module,
    param,
    sample,
)
from ppl.runtime import Messenger, enable_validation, get_stack

pytestmark = pytest.mark.usefixtures("clean_state")


class Spy(Messenger):
    def __init__(self):
        self.messages = []

    def process_message(self, msg):
        self.messages.append(msg)


# --- sample ------------------------------------------------------------------------------------


def test_sample_without_handlers_draws_directly_without_a_message(monkeypatch):
    import ppl.primitives as primitives

    monkeypatch.setattr(
        primitives, "apply_stack", lambda msg: pytest.fail("built a message")
    )
    torch.manual_seed(0)
    x = sample("x", dist.Normal(0.0, 1.0))
    torch.manual_seed(0)
    assert torch.equal(x, dist.Normal(0.0, 1.0).rsample())


def test_sample_without_handlers_returns_obs_with_a_warning():
    obs = torch.tensor(1.5)
    with pytest.warns(RuntimeWarning, match="'x'"):
        assert sample("x", dist.Normal(0.0, 1.0), obs=obs) is obs


def test_sample_under_a_handler_sends_a_complete_message():
    spy = Spy()
    infer = {"enumerate": "parallel"}
    with spy:
        value = sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(0.5), infer=infer)
    (msg,) = spy.messages
    assert (
        value == 0.5
        and msg["is_observed"]
        and msg["type"] == "sample"
        and msg["name"] == "x"
    )
    assert set(msg) >= {
        "type",
        "name",
        "fn",
        "args",
        "kwargs",
        "value",
        "is_observed",
        "infer",
        "scale",
        "mask",
        "cond_indep_stack",
        "done",
        "stop",
        "continuation",
    }
    assert msg["scale"] == 1.0 and msg["mask"] is None and msg["cond_indep_stack"] == ()
    assert msg["infer"] == infer and msg["infer"] is not infer  # copied, as in Pyro


def test_infer_is_observed_overrides_obs():
    spy = Spy()
    with spy:
        sample(
            "x",
            dist.Normal(0.0, 1.0),
            obs=torch.tensor(0.5),
            infer={"is_observed": False},
        )
    assert (
        spy.messages[0]["is_observed"] is False
        and "is_observed" not in spy.messages[0]["infer"]
    )


@pytest.mark.parametrize("under_handler", [False, True])
@pytest.mark.parametrize("fn", [0.5, "Normal", torch.tensor(1.0), None])
def test_sample_of_a_non_distribution_names_the_site(fn, under_handler):
    with pytest.raises(TypeError, match="'weird'"):
        if under_handler:
            trace(lambda: sample("weird", fn)).get_trace()
        else:
            sample("weird", fn)


def test_sample_of_a_plain_torch_distribution_says_what_to_use():
    with pytest.raises(TypeError, match="ppl.distributions.Normal") as info:
        sample("z", torch.distributions.Normal(0.0, 1.0))
    assert "'z'" in str(info.value)


def test_pyro_distributions_work_in_ppl():
    tr = trace(lambda: sample("z", pdist.Normal(0.0, 1.0))).get_trace()
    assert tr.nodes["z"]["value"].shape == ()


# --- observed values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fn, obs, error",
    [
        (dist.Normal(torch.zeros(3), 1.0), torch.zeros(2), ValueError),  # shape
        # event shape
        (dist.Normal(torch.zeros(3), 1.0).to_event(1), torch.zeros(4), ValueError),
        (dist.Bernoulli(0.5), torch.tensor(0.5), ValueError),  # support
        (dist.Poisson(2.0), torch.tensor(-1.0), ValueError),  # support
        # not a tensor
        (dist.Normal(0.0, 1.0), 1.0, TypeError),
        # dtype: needs float
        (dist.Bernoulli(0.5), torch.tensor(1), TypeError),
    ],
)
def test_bad_observations_raise_naming_the_site(fn, obs, error):
    with pytest.raises(error, match="'data'"):
        trace(lambda: sample("data", fn, obs=obs)).get_trace()
    assert get_stack() == []


def test_bad_observations_from_condition_also_name_the_site():
    def model():
        sample("flip", dist.Bernoulli(0.5))

    with pytest.raises(ValueError, match="'flip'"):
        trace(condition(model, data={"flip": torch.tensor(2.0)})).get_trace()


def test_validation_off_skips_support_and_shape_checks():
    enable_validation(False)
    tr = trace(
        lambda: sample("x", dist.Bernoulli(0.5), obs=torch.tensor(0.5))
    ).get_trace()
    assert math.isclose(tr.log_prob_sum().item(), math.log(0.5), rel_tol=1e-6)
    tr = trace(
        lambda: sample("x", dist.Normal(torch.zeros(3), 1.0), obs=torch.zeros(1))
    ).get_trace()
    assert tr.nodes["x"]["value"].shape == (1,)


def test_observation_broadcasting_to_a_larger_shape_is_accepted():
    data = torch.zeros(4, 3)
    tr = trace(
        lambda: sample("x", dist.Normal(torch.zeros(3), 1.0), obs=data)
    ).get_trace()
    assert tr.log_prob_sum().item() == pytest.approx(
        12 * dist.Normal(0.0, 1.0).log_prob(torch.tensor(0.0)).item()
    )


# --- param -------------------------------------------------------------------------------------


def test_param_without_handlers_uses_the_store():
    p = param("p", torch.tensor(0.5), constraint=constraints.positive)
    assert "p" in get_param_store() and torch.allclose(p, get_param_store()["p"])
    assert torch.allclose(param("p"), p)  # looked up without an initial value


def test_param_under_trace_is_a_param_site_holding_the_store_value():
    def model():
        return param("loc", torch.tensor(0.3))

    tr = trace(model).get_trace()
    site = tr.nodes["loc"]
    assert site["type"] == "param" and tr.param_nodes == ["loc"]
    # the leaf itself, for constraints.real
    assert site["value"] is get_param_store()["loc"]
    assert site["args"][0] == "loc" and site["kwargs"]["constraint"] is constraints.real


def test_param_with_lazy_initial_value():
    calls = []

    def init():
        calls.append(1)
        return torch.ones(2)

    trace(lambda: param("w", init)).get_trace()
    trace(lambda: param("w", init)).get_trace()
    assert calls == [1]


def test_param_missing_raises_naming_the_param():
    with pytest.raises(KeyError, match="'nowhere'"):
        param("nowhere")
    with pytest.raises(KeyError, match="'nowhere'"):
        trace(lambda: param("nowhere")).get_trace()
    assert get_stack() == []


@pytest.mark.parametrize("under_handler", [False, True])
def test_param_redeclared_with_another_constraint_names_the_param(under_handler):
    param("scale", torch.tensor(1.0), constraint=constraints.positive)
    redeclare = lambda: param(
        "scale", torch.tensor(0.5), constraint=constraints.unit_interval
    )
    with pytest.raises(ValueError, match="'scale'"):
        trace(redeclare).get_trace() if under_handler else redeclare()


def test_param_through_substitute_leaves_the_store_alone():
    param("loc", torch.tensor(0.3))
    new = torch.tensor(-2.0)
    tr = trace(
        substitute(lambda: param("loc", torch.tensor(0.3)), data={"loc": new})
    ).get_trace()
    assert tr.nodes["loc"]["value"] is new
    assert get_param_store()["loc"].item() == pytest.approx(0.3)


def test_param_read_twice_in_one_trace_is_fine():
    def model():
        a = param("a", torch.tensor(1.0))
        b = param("a")
        return a + b

    tr = trace(model).get_trace()
    assert tr.param_nodes == ["a"]


# --- factor ------------------------------------------------------------------------------------


def test_factor_adds_its_log_factor_to_the_log_joint():
    def model():
        z = sample("z", dist.Normal(0.0, 1.0))
        factor("prefer_positive", -torch.relu(-z) * 3.0)
        return z

    tr = trace(condition(model, data={"z": torch.tensor(-0.5)})).get_trace()
    expected = dist.Normal(0.0, 1.0).log_prob(torch.tensor(-0.5)) - 1.5
    assert torch.allclose(tr.log_prob_sum(), expected)
    site = tr.nodes["prefer_positive"]
    assert site["is_observed"] and site["infer"] == {"is_auxiliary": True}
    assert site["value"].shape == (0,) and site["fn"].has_rsample is False
    assert tr.stochastic_nodes == []  # z observed; the factor is not latent


def test_factor_batched_and_with_gradient():
    log_factor = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    tr = trace(lambda: factor("f", log_factor)).get_trace()
    tr.compute_log_prob()
    assert torch.equal(tr.nodes["f"]["log_prob"], log_factor.detach())
    tr.log_prob_sum().backward()
    assert torch.equal(log_factor.grad, torch.ones(3))


def test_factor_matches_pyro():
    log_factor = torch.tensor([[0.5, -1.0], [2.0, 0.25]])
    ours = trace(lambda: factor("f", log_factor)).get_trace()
    theirs = pyro_poutine.trace(lambda: pyro.factor("f", log_factor)).get_trace()
    assert ours.nodes["f"]["value"].shape == theirs.nodes["f"]["value"].shape
    assert torch.allclose(ours.log_prob_sum(), theirs.log_prob_sum())


def test_factor_has_rsample_flag():
    tr = trace(lambda: factor("f", torch.tensor(0.0), has_rsample=True)).get_trace()
    assert tr.nodes["f"]["fn"].has_rsample is True


def test_factor_of_nan_names_the_site():
    def model():
        loc = sample("loc", dist.Normal(0.0, 1.0))
        factor("f", loc * float("nan"))

    with pytest.raises(ValueError, match="factor site 'f'.*nan") as info:
        trace(model).get_trace()
    assert "log_density" not in str(info.value)  # not Delta's internals
    assert get_stack() == []


def test_factor_of_a_non_number_names_the_site():
    with pytest.raises(TypeError, match="factor site 'f'"):
        trace(lambda: factor("f", "large")).get_trace()


# --- deterministic -----------------------------------------------------------------------------


def test_deterministic_records_a_value_that_adds_nothing():
    def model():
        z = sample("z", dist.Normal(0.0, 1.0))
        return deterministic("z_squared", z**2)

    torch.manual_seed(0)
    tr = trace(model).get_trace()
    z = tr.nodes["z"]["value"]
    site = tr.nodes["z_squared"]
    assert (
        torch.equal(site["value"], z**2)
        and tr.nodes["_RETURN"]["value"] is site["value"]
    )
    assert site["is_observed"] and site["infer"] == {"_deterministic": True}
    assert torch.allclose(tr.log_prob_sum(), dist.Normal(0.0, 1.0).log_prob(z))


def test_deterministic_event_dim_and_no_warning_without_handlers():
    value = torch.ones(2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert deterministic("d", value) is value
    tr = trace(lambda: deterministic("d", value, event_dim=1)).get_trace()
    assert tr.nodes["d"]["fn"].event_shape == (3,) and tr.nodes["d"][
        "fn"
    ].batch_shape == (2,)
    tr = trace(lambda: deterministic("d", value)).get_trace()
    assert tr.nodes["d"]["fn"].event_shape == (2, 3)


@pytest.mark.parametrize("number", [1.0, 2, True])
def test_deterministic_accepts_a_python_number(number):
    # Pyro raises AttributeError ('float' object has no attribute 'ndim'); ppl converts, as factor does.
    tr = trace(lambda: deterministic("d", number)).get_trace()
    assert (
        torch.equal(tr.nodes["d"]["value"], torch.as_tensor(number))
        and tr.log_prob_sum() == 0.0
    )
    value = deterministic("d", number)
    assert isinstance(value, torch.Tensor) and value.item() == number


@pytest.mark.parametrize("bad", ["large", None, [1.0, 2.0], {"a": 1.0}])
def test_deterministic_rejects_what_is_not_a_number_naming_the_site(bad):
    with pytest.raises(TypeError, match="deterministic site 'd'.*torch.tensor"):
        trace(lambda: deterministic("d", bad)).get_trace()
    with pytest.raises(TypeError, match="deterministic site 'd'"):
        deterministic("d", bad)
    assert get_stack() == []


def test_deterministic_with_a_bad_event_dim_names_the_site():
    with pytest.raises(ValueError, match="deterministic site 'd'.*event_dim"):
        trace(lambda: deterministic("d", torch.zeros(2), event_dim=2)).get_trace()


# --- module ------------------------------------------------------------------------------------


def make_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)
    )


def test_module_registers_parameters_under_pyros_names():
    net = make_net()
    names = [f"net{MODULE_NAMESPACE_DIVIDER}{n}" for n, _ in net.named_parameters()]
    original = {n: p.detach().clone() for n, p in net.named_parameters()}
    assert module("net", net) is net
    store = get_param_store()
    assert (
        list(store.keys())
        == names
        == ["net$$$0.weight", "net$$$0.bias", "net$$$2.weight", "net$$$2.bias"]
    )
    for name, p in net.named_parameters():
        assert p is store[f"net$$${name}"]  # the module now holds the store's tensors
        assert torch.equal(p.detach(), original[name])


def test_module_params_match_pyro_names():
    ours = trace(lambda: module("net", make_net())).get_trace()
    theirs = pyro_poutine.trace(lambda: pyro.module("net", make_net())).get_trace()
    assert ours.param_nodes == theirs.param_nodes
    for name in ours.param_nodes:
        assert torch.equal(
            ours.nodes[name]["value"].detach(), theirs.nodes[name]["value"].detach()
        )


def test_training_the_store_trains_the_module():
    net = module("net", make_net())
    x = torch.ones(4, 2)
    before = net(x).detach().clone()
    optimizer = torch.optim.SGD(
        [leaf for _, leaf in get_param_store().named_parameters()], lr=0.1
    )
    net(x).sum().backward()
    optimizer.step()
    assert not torch.allclose(net(x), before)


def test_module_called_again_is_stable():
    net = make_net()
    module("net", net)
    first = [p for p in net.parameters()]
    module("net", net)
    assert (
        all(a is b for a, b in zip(first, net.parameters()))
        and len(get_param_store()) == 4
    )


def test_module_rejects_bad_input():
    with pytest.raises(ValueError, match="must not contain"):
        module("a$$$b", make_net())
    with pytest.raises(TypeError, match="'net'"):
        module("net", torch.nn.Linear)
