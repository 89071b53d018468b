"""Pyro programs of the tutorials' kind, run on ppl by swapping the imports.

Each program is written once, as a function of the modules a Pyro script imports,

    import pyro; import pyro.distributions as dist; from pyro import poutine; import pyro.optim

and run twice: with those modules, and with ``import ppl as pyro; import ppl.distributions as
dist; from ppl import handlers as poutine; import ppl.optim``. With the same seed the two runs
draw the same random numbers in the same order (both draw with torch, minibatches with
``torch.randperm``), so their results agree up to floating-point rounding: traces site by site,
SVI losses step by step, fitted params.
"""

from __future__ import annotations

import pyro  # first imported, with its warning silenced, in conftest.py
import pyro.distributions
import pyro.infer
import pyro.nn
import pyro.optim
import pytest
import torch
from pyro import poutine as pyro_poutine

import ppl
import ppl.distributions
import ppl.optim
from ppl import handlers as ppl_poutine

pytestmark = pytest.mark.usefixtures("clean_state")

PPL = (ppl, ppl.distributions, ppl_poutine, ppl.optim)
PYRO = (pyro, pyro.distributions, pyro_poutine, pyro.optim)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Small tensors: a second torch thread only adds contention on a shared machine.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def run_both(program, *args, **kwargs):
    """``program(*modules, *args)`` with ppl's modules, then with Pyro's, each from a fresh state."""
    results = []
    for modules in (PPL, PYRO):
        modules[0].clear_param_store()
        results.append(program(*modules, *args, **kwargs))
    return results


def sites(tr):
    """Name -> (value, frames, scale, is_observed) of a trace's sample sites."""
    return {
        name: (
            site["value"],
            tuple((f.name, f.dim, f.size, f.counter) for f in site["cond_indep_stack"]),
            float(site["scale"]),
            site["is_observed"],
        )
        for name, site in tr.nodes.items()
        if site["type"] == "sample"
    }


def assert_same_sites(ours, theirs):
    assert list(ours.nodes) == list(theirs.nodes)
    a, b = sites(ours), sites(theirs)
    for name in a:
        torch.testing.assert_close(
            a[name][0], b[name][0], rtol=1e-6, atol=1e-6, msg=name
        )
        assert a[name][1:] == b[name][1:], name
    torch.testing.assert_close(
        torch.as_tensor(ours.log_prob_sum()),
        torch.as_tensor(theirs.log_prob_sum()),
        rtol=1e-6,
        atol=1e-5,
    )


# --- (a) the coin: SVI with a Beta guide (Pyro's "SVI Part I") -----------------------------------


def coin_svi(pyro, dist, poutine, optim, num_steps=300):
    data = torch.tensor([1.0] * 6 + [0.0] * 4)

    def model(data):
        f = pyro.sample("latent_fairness", dist.Beta(10.0, 10.0))
        for i in range(len(data)):
            pyro.sample(f"obs_{i}", dist.Bernoulli(f), obs=data[i])

    def guide(data):
        alpha_q = pyro.param(
            "alpha_q", torch.tensor(15.0), constraint=dist.constraints.positive
        )
        beta_q = pyro.param(
            "beta_q", torch.tensor(15.0), constraint=dist.constraints.positive
        )
        pyro.sample("latent_fairness", dist.Beta(alpha_q, beta_q))

    pyro.set_rng_seed(0)
    adam = optim.Adam({"lr": 0.0005, "betas": (0.90, 0.999)})
    svi = pyro.infer.SVI(model, guide, adam, loss=pyro.infer.Trace_ELBO())
    losses = [svi.step(data) for _ in range(num_steps)]
    return torch.tensor(losses), torch.stack(
        [pyro.param("alpha_q"), pyro.param("beta_q")]
    ).detach()


def test_coin_svi_takes_the_same_path():
    (losses, params), (pyro_losses, pyro_params) = run_both(coin_svi)
    assert len(losses) == 300 and torch.isfinite(losses).all()
    torch.testing.assert_close(losses, pyro_losses, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(params, pyro_params, rtol=1e-4, atol=1e-4)
    assert not torch.equal(params, torch.tensor([15.0, 15.0]))  # the params did move
    # and they moved towards the posterior Beta(16, 14): its mean is 16 / 30
    assert abs(params[0] / params.sum() - 16 / 30) < abs(0.5 - 16 / 30)


# --- (b) Bayesian linear regression with a subsampled plate ---------------------------------------


def regression_svi(pyro, dist, poutine, optim, num_steps=150, subsample_size=50):
    gen = torch.Generator().manual_seed(1)
    n = 500
    x = torch.randn(n, 2, generator=gen)
    y = x @ torch.tensor([2.0, -1.0]) + 0.3 + 0.5 * torch.randn(n, generator=gen)

    def model(x, y):
        w = pyro.sample("w", dist.Normal(0.0, 10.0).expand([2]).to_event(1))
        b = pyro.sample("b", dist.Normal(0.0, 10.0))
        sigma = pyro.sample("sigma", dist.Uniform(0.0, 10.0))
        with pyro.plate("data", len(x), subsample_size=subsample_size) as idx:
            mean = x[idx] @ w + b
            pyro.sample("obs", dist.Normal(mean, sigma), obs=y[idx])

    def guide(x, y):
        w_loc = pyro.param("w_loc", torch.zeros(2))
        w_scale = pyro.param(
            "w_scale", torch.ones(2), constraint=dist.constraints.positive
        )
        b_loc = pyro.param("b_loc", torch.tensor(0.0))
        b_scale = pyro.param(
            "b_scale", torch.tensor(1.0), constraint=dist.constraints.positive
        )
        s_loc = pyro.param("s_loc", torch.tensor(0.0))
        pyro.sample("w", dist.Normal(w_loc, w_scale).to_event(1))
        pyro.sample("b", dist.Normal(b_loc, b_scale))
        to_0_10 = [
            dist.transforms.SigmoidTransform(),
            dist.transforms.AffineTransform(0.0, 10.0),
        ]
        pyro.sample(
            "sigma", dist.TransformedDistribution(dist.Normal(s_loc, 0.1), to_0_10)
        )

    pyro.set_rng_seed(0)
    svi = pyro.infer.SVI(
        model, guide, optim.ClippedAdam({"lr": 0.05}), loss=pyro.infer.Trace_ELBO()
    )
    losses = [svi.step(x, y) for _ in range(num_steps)]
    names = ["w_loc", "w_scale", "b_loc", "b_scale", "s_loc"]
    return torch.tensor(losses), {
        name: pyro.param(name).detach().clone() for name in names
    }


def test_regression_with_minibatches_takes_the_same_path():
    (losses, params), (pyro_losses, pyro_params) = run_both(regression_svi)
    # step by step: the same minibatches (torch.randperm), the same draws, the same updates
    torch.testing.assert_close(losses, pyro_losses, rtol=1e-5, atol=1e-3)
    for name in params:
        torch.testing.assert_close(
            params[name], pyro_params[name], rtol=1e-4, atol=1e-4, msg=name
        )
    assert losses[-20:].mean() < losses[:20].mean() / 2  # it did learn
    assert (params["w_loc"] - torch.tensor([2.0, -1.0])).abs().max() < 0.3


def test_regression_minibatches_differ_from_step_to_step_like_pyros():
    # the minibatch indices themselves, drawn by the guide-less model under trace
    def draws(pyro, dist, poutine, optim):
        def model():
            with pyro.plate("data", 100, subsample_size=10) as idx:
                return idx

        pyro.set_rng_seed(7)
        return torch.stack(
            [poutine.trace(model).get_trace().nodes["data"]["value"] for _ in range(5)]
        )

    ours, theirs = run_both(draws)
    assert torch.equal(ours, theirs)
    assert len({tuple(row.tolist()) for row in ours}) == 5


# --- (c) effect handlers: trace, replay, condition, block ---------------------------------------


def handler_programs(pyro, dist, poutine, optim):
    """The effect-handler tutorial's programs; returns every trace they make."""

    def scale(guess):
        weight = pyro.sample("weight", dist.Normal(guess, 1.0))
        return pyro.sample("measurement", dist.Normal(weight, 0.75))

    def scale_parametrized_guide(guess):
        a = pyro.param("a", torch.tensor(guess))
        b = pyro.param("b", torch.tensor(1.0), constraint=dist.constraints.positive)
        return pyro.sample("weight", dist.Normal(a, torch.abs(b)))

    def plated(data):
        loc = pyro.sample("loc", dist.Normal(0.0, 2.0))
        hidden = pyro.sample("hidden", dist.Normal(0.0, 1.0))
        with pyro.plate("data", len(data)):
            with poutine.mask(mask=data > 0):
                pyro.sample("obs", dist.Normal(loc + hidden, 1.0), obs=data)
        with poutine.scale(scale=3.0):
            pyro.sample("scaled", dist.Normal(loc, 1.0))
        return loc

    pyro.set_rng_seed(0)
    traces = {}
    traces["trace"] = poutine.trace(scale).get_trace(8.5)
    conditioned = poutine.condition(scale, data={"measurement": torch.tensor(9.5)})
    traces["condition"] = poutine.trace(conditioned).get_trace(8.5)
    guide_trace = poutine.trace(scale_parametrized_guide).get_trace(8.5)
    traces["guide"] = guide_trace
    traces["replay"] = poutine.trace(
        poutine.replay(conditioned, trace=guide_trace)
    ).get_trace(8.5)
    data = torch.tensor([0.5, -1.0, 2.0, 1.5])
    traces["plated"] = poutine.trace(plated).get_trace(data)
    traces["block"] = poutine.trace(
        poutine.block(plated, hide=["hidden", "obs"])
    ).get_trace(data)
    traces["block_all_but"] = poutine.trace(
        poutine.block(plated, expose=["loc"])
    ).get_trace(data)
    # importance weights: the model's log joint at the guide's draw minus the guide's log density
    weights = []
    for _ in range(5):
        tr = poutine.trace(scale_parametrized_guide).get_trace(8.5)
        model_tr = poutine.trace(poutine.replay(conditioned, trace=tr)).get_trace(8.5)
        weights.append(model_tr.log_prob_sum() - tr.log_prob_sum())
    return traces, torch.stack(weights).detach()


def test_handler_programs_make_the_same_traces():
    (ours, weights), (theirs, pyro_weights) = run_both(handler_programs)
    for key in ours:
        assert_same_sites(ours[key], theirs[key])
    torch.testing.assert_close(weights, pyro_weights)
    # what each handler did, spelled out
    assert ours["condition"].nodes["measurement"]["is_observed"]
    assert ours["condition"].nodes["measurement"]["value"] == 9.5
    assert torch.equal(
        ours["replay"].nodes["weight"]["value"], ours["guide"].nodes["weight"]["value"]
    )
    assert [n for n, s in ours["block"].nodes.items() if s["type"] == "sample"] == [
        "loc",
        "data",
        "scaled",
    ]
    assert [
        n for n, s in ours["block_all_but"].nodes.items() if s["type"] == "sample"
    ] == ["loc"]
    assert ours["plated"].nodes["scaled"]["scale"] == 3.0


def test_conditioned_log_joint_is_the_hand_written_one():
    (ours, _), _ = run_both(handler_programs)
    tr = ours["plated"]
    loc, hidden = tr.nodes["loc"]["value"], tr.nodes["hidden"]["value"]
    data = torch.tensor([0.5, -1.0, 2.0, 1.5])
    Normal = ppl.distributions.Normal
    expected = (
        Normal(0.0, 2.0).log_prob(loc)
        + Normal(0.0, 1.0).log_prob(hidden)
        + (Normal(loc + hidden, 1.0).log_prob(data) * (data > 0)).sum()
        + 3.0 * Normal(loc, 1.0).log_prob(tr.nodes["scaled"]["value"])
    )
    torch.testing.assert_close(tr.log_prob_sum(), expected)


# --- (d) nested plates and a sequential plate ------------------------------------------------------


def nested_program(pyro, dist, poutine, optim, num_steps=30):
    data = torch.tensor(
        [[0.3, 2.1, -0.5, 1.4], [1.9, -0.7, 0.8, 2.6], [-1.2, 0.4, 3.0, 0.1]]
    )
    series = torch.tensor([0.2, 0.9, 1.1, 2.0])

    def model(data, series):
        mu = pyro.sample("mu", dist.Normal(0.0, 2.0))
        with pyro.plate("sensors", data.shape[0], dim=-2):
            offset = pyro.sample("offset", dist.Normal(mu, 1.0))
            with pyro.plate("days", data.shape[1], dim=-1):
                spike = pyro.sample("spike", dist.Bernoulli(0.2))
                pyro.sample("reading", dist.Normal(offset + 2.0 * spike, 0.5), obs=data)
        state = mu
        for t in pyro.plate("time", len(series)):  # a sequential plate: a Markov chain
            state = pyro.sample(f"state_{t}", dist.Normal(state, 0.5))
            pyro.sample(f"y_{t}", dist.Normal(state, 0.3), obs=series[t])

    def guide(data, series):
        pyro.sample(
            "mu",
            dist.Normal(
                pyro.param("mu_loc", torch.tensor(0.0)),
                pyro.param(
                    "mu_scale", torch.tensor(1.0), constraint=dist.constraints.positive
                ),
            ),
        )
        with pyro.plate("sensors", data.shape[0], dim=-2):
            loc = pyro.param("offset_loc", torch.zeros(data.shape[0], 1), event_dim=0)
            pyro.sample("offset", dist.Normal(loc, 0.5))
            with pyro.plate("days", data.shape[1], dim=-1):
                logits = pyro.param(
                    "spike_logits", torch.zeros(data.shape), event_dim=0
                )
                pyro.sample("spike", dist.Bernoulli(logits=logits))
        for t in pyro.plate("time", len(series)):
            pyro.sample(
                f"state_{t}",
                dist.Normal(pyro.param(f"state_loc_{t}", torch.tensor(0.0)), 0.4),
            )

    pyro.set_rng_seed(0)
    trace = poutine.trace(model).get_trace(data, series)
    svi = pyro.infer.SVI(
        model,
        guide,
        optim.Adam({"lr": 0.05}),
        loss=pyro.infer.Trace_ELBO(num_particles=2),
    )
    losses = [svi.step(data, series) for _ in range(num_steps)]
    params = {
        name: pyro.param(name).detach().clone()
        for name in ("mu_loc", "offset_loc", "spike_logits")
    }
    return trace, torch.tensor(losses), params


def test_nested_and_sequential_plates_run_the_same():
    (trace, losses, params), (pyro_trace, pyro_losses, pyro_params) = run_both(
        nested_program
    )
    assert_same_sites(trace, pyro_trace)
    assert trace.nodes["spike"]["value"].shape == (3, 4)
    assert trace.nodes["offset"]["value"].shape == (3, 1)
    assert [f.dim for f in trace.nodes["state_2"]["cond_indep_stack"]] == [None]
    # the score-function terms of the spikes use the plate-aware costs, as Pyro's do
    torch.testing.assert_close(losses, pyro_losses, rtol=1e-4, atol=1e-3)
    for name in params:
        torch.testing.assert_close(
            params[name], pyro_params[name], rtol=1e-4, atol=1e-4, msg=name
        )
    assert not torch.equal(params["spike_logits"], torch.zeros(3, 4))


def test_vectorized_particles_in_a_tutorial_model_run_the_same():
    # Pyro's plate tutorial idiom: particles vectorized, max_plate_nesting given
    def program(pyro, dist, poutine, optim):
        data = torch.tensor([1.0] * 7 + [0.0] * 3)
        shapes = []

        def model(data):
            f = pyro.sample("f", dist.Beta(2.0, 2.0))
            shapes.append(tuple(f.shape))
            with pyro.plate("data", len(data)):
                pyro.sample("obs", dist.Bernoulli(f), obs=data)

        def guide(data):
            a = pyro.param("a", torch.tensor(2.0), constraint=dist.constraints.positive)
            b = pyro.param("b", torch.tensor(2.0), constraint=dist.constraints.positive)
            pyro.sample("f", dist.Beta(a, b))

        pyro.set_rng_seed(3)
        elbo = pyro.infer.Trace_ELBO(
            num_particles=16, vectorize_particles=True, max_plate_nesting=1
        )
        svi = pyro.infer.SVI(model, guide, optim.Adam({"lr": 0.02}), loss=elbo)
        losses = [svi.step(data) for _ in range(100)]
        return (
            torch.tensor(losses),
            torch.stack([pyro.param("a"), pyro.param("b")]).detach(),
            set(shapes),
        )

    (losses, params, shapes), (pyro_losses, pyro_params, pyro_shapes) = run_both(
        program
    )
    # the particles at dim -2, left of the data plate
    assert shapes == pyro_shapes == {(16, 1)}
    torch.testing.assert_close(losses, pyro_losses, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(params, pyro_params, rtol=1e-4, atol=1e-4)
    # the exact posterior is Beta(9, 5): the fit heads there
    assert params[0] / params.sum() > 0.55


# --- (f) Part V: a Bayesian module, an autoguide, predictions and the evidence -------------------


def module_regression(pyro, dist, poutine, optim, num_steps=200):
    """A regression written as a module with Bayesian layer weights, fitted with
    ``AutoDiagonalNormal``; then predictions with ``Predictive`` and the guide's quantiles."""
    nn_mod = pyro.nn
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(120, 3, generator=gen)
    y = x @ torch.tensor([1.5, -0.5, 0.0]) + 2.0 + 0.4 * torch.randn(120, generator=gen)

    class Regression(nn_mod.PyroModule):
        def __init__(self):
            super().__init__()
            self.linear = nn_mod.PyroModule[torch.nn.Linear](3, 1)
            self.linear.weight = nn_mod.PyroSample(
                dist.Normal(0.0, 1.0).expand([1, 3]).to_event(2)
            )
            self.linear.bias = nn_mod.PyroSample(
                dist.Normal(0.0, 10.0).expand([1]).to_event(1)
            )

        def forward(self, x, y=None):
            sigma = pyro.sample("sigma", dist.Uniform(0.0, 10.0))
            mean = self.linear(x).squeeze(-1)
            with pyro.plate("data", x.shape[0]):
                pyro.sample("obs", dist.Normal(mean, sigma), obs=y)
            return mean

    pyro.set_rng_seed(0)
    model = Regression()
    guide = pyro.infer.autoguide.AutoDiagonalNormal(model)
    svi = pyro.infer.SVI(
        model, guide, optim.Adam({"lr": 0.03}), loss=pyro.infer.Trace_ELBO()
    )
    losses = torch.tensor([svi.step(x, y) for _ in range(num_steps)])
    quantiles = guide.quantiles([0.25, 0.5, 0.75])
    predictive = pyro.infer.Predictive(
        model,
        guide=guide,
        num_samples=50,
        return_sites=("linear.weight", "obs", "_RETURN"),
    )
    with torch.no_grad():
        draws = predictive(x)
    names = sorted(pyro.get_param_store().keys())
    return losses, quantiles, draws, names


def test_a_bayesian_module_with_an_autoguide_and_predictive_runs_the_same():
    (losses, quantiles, draws, names), (p_losses, p_quantiles, p_draws, p_names) = (
        run_both(module_regression)
    )
    assert names == p_names == ["AutoDiagonalNormal.loc", "AutoDiagonalNormal.scale"]
    torch.testing.assert_close(losses, p_losses, rtol=1e-5, atol=1e-3)
    assert losses[-20:].mean() < losses[:20].mean() / 2  # it did learn
    assert (
        set(quantiles) == set(p_quantiles) == {"linear.weight", "linear.bias", "sigma"}
    )
    for name in quantiles:
        torch.testing.assert_close(quantiles[name], p_quantiles[name], msg=name)
    assert set(draws) == set(p_draws) == {"linear.weight", "obs", "_RETURN"}
    for name in draws:
        assert draws[name].shape[0] == 50
        torch.testing.assert_close(draws[name], p_draws[name], rtol=1e-4, atol=1e-4)


def autonormal_evidence(pyro, dist, poutine, optim, num_steps=300):
    """A conjugate model fitted with ``AutoNormal``, then its evidence by importance sampling
    with the fitted guide as the proposal, and parallel predictive draws."""
    data = torch.tensor([0.9, 1.7, 1.2, 2.3, 0.4])

    def model(data, n=5):
        mu = pyro.sample("mu", dist.Normal(0.0, 2.0))
        with pyro.plate("data", n):
            pyro.sample("x", dist.Normal(mu, 1.0), obs=data)

    pyro.set_rng_seed(0)
    guide = pyro.infer.autoguide.AutoNormal(model)
    svi = pyro.infer.SVI(
        model, guide, optim.Adam({"lr": 0.05}), loss=pyro.infer.Trace_ELBO()
    )
    for _ in range(num_steps):
        svi.step(data)
    importance = pyro.infer.Importance(model, guide=guide, num_samples=400)
    log_evidence = importance.run(data).get_log_normalizer()
    with torch.no_grad():
        replicated = pyro.infer.Predictive(
            model, guide=guide, num_samples=30, parallel=True
        )(None)
    return log_evidence, guide.median()["mu"], replicated["x"]


def test_autonormal_importance_and_parallel_predictive_run_the_same():
    (log_z, median, replicated), (p_log_z, p_median, p_replicated) = run_both(
        autonormal_evidence, num_steps=300
    )
    torch.testing.assert_close(median, p_median, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(log_z, p_log_z, rtol=1e-5, atol=1e-5)
    # the evidence against the closed form: x ~ N(0, I + 4 11^T)
    data = torch.tensor([0.9, 1.7, 1.2, 2.3, 0.4])
    exact = torch.distributions.MultivariateNormal(
        torch.zeros(5), torch.eye(5) + 4.0 * torch.ones(5, 5)
    ).log_prob(data)
    assert abs(float(log_z) - float(exact)) < 0.02
    assert replicated.shape == (30, 5)  # a model called with data=None replicates it
    torch.testing.assert_close(replicated, p_replicated, rtol=1e-5, atol=1e-5)
