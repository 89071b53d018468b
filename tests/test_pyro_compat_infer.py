"""Pyro programs run unchanged: the ELBOs' constructor arguments, and plates without a size.

Oracle: Pyro itself. ``Trace_ELBO`` and ``TraceMeanField_ELBO`` take the arguments of Pyro's
``ELBO``, in its order and with its defaults; those that Pyro's ``Trace_ELBO`` does not read
change nothing in ppl either (same losses and gradients, for the same seed, as Pyro's with the
same arguments). ``plate(name)`` without a size is Pyro's plate of any size (size -1): the same
traces, shapes, frames, scales and log-densities as Pyro's, and the same ELBO; and a plate with a
size behaves as before, the same as Pyro's.
"""

from __future__ import annotations

import inspect
import math

import pyro  # first imported, with its warning silenced, in conftest.py
import pyro.distributions as pdist
import pyro.infer
import pytest
import torch
from pyro import poutine as pyro_poutine

import ppl
import ppl.distributions as dist
from ppl import handlers as poutine
from ppl.infer import Trace_ELBO, TraceMeanField_ELBO
from ppl.plates import DIM_ALLOCATOR

pytestmark = pytest.mark.usefixtures("clean_state")

LIBS = {"ppl": (ppl, dist, poutine), "pyro": (pyro, pdist, pyro_poutine)}
ELBOS = {
    "Trace_ELBO": (Trace_ELBO, pyro.infer.Trace_ELBO),
    "TraceMeanField_ELBO": (TraceMeanField_ELBO, pyro.infer.TraceMeanField_ELBO),
}
DATA = torch.tensor([0.3, -1.2, 2.2, 0.7, 1.9])

# Arguments that Pyro's Trace_ELBO and TraceMeanField_ELBO store but never read.
NO_EFFECT = {
    "strict_enumeration_warning": False,
    "ignore_jit_warnings": True,
    "jit_options": {"check_trace": False},
    "tail_adaptive_beta": -0.5,
}


def run_both(build, seed=0):
    # Trace the program of each library, both from the same seed; return (ppl, Pyro) traces.
    traces = []
    for P, D, H in LIBS.values():
        model, args = build(P, D)
        P.set_rng_seed(seed)
        traces.append(H.trace(model).get_trace(*args))
    return traces


def summary(tr):
    # What a trace says about each site: value shape, batch shape, log-density shape, scale,
    # frames (name, dim, size, full_size), and the whole log joint.
    tr.compute_log_prob()
    sites = {}
    for name, site in tr.nodes.items():
        if site["type"] != "sample":
            continue
        sites[name] = (
            tuple(site["value"].shape),
            tuple(getattr(site["fn"], "batch_shape", ())),  # Pyro's index site has none
            tuple(torch.as_tensor(site["log_prob"]).shape),
            float(site["scale"]),
            [(f.name, f.dim, f.size, f.full_size) for f in site["cond_indep_stack"]],
        )
    return sites, float(tr.log_prob_sum())


def assert_same_traces(build, seed=0):
    ours, theirs = run_both(build, seed)
    (our_sites, our_log_p), (their_sites, their_log_p) = summary(ours), summary(theirs)
    assert our_sites == their_sites
    assert our_log_p == pytest.approx(their_log_p, rel=1e-6, abs=1e-6)
    assert DIM_ALLOCATOR.active == {}
    return our_sites


# --- the ELBOs' constructor arguments --------------------------------------------------------------


def arguments(cls):
    return [
        (p.name, p.kind, p.default) for p in inspect.signature(cls).parameters.values()
    ]


@pytest.mark.parametrize("name", list(ELBOS))
def test_elbo_arguments_are_pyros_in_order_with_defaults(name):
    ours, theirs = ELBOS[name]
    assert arguments(ours) == arguments(theirs)
    assert [n for n, _, _ in arguments(ours)] == [
        "num_particles",
        "max_plate_nesting",
        "max_iarange_nesting",
        "vectorize_particles",
        "strict_enumeration_warning",
        "ignore_jit_warnings",
        "jit_options",
        "retain_graph",
        "tail_adaptive_beta",
    ]


@pytest.mark.parametrize("name", list(ELBOS))
def test_elbo_arguments_are_stored_as_pyro_stores_them(name):
    ours, theirs = ELBOS[name]
    kwargs = dict(NO_EFFECT, num_particles=3, max_plate_nesting=2, retain_graph=True)
    a, b = ours(**kwargs), theirs(**kwargs)
    for key in [*kwargs, "vectorize_particles"]:
        assert getattr(a, key) == getattr(b, key), key
    # positionally, in Pyro's order
    a, b = ours(4, 1, None, True), theirs(4, 1, None, True)
    assert (a.num_particles, a.max_plate_nesting, a.vectorize_particles) == (4, 1, True)
    # Pyro counts the particle plate in max_plate_nesting; ppl does not (README)
    assert b.max_plate_nesting == a.max_plate_nesting + 1


@pytest.mark.parametrize("name", list(ELBOS))
def test_max_iarange_nesting_is_the_old_name_and_warns_like_pyros(name):
    ours, theirs = ELBOS[name]
    with pytest.warns(DeprecationWarning, match="max_iarange_nesting is deprecated"):
        a = ours(max_iarange_nesting=2)
    with pytest.warns(DeprecationWarning, match="max_iarange_nesting is deprecated"):
        b = theirs(max_iarange_nesting=2)
    assert a.max_plate_nesting == b.max_plate_nesting == 2


def score_and_path(P, D, sized=True):
    # A reparameterised global latent and a discrete local one (score function) in a plate,
    # of the data's size or (sized=False) of any size.
    positive, unit = D.constraints.positive, D.constraints.unit_interval

    def model(data):
        loc = P.sample("loc", D.Normal(0.0, 2.0))
        with P.plate("data", len(data) if sized else None):
            k = P.sample("k", D.Bernoulli(torch.full((len(data),), 0.3)))
            P.sample("x", D.Normal(loc + k, 1.0), obs=data)

    def guide(data):
        m = P.param("m", torch.tensor(0.2))
        s = P.param("s", torch.tensor(0.9), constraint=positive)
        q = P.param("q", torch.full((len(data),), 0.4), constraint=unit)
        P.sample("loc", D.Normal(m, s))
        with P.plate("data", len(data) if sized else None):
            P.sample("k", D.Bernoulli(q))

    return model, guide


def normal_mean(P, D):
    # Reparameterised only, with a closed-form KL: for TraceMeanField_ELBO.
    def model(data):
        loc = P.sample("loc", D.Normal(0.0, 2.0))
        with P.plate("data", len(data)):
            P.sample("x", D.Normal(loc, 1.0), obs=data)

    def guide(data):
        m = P.param("m", torch.tensor(0.2))
        s = P.param("s", torch.tensor(0.9), constraint=D.constraints.positive)
        P.sample("loc", D.Normal(m, s))

    return model, guide


def loss_and_grads(lib, elbo_class, program, kwargs, seed):
    # The differentiable loss and its gradient in each param's unconstrained leaf.
    P, D, _ = LIBS[lib]
    P.clear_param_store()
    model, guide = program(P, D)
    P.set_rng_seed(seed)
    loss = elbo_class(**kwargs).differentiable_loss(model, guide, DATA)
    names = sorted(P.get_param_store().keys())
    leaves = [P.param(n).unconstrained() for n in names]
    return loss, dict(zip(names, torch.autograd.grad(loss, leaves)))


@pytest.mark.parametrize("name", list(ELBOS))
@pytest.mark.parametrize("key", list(NO_EFFECT))
def test_arguments_pyro_does_not_read_change_nothing(name, key):
    ours, theirs = ELBOS[name]
    program = score_and_path if name == "Trace_ELBO" else normal_mean
    kwargs = {"num_particles": 2, key: NO_EFFECT[key]}
    for seed in range(2):
        loss, grads = loss_and_grads("ppl", ours, program, kwargs, seed)
        default_loss, default_grads = loss_and_grads(
            "ppl", ours, program, {"num_particles": 2}, seed
        )
        pyro_loss, pyro_grads = loss_and_grads("pyro", theirs, program, kwargs, seed)
        assert torch.equal(loss, default_loss)
        torch.testing.assert_close(loss, pyro_loss, rtol=1e-5, atol=1e-5)
        assert grads.keys() == default_grads.keys() == pyro_grads.keys()
        for n in grads:
            assert torch.equal(grads[n], default_grads[n])
            torch.testing.assert_close(grads[n], pyro_grads[n], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("lib", list(LIBS))
def test_retain_graph_keeps_a_shared_graph_for_a_second_backward(lib):
    # A tensor that the model uses, computed once outside it: a second loss_and_grads runs
    # backward through its graph again, which only retain_graph=True allows, in both.
    P, D, _ = LIBS[lib]
    elbo_class = ELBOS["Trace_ELBO"][0 if lib == "ppl" else 1]
    exact = float(-D.Normal(math.exp(0.5), 1.0).log_prob(DATA).sum())

    def programs(shared):
        def model(data):
            b = P.param("b", torch.tensor(0.0))  # Pyro runs backward only with a param
            with P.plate("data", len(data)):
                P.sample("x", D.Normal(shared + b, 1.0), obs=data)

        return model, lambda data: None

    for retain_graph in (True, None):
        v = torch.tensor(0.5, requires_grad=True)
        model, guide = programs(v.exp())
        elbo = elbo_class(retain_graph=retain_graph)
        assert elbo.loss_and_grads(model, guide, DATA) == pytest.approx(exact)
        if retain_graph:
            elbo.loss_and_grads(model, guide, DATA)
            nll = -D.Normal(v.exp(), 1.0).log_prob(DATA).sum()
            torch.testing.assert_close(v.grad, 2 * torch.autograd.grad(nll, v)[0])
        else:
            with pytest.raises(
                RuntimeError, match="backward through the graph a second"
            ):
                elbo.loss_and_grads(model, guide, DATA)


# --- plates without a size -------------------------------------------------------------------------


def observed_in_any_size(P, D):
    def model(data):
        loc = P.sample("loc", D.Normal(0.0, 1.0))
        with P.plate("data") as idx:
            assert idx is None  # no indices: the plate has no size
            P.sample("x", D.Normal(loc, 1.0), obs=data)

    return model, (DATA,)


def latent_in_any_size(P, D):
    def model():
        with P.plate("cols"):  # dim -1, any size: the site keeps its batch shape
            P.sample("a", D.Normal(torch.zeros(4), 1.0))
            with P.plate("rows", 3):  # dim -2, size 3: broadcast as usual
                P.sample("b", D.Normal(torch.zeros(4), 1.0))
                P.sample("c", D.Normal(0.0, 1.0))

    return model, ()


def any_size_at_a_given_dim(P, D):
    def model(data):
        with P.plate("rows", dim=-2):
            with P.plate("cols", 2):
                P.sample("x", D.Normal(0.0, 1.0), obs=data)

    return model, (torch.arange(6.0).reshape(3, 2),)


def any_size_under_scale(P, D):
    def model(data):
        with P.plate("outer", 10, subsample_size=5):
            with P.plate("inner", dim=-2):
                P.sample("x", D.Normal(0.0, 1.0), obs=data)

    return model, (torch.ones(4, 5),)


@pytest.mark.parametrize(
    "build",
    [
        observed_in_any_size,
        latent_in_any_size,
        any_size_at_a_given_dim,
        any_size_under_scale,
    ],
)
def test_plate_without_a_size_traces_as_pyros(build):
    assert_same_traces(build)


def test_plate_without_a_size_claims_a_dim_and_nothing_else():
    sites = assert_same_traces(latent_in_any_size)
    assert sites["a"][:4] == ((4,), (4,), (4,), 1.0)
    assert sites["a"][4] == [("cols", -1, -1, -1)]
    assert sites["b"][:2] == ((3, 4), (3, 4))
    sites = assert_same_traces(observed_in_any_size)
    assert list(sites) == ["loc", "x"]  # no index site for the plate
    assert sites["x"] == ((5,), (), (5,), 1.0, [("data", -1, -1, -1)])
    ours = summary(run_both(any_size_under_scale)[0])[0]
    assert ours["x"][3] == 2.0  # the outer plate's scale, none from the inner one


def test_plate_without_a_size_in_an_elbo_gives_pyros_loss_and_gradients():
    # The score_and_path programs with plates of any size: the local score is still costed
    # within its plate slice, by dim.
    def program(P, D):
        return score_and_path(P, D, sized=False)

    for seed in range(3):
        loss, grads = loss_and_grads("ppl", Trace_ELBO, program, {}, seed)
        pyro_loss, pyro_grads = loss_and_grads(
            "pyro", pyro.infer.Trace_ELBO, program, {}, seed
        )
        torch.testing.assert_close(loss, pyro_loss, rtol=1e-5, atol=1e-5)
        for n in grads:
            torch.testing.assert_close(grads[n], pyro_grads[n], rtol=1e-5, atol=1e-5)


def test_plate_without_a_size_with_vectorized_particles_gives_pyros_loss():
    def program(P, D):
        def model(data):
            loc = P.sample("loc", D.Normal(0.0, 2.0))
            with P.plate("data"):
                P.sample("x", D.Normal(loc, 1.0), obs=data)

        def guide(data):
            m = P.param("m", torch.tensor(0.2))
            P.sample("loc", D.Normal(m, 0.7))

        return model, guide

    kwargs = {"num_particles": 4, "vectorize_particles": True}
    for seed in range(2):
        loss, grads = loss_and_grads("ppl", Trace_ELBO, program, kwargs, seed)
        theirs = loss_and_grads("pyro", pyro.infer.Trace_ELBO, program, kwargs, seed)
        torch.testing.assert_close(loss, theirs[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(grads["m"], theirs[1]["m"], rtol=1e-5, atol=1e-5)


def test_plate_without_a_size_local_param_is_checked_as_pyro_checks_it():
    def program(P, shape):
        def model():
            with P.plate("data"):
                return P.param("p", torch.ones(shape), event_dim=0)

        return model

    for (P, _, _), message in zip(
        LIBS.values(), ["param 'p' in plate 'data'", "shape"]
    ):
        P.clear_param_store()
        assert program(P, (1,))().shape == (1,)  # one value shared by every index
        P.clear_param_store()
        with pytest.raises(ValueError, match=message):
            program(P, (3,))()
    assert DIM_ALLOCATOR.active == {}


def test_plate_without_a_size_errors():
    with pytest.raises(ValueError, match="plate 'data' has no size"):
        for _ in ppl.plate("data"):
            pass
    with pytest.raises(ValueError, match="subsample_size=3 needs a size"):
        ppl.plate("data", subsample_size=3)
    assert DIM_ALLOCATOR.active == {}


# --- plates with a size: as before, and as Pyro's ----------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": 5},
        {"size": 5, "subsample_size": None},
        {"size": 5, "subsample_size": 5},
        {"size": 10, "subsample_size": 5},
        {"size": 10, "subsample": torch.tensor([1, 4, 7, 8, 0])},
        {"size": 10, "subsample_size": 5, "subsample": torch.tensor([1, 4, 7, 8, 0])},
        {"size": 5, "dim": -2},
    ],
    ids=["size", "size-None", "size-all", "subsample_size", "subsample", "both", "dim"],
)
def test_plate_with_a_size_traces_as_pyros(kwargs):
    def build(P, D):
        def model(data):
            with P.plate("data", **kwargs) as idx:
                x = data[idx] if "dim" not in kwargs else data[idx].unsqueeze(-1)
                P.sample("x", D.Normal(0.0, 1.0), obs=x)
            return idx

        return model, (torch.arange(10.0),)

    ours, theirs = run_both(build, seed=1)
    assert torch.equal(ours.nodes["data"]["value"], theirs.nodes["data"]["value"])
    assert torch.equal(ours.nodes["_RETURN"]["value"], theirs.nodes["_RETURN"]["value"])
    assert summary(ours)[0] == summary(theirs)[0]
    assert summary(ours)[1] == pytest.approx(summary(theirs)[1], rel=1e-6)
    scale = kwargs["size"] / len(ours.nodes["data"]["value"])
    assert summary(ours)[0]["x"][3] == scale
