"""ppl.nn (chapter 12): PyroModule, PyroParam, PyroSample, against Pyro 1.9's pyro.nn."""

import copy
import pickle
import warnings

import pytest
import torch
from torch import nn

import ppl
import ppl.distributions as dist
import ppl.nn
from ppl.distributions import constraints
from ppl.handlers import trace
from ppl.infer import SVI, Trace_ELBO
from ppl.nn import (
    PyroModule,
    PyroModuleList,
    PyroParam,
    PyroSample,
    pyro_method,
    to_pyro_module_,
)
from ppl.optim import Adam

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import pyro
    import pyro.nn
    import pyro.optim


@pytest.fixture(autouse=True)
def fresh_stores():
    ppl.clear_param_store()
    pyro.clear_param_store()
    yield
    ppl.clear_param_store()
    pyro.clear_param_store()


LIBRARIES = {
    "ppl": (ppl, ppl.nn, Adam, SVI, Trace_ELBO),
    "pyro": (pyro, pyro.nn, pyro.optim.Adam, pyro.infer.SVI, pyro.infer.Trace_ELBO),
}


def regression_program(P, N):
    """A model and a guide with every kind of attribute: nn.Parameter, PyroParam with a
    constraint, PyroSample with a fixed prior and with a prior that reads the module."""
    D = P.distributions

    class Model(N.PyroModule):
        def __init__(self):
            super().__init__()
            self.linear = N.PyroModule[nn.Linear](3, 1)
            self.linear.weight = N.PyroSample(
                D.Normal(0.0, 1.0).expand([1, 3]).to_event(2)
            )
            self.prior_scale = N.PyroParam(
                torch.tensor(2.0), constraint=constraints.positive
            )
            self.linear.bias = N.PyroSample(
                lambda self: D.Normal(0.0, 5.0).expand([1]).to_event(1)
            )

        def forward(self, x, y):
            sigma = P.sample("sigma", D.LogNormal(0.0, self.prior_scale))
            mean = self.linear(x).squeeze(-1)
            with P.plate("data", len(x)):
                P.sample("obs", D.Normal(mean, sigma), obs=y)

    class Guide(N.PyroModule):
        def __init__(self):
            super().__init__()
            self.loc = nn.Parameter(torch.zeros(5))
            self.scale = N.PyroParam(
                torch.full((5,), 0.1), constraint=constraints.positive
            )

        def forward(self, x, y):
            z = P.sample(
                "z",
                D.Normal(self.loc, self.scale).to_event(1),
                infer={"is_auxiliary": True},
            )
            P.sample("linear.weight", D.Delta(z[:3].reshape(1, 3), event_dim=2))
            P.sample("linear.bias", D.Delta(z[3:4], event_dim=1))
            P.sample("sigma", D.Delta(z[4].exp()))

    return Model(), Guide()


def vae_program(P, N):
    D = P.distributions

    class VAE(N.PyroModule):
        def __init__(self):
            super().__init__()
            self.decoder = N.PyroModule[nn.Linear](2, 6)
            self.encoder = N.PyroModule[nn.Linear](6, 4)

        @N.pyro_method
        def model(self, x):
            with P.plate("data", len(x), subsample_size=5) as idx:
                z = P.sample("z", D.Normal(torch.zeros(2), 1.0).to_event(1))
                logits = self.decoder(z)
                P.sample("x", D.Binomial(4, logits=logits).to_event(1), obs=x[idx])

        @N.pyro_method
        def guide(self, x):
            with P.plate("data", len(x), subsample_size=5) as idx:
                h = self.encoder(x[idx])
                P.sample("z", D.Normal(h[..., :2], h[..., 2:].exp()).to_event(1))

    vae = VAE()
    return vae.model, vae.guide


def fit(library, program, data, num_steps=30):
    P, N, optim, svi_class, elbo = LIBRARIES[library]
    P.clear_param_store()
    torch.manual_seed(0)
    model, guide = program(P, N)
    svi = svi_class(model, guide, optim({"lr": 0.05}), elbo())
    losses = torch.tensor([svi.step(*data) for _ in range(num_steps)])
    store = P.get_param_store()
    values = {name: store[name].detach().clone() for name in store.keys()}
    return losses, values


@pytest.mark.parametrize("program", [regression_program, vae_program])
def test_same_names_and_svi_steps_as_pyro(program):
    torch.manual_seed(1)
    if program is regression_program:
        x = torch.randn(20, 3)
        data = (x, x @ torch.tensor([1.0, -2.0, 0.5]) + 1.0 + 0.3 * torch.randn(20))
    else:
        data = (torch.randint(0, 5, (12, 6)).float(),)
    ours, our_params = fit("ppl", program, data)
    theirs, their_params = fit("pyro", program, data)
    assert sorted(our_params) == sorted(their_params)
    assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    for name, value in our_params.items():
        assert torch.allclose(value, their_params[name], rtol=1e-4, atol=1e-5), name


def test_svi_trains_the_module_itself():
    torch.manual_seed(1)
    x = torch.randn(20, 3)
    y = x.sum(-1)
    model, guide = regression_program(ppl, ppl.nn)
    svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO())
    before = guide.loc.detach().clone()
    svi.step(x, y)
    store = ppl.get_param_store()
    assert store["loc"] is guide.loc
    assert store["scale"].unconstrained() is guide.scale_unconstrained
    assert not torch.equal(guide.loc.detach(), before)


class Twice(PyroModule):
    def __init__(self):
        super().__init__()
        self.linear = PyroModule[nn.Linear](3, 1)
        self.linear.weight = PyroSample(
            dist.Normal(0.0, 1.0).expand([1, 3]).to_event(2)
        )

    def forward(self, x):
        return self.linear(x), self.linear.weight


def test_one_draw_per_call_and_fresh_draws_across_calls():
    twice = Twice()
    tr = trace(twice).get_trace(torch.eye(3))
    output, weight = tr.nodes["_RETURN"]["value"]
    samples = [n for n, s in tr.nodes.items() if s["type"] == "sample"]
    assert samples == ["linear.weight"]
    assert torch.allclose(output.squeeze() - twice.linear.bias, weight.squeeze())
    assert not torch.equal(twice(torch.eye(3))[1], twice(torch.eye(3))[1])
    assert "weight" not in dict(twice.linear.named_parameters())


@pytest.mark.parametrize("N", [ppl.nn, pyro.nn], ids=["ppl", "pyro"])
def test_a_prior_function_runs_once_per_call(N):
    # The cache is checked before the prior function is called, as in Pyro: a weight
    # read twice in one call evaluates its prior once.
    calls, D = [], dist if N is ppl.nn else pyro.distributions

    def prior(self):
        calls.append(1)
        return D.Normal(0.0, 1.0)

    class Reads(N.PyroModule):
        def __init__(self):
            super().__init__()
            self.w = N.PyroSample(prior)

        def forward(self):
            return self.w + self.w

    Reads()()
    assert len(calls) == 1


def test_pyro_sample_over_a_parameter_removes_it_as_in_pyro():
    ours, theirs = PyroModule[nn.Linear](2, 2), pyro.nn.PyroModule[nn.Linear](2, 2)
    ours.weight = PyroSample(dist.Normal(0.0, 1.0).expand([2, 2]).to_event(2))
    theirs.weight = pyro.nn.PyroSample(
        pyro.distributions.Normal(0.0, 1.0).expand([2, 2]).to_event(2)
    )
    assert list(dict(ours.named_parameters())) == list(dict(theirs.named_parameters()))
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["bias"]


def sites(P, module, *args):
    nodes = P.poutine.trace(module).get_trace(*args).nodes
    return [
        (s["type"], n) for n, s in nodes.items() if s["type"] in ("param", "sample")
    ]


def nested(N, D):
    class Inner(N.PyroModule):
        def __init__(self):
            super().__init__()
            self.scale = N.PyroParam(torch.tensor(1.0), constraint=constraints.positive)
            self.noise = N.PyroSample(lambda self: D.Normal(0.0, self.scale))
            self.twice_noise = N.PyroSample(lambda self: 2 * self.noise)

    class Outer(N.PyroModule):
        def __init__(self):
            super().__init__("root")
            self.inner = Inner()
            self.plain = nn.Linear(2, 1)

        def forward(self, x):
            return self.plain(x) + self.inner.noise + self.inner.twice_noise

    return Outer()


def test_nested_names_plain_modules_and_deterministic_priors_as_in_pyro():
    torch.manual_seed(0)
    ours = sites(ppl, nested(ppl.nn, dist), torch.ones(2))
    theirs = sites(pyro, nested(pyro.nn, pyro.distributions), torch.ones(2))
    assert ours == theirs
    assert ("param", "root.plain$$$weight") in ours
    assert ("sample", "root.inner.twice_noise") in ours


def test_to_pyro_module_names_as_in_pyro():
    def converted(P, convert):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
        convert(net)
        return net, sites(P, net, torch.ones(3))

    net, ours = converted(ppl, to_pyro_module_)
    _, theirs = converted(pyro, pyro.nn.module.to_pyro_module_)
    assert ours == theirs
    assert isinstance(net, PyroModule[nn.Sequential])
    assert isinstance(net[0], PyroModule[nn.Linear])


def test_mixin_classes_are_cached():
    assert PyroModule[nn.Linear] is PyroModule[nn.Linear]
    assert PyroModule[nn.Module] is PyroModule
    assert PyroModule[PyroModule[nn.Linear]] is PyroModule[nn.Linear]
    assert issubclass(PyroModule[nn.Linear], nn.Linear)
    with pytest.raises(TypeError, match="nn.Module subclass"):
        PyroModule[3]


def test_errors_name_the_attribute_and_change_nothing():
    layer = PyroModule[nn.Linear](3, 1)
    with pytest.raises(TypeError, match="'weight' of PyroLinear"):
        layer.weight = PyroSample(3.0)
    with pytest.raises(TypeError, match="one argument"):
        layer.weight = PyroSample(lambda a, b: dist.Normal(0.0, 1.0))
    with pytest.raises(ValueError, match="'scale' of PyroLinear.*constraint"):
        layer.scale = PyroParam(torch.tensor(-1.0), constraint=constraints.positive)
    assert isinstance(layer.weight, nn.Parameter) and not layer._pyro_params
    layer.bias = PyroSample(lambda self: "not a distribution")
    with pytest.raises(TypeError, match="PyroSample 'bias'"):
        layer(torch.ones(3))
    with pytest.raises(TypeError, match="decorator"):

        class Decorated(PyroModule):
            x = PyroParam(torch.zeros(2))


def test_store_constraint_clash_raises():
    first = PyroModule()
    first.x = PyroParam(torch.tensor(1.0), constraint=constraints.positive)
    second = PyroModule()
    second.x = PyroParam(torch.tensor(0.5), constraint=constraints.unit_interval)

    def read(module):
        return pyro_method(lambda self: self.x)(module)

    read(first)
    with pytest.raises(ValueError, match="'x'.*constraint"):
        read(second)


def test_store_tensor_wins_as_in_pyro():
    # A store loaded with other values: the module adopts them (Pyro's behaviour)
    def values_after_load(P, N):
        P.clear_param_store()
        module = N.PyroModule()
        module.x = N.PyroParam(torch.tensor(1.0), constraint=constraints.positive)
        P.get_param_store().set_state(
            {
                "params": {"x": torch.tensor(0.0).log().clamp(min=-5.0)},
                "constraints": {"x": constraints.positive},
            }
        )

        @N.pyro_method
        def read(self):
            return self.x

        return read(module).item(), module.x_unconstrained.item()

    assert values_after_load(ppl, ppl.nn) == pytest.approx(
        values_after_load(pyro, pyro.nn)
    )


def test_tensor_assignment_and_deletion_as_in_pyro():
    def run(P, N):
        P.clear_param_store()
        module = N.PyroModule()
        module.x = N.PyroParam(torch.tensor(1.0), constraint=constraints.positive)
        N.pyro_method(lambda self: self.x)(module)  # a call: x enters the store
        module.x = torch.tensor(3.0)  # a new value for the param, in place
        value = module.x.item()
        del module.x
        return value, list(P.get_param_store().keys()), hasattr(module, "x")

    assert run(ppl, ppl.nn) == run(pyro, pyro.nn) == (pytest.approx(3.0), [], False)


def test_deepcopy_pickle_and_state_dict():
    torch.manual_seed(0)
    linear = PyroModule[nn.Linear](3, 1)
    linear.scale = PyroParam(torch.tensor(2.0), constraint=constraints.positive)
    linear(torch.ones(3))  # the params enter the store, with weak references
    for copied in (copy.deepcopy(linear), pickle.loads(pickle.dumps(linear))):
        assert type(copied) is type(linear)
        assert all(
            torch.equal(a, b)
            for a, b in zip(copied.state_dict().values(), linear.state_dict().values())
        )
    theirs = pyro.nn.PyroModule[nn.Linear](3, 1)
    theirs.scale = pyro.nn.PyroParam(torch.tensor(2.0), constraint=constraints.positive)
    assert list(linear.state_dict()) == list(theirs.state_dict())
    fresh = PyroModule[nn.Linear](3, 1)
    fresh.scale = PyroParam(torch.tensor(1.0), constraint=constraints.positive)
    fresh.load_state_dict(linear.state_dict())
    assert torch.allclose(fresh.scale, torch.tensor(2.0))
    assert torch.equal(fresh.weight, linear.weight)


def test_named_pyro_params_and_values_outside_a_call():
    module = PyroModule()
    module.a = PyroParam(torch.tensor([0.2, 0.8]), constraint=constraints.simplex)
    module.b = nn.Parameter(torch.tensor(1.0))
    module.c = PyroSample(dist.Normal(0.0, 1.0))
    named = dict(module.named_pyro_params())
    assert sorted(named) == ["a", "b"]
    assert torch.allclose(named["a"], torch.tensor([0.2, 0.8]))
    assert torch.allclose(module.a, torch.tensor([0.2, 0.8]))  # no site, no store
    assert module.c.shape == () and len(ppl.get_param_store()) == 0


def test_a_module_run_twice_keeps_its_params():
    model, guide = vae_program(ppl, ppl.nn)
    data = torch.randint(0, 5, (12, 6)).float()
    trace(guide).get_trace(data)
    first = dict(ppl.get_param_store().items())
    trace(guide).get_trace(data)
    trace(model).get_trace(data)
    store = ppl.get_param_store()
    assert all(store[name] is value for name, value in first.items())
    assert sorted(store.keys()) == [
        "decoder.bias",
        "decoder.weight",
        "encoder.bias",
        "encoder.weight",
    ]


def test_recurrent_layers_read_sampled_weights():
    torch.manual_seed(0)
    rnn = PyroModule[nn.RNN](2, 3)
    rnn.weight_hh_l0 = PyroSample(dist.Normal(0.0, 1.0).expand([3, 3]).to_event(2))
    tr = trace(rnn).get_trace(torch.ones(4, 1, 2))
    output, _ = tr.nodes["_RETURN"]["value"]
    assert tr.nodes["weight_hh_l0"]["type"] == "sample"
    assert "weight_hh_l0" not in dict(rnn.named_parameters())
    assert output.shape == (4, 1, 3)


def test_module_list_slices_keep_names_as_in_pyro():
    def names(N):
        torch.manual_seed(0)
        layers = N.PyroModule[nn.ModuleList](
            [N.PyroModule[nn.Linear](2, 2) for _ in range(3)]
        )
        root = N.PyroModule("net")
        root.layers = layers
        tail = layers[1:]
        return type(tail).__name__, [m._pyro_name for m in tail]

    assert PyroModule[nn.ModuleList] is PyroModuleList
    assert (
        names(ppl.nn)
        == names(pyro.nn)
        == (
            "ModuleList",
            ["net.layers.1", "net.layers.2"],
        )
    )


def test_a_tensor_prior_must_come_from_a_function():
    module = PyroModule()
    with pytest.raises(TypeError, match="'x' of PyroModule"):
        module.x = PyroSample(torch.tensor(1.0))
    module.x = PyroSample(lambda self: torch.tensor(1.0))
    site = trace(pyro_method(lambda self: self.x)).get_trace(module).nodes["x"]
    assert site["infer"] == {"_deterministic": True}


@pytest.mark.parametrize("N", [ppl.nn, pyro.nn], ids=["ppl", "pyro"])
def test_attaching_a_tree_that_already_ran_raises_as_in_pyro(N):
    sub = N.PyroModule()
    sub.linear = N.PyroModule[nn.Linear](2, 2)
    sub.linear(torch.ones(2))  # its sites ran as "linear.weight", ...
    root = N.PyroModule()
    with pytest.raises((RuntimeError, AssertionError)):
        root.sub = sub
