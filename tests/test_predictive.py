"""ppl.infer.predictive.Predictive against Pyro 1.9.2."""

import pyro
import pyro.distributions as pdist
import pyro.infer.autoguide as pag
import pytest
import torch

import ppl
import ppl.distributions as dist
import ppl.infer.autoguide as ag
from ppl.infer import Predictive

X = torch.tensor([0.3, 1.2, 0.8, 2.0, 1.1])
Y = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])


def make_model(P, D):
    def model(x, y=None):
        loc = P.sample("loc", D.Normal(0.0, 2.0))
        s = P.sample("s", D.LogNormal(0.0, 1.0))
        P.deterministic("d", loc * 2)
        with P.plate("data", len(x)):
            return P.sample("obs", D.Normal(loc + x, s), obs=y)

    return model


def both(fn):
    ours = fn(ppl, dist, ag, Predictive)
    pyros = fn(pyro, pdist, pag, pyro.infer.Predictive)
    assert sorted(ours) == sorted(pyros)
    for name, value in ours.items():
        assert value.shape == pyros[name].shape, name
        assert torch.equal(value, pyros[name]), name
    return ours


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("return_sites", [(), None, ["obs", "_RETURN", "d"]])
def test_guide_and_prior_predictive_match_pyro(parallel, return_sites):
    # Same seed, same draws: the samples agree bitwise, names and shapes included
    def posterior(P, D, A, Pred):
        P.clear_param_store()
        P.set_rng_seed(0)
        model = make_model(P, D)
        guide = A.AutoNormal(model)
        guide(X)
        P.set_rng_seed(1)
        predictive = Pred(
            model,
            guide=guide,
            num_samples=7,
            return_sites=return_sites,
            parallel=parallel,
        )
        return predictive(X)

    def prior(P, D, A, Pred):
        P.set_rng_seed(2)
        predictive = Pred(
            make_model(P, D),
            num_samples=5,
            return_sites=return_sites,
            parallel=parallel,
        )
        return predictive(X)

    samples = both(posterior)
    if return_sites != ["obs", "_RETURN", "d"]:
        assert samples["loc"].shape == (7, 1) and samples["obs"].shape == (7, 5)
    both(prior)


@pytest.mark.parametrize("parallel", [False, True])
def test_posterior_samples_match_pyro(parallel):
    def run(P, D, A, Pred):
        P.set_rng_seed(3)
        draws = {"loc": torch.linspace(-1.0, 1.0, 4), "s": torch.full((4,), 0.5)}
        return Pred(make_model(P, D), posterior_samples=draws, parallel=parallel)(X)

    samples = both(run)
    assert set(samples) == {"obs", "d"}
    assert torch.equal(samples["d"].flatten(), 2 * torch.linspace(-1.0, 1.0, 4))


def test_sequential_and_parallel_agree_in_distribution():
    # The same predictive distribution: obs_i ~ Normal(loc + x_i, s) at fixed draws;
    # means of 4000 replicates within 4 standard errors
    draws = {"loc": torch.full((4000,), 1.0), "s": torch.full((4000,), 2.0)}
    ppl.set_rng_seed(0)
    model = make_model(ppl, dist)
    for parallel in (False, True):
        obs = Predictive(model, posterior_samples=draws, parallel=parallel)(X)["obs"]
        error = (obs.mean(0) - (1.0 + X)).abs().max()
        assert error < 4 * 2.0 / 4000**0.5
        assert (obs.std(0) - 2.0).abs().max() < 0.15


def test_observed_data_is_never_returned():
    # Pyro returns copies of the data; ppl raises, naming the site
    pyro.set_rng_seed(0)
    copies = pyro.infer.Predictive(make_model(pyro, pdist), num_samples=3)(X, Y)
    assert torch.equal(copies["obs"], Y.expand(3, 5))
    with pytest.raises(ValueError, match=r"\['obs'\].*obs=None"):
        Predictive(make_model(ppl, dist), num_samples=3)(X, Y)
    # the latents alone may be asked for with the data in place
    out = Predictive(make_model(ppl, dist), num_samples=3, return_sites=["loc"])(X, Y)
    assert set(out) == {"loc"}


def test_argument_errors_as_pyro():
    model = make_model(ppl, dist)
    with pytest.raises(ValueError, match="num_samples"):
        Predictive(model)
    with pytest.raises(ValueError, match="guide"):
        Predictive(model, posterior_samples={"loc": torch.zeros(3)}, guide=model)
    with pytest.warns(UserWarning, match="Defaulting to 3"):
        predictive = Predictive(
            model, posterior_samples={"loc": torch.zeros(3)}, num_samples=5
        )
    assert predictive.num_samples == 3


def subsampled_trace(P, D):
    # Two plates, one subsampled: the trace holds a subsample site for each plate
    def model(x):
        loc = P.sample("loc", D.Normal(0.0, 1.0))
        with P.plate("data", len(x), subsample_size=2) as idx:
            P.sample("obs", D.Normal(loc, 1.0), obs=x[idx])
        with P.plate("groups", 3):
            P.sample("g", D.Normal(loc, 1.0))

    P.set_rng_seed(0)
    return P.poutine.trace(model).get_trace(X)


def test_site_is_subsample_as_pyro():
    from pyro.poutine.util import site_is_subsample as pyro_site_is_subsample

    from ppl.poutine.util import site_is_subsample

    ours, pyros = subsampled_trace(ppl, dist), subsampled_trace(pyro, pdist)
    assert list(ours.nodes) == list(pyros.nodes)
    flags = {name: site_is_subsample(site) for name, site in ours.nodes.items()}
    expected = {name: pyro_site_is_subsample(s) for name, s in pyros.nodes.items()}
    assert flags == expected
    assert flags["data"] and flags["groups"] and not flags["loc"] and not flags["obs"]


def test_prune_subsample_sites_as_pyro():
    from pyro.poutine.util import prune_subsample_sites as pyro_prune

    from ppl.poutine.util import prune_subsample_sites

    ours, pyros = subsampled_trace(ppl, dist), subsampled_trace(pyro, pdist)
    before = list(ours.nodes)
    pruned = prune_subsample_sites(ours)
    assert (
        list(pruned.nodes)
        == list(pyro_prune(pyros).nodes)
        == ["_INPUT", "loc", "obs", "g", "_RETURN"]
    )
    assert pruned is not ours and list(ours.nodes) == before  # the input is unchanged
    assert pruned.nodes["obs"] is ours.nodes["obs"]  # a shallow copy, as Pyro's
    assert torch.equal(pruned.nodes["g"]["value"], pyros.nodes["g"]["value"])
