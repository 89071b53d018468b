"""ppl.infer.autoguide against Pyro 1.9.2 and closed forms."""

import pyro
import pyro.distributions as pdist
import pyro.infer.autoguide as pag
import pyro.infer.autoguide.initialization as pinit
import pytest
import torch

import ppl
import ppl.distributions as dist
import ppl.infer.autoguide as ag
import ppl.infer.autoguide.initialization as init
from ppl.handlers import block
from ppl.infer import SVI, Trace_ELBO
from ppl.optim import Adam

DATA = torch.tensor([0.3, 1.2, 0.8, 2.0, 1.1])
GUIDES = [
    "AutoDelta",
    "AutoNormal",
    "AutoDiagonalNormal",
    "AutoMultivariateNormal",
    "AutoLowRankMultivariateNormal",
]


def make_model(P, D):
    # a real, a positive and a unit-interval latent: three different maps
    def model(x):
        loc = P.sample("loc", D.Normal(0.0, 2.0))
        s = P.sample("s", D.LogNormal(0.0, 1.0))
        p = P.sample("p", D.Beta(2.0, 3.0))
        with P.plate("data", len(x)):
            P.sample("obs", D.Normal(loc * p, s), obs=x)

    return model


def fit(lib, name, steps=30):
    if lib == "ppl":
        P, D, A, S, E, Optim = ppl, dist, ag, SVI, Trace_ELBO, Adam
    else:
        P, D, A = pyro, pdist, pag
        S, E, Optim = pyro.infer.SVI, pyro.infer.Trace_ELBO, pyro.optim.Adam
    P.clear_param_store()
    P.set_rng_seed(0)
    model = make_model(P, D)
    guide = getattr(A, name)(model)
    svi = S(model, guide, Optim({"lr": 0.05}), E())
    losses = [svi.step(DATA) for _ in range(steps)]
    store = P.get_param_store()
    params = {k: store[k].detach().clone() for k in store.keys()}
    quantiles = {} if name == "AutoDelta" else guide.quantiles([0.1, 0.5, 0.9], DATA)
    return losses, params, guide.median(DATA), quantiles, guide


@pytest.mark.parametrize("name", GUIDES)
def test_svi_matches_pyro(name):
    # Same seed, same draws, same gradients: the params agree bitwise; the losses to
    # float rounding (the log-densities are summed in another order)
    ours, pyros = fit("ppl", name), fit("pyro", name)
    for a, b in zip(ours[0], pyros[0]):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-6)
    assert sorted(ours[1]) == sorted(pyros[1])
    for key, value in ours[1].items():
        assert value.shape == pyros[1][key].shape
        assert torch.equal(value, pyros[1][key]), key
    for part in (2, 3):
        assert sorted(ours[part]) == sorted(pyros[part])
        for key, value in ours[part].items():
            assert torch.equal(value, pyros[part][key]), (part, key)


def test_param_names_and_parameters():
    ppl.clear_param_store()
    guide = ag.AutoNormal(make_model(ppl, dist))
    assert list(guide.parameters()) == []  # params are created at the first call
    guide(DATA)
    store = ppl.get_param_store()
    assert torch.equal(guide.locs.loc, store["AutoNormal.locs.loc"])
    assert torch.allclose(guide.scales.s, torch.tensor(0.1))
    leaves = list(guide.parameters())
    assert len(leaves) == 6 and all(p.is_leaf and p.requires_grad for p in leaves)
    guide.requires_grad_(False)
    assert not any(p.requires_grad for _, p in store.named_parameters())
    guide.requires_grad_(True)
    mvn = ag.AutoMultivariateNormal(make_model(ppl, dist))
    mvn(DATA)
    assert torch.equal(mvn.scale_tril, torch.eye(3))
    assert torch.allclose(mvn.scale, torch.full((3,), 0.1))
    with pytest.raises(AttributeError, match="no param"):
        guide.locs.nothing


def test_init_strategies_match_pyro():
    fns = [
        dist.Normal(1.0, 2.0),
        dist.Gamma(2.0, 3.0),
        dist.Beta(2.0, 5.0),
        dist.Dirichlet(torch.ones(3)),
        dist.Cauchy(0.0, 1.0),
    ]
    pairs = [
        (init.init_to_feasible, pinit.init_to_feasible),
        (init.init_to_sample, pinit.init_to_sample),
        (init.init_to_median, pinit.init_to_median),
        (init.init_to_median(num_samples=5), pinit.init_to_median(num_samples=5)),
        (init.init_to_mean, pinit.init_to_mean),
        (init.init_to_uniform, pinit.init_to_uniform),
        (
            init.init_to_value(values={"z": torch.tensor(0.5)}),
            pinit.init_to_value(values={"z": torch.tensor(0.5)}),
        ),
    ]
    for fn in fns:
        site = {"name": "z", "fn": fn, "value": None}
        for ours, pyros in pairs:
            torch.manual_seed(3)
            a = ours(site)
            torch.manual_seed(3)
            b = pyros(site)
            assert torch.equal(torch.as_tensor(a), torch.as_tensor(b)), (fn, ours)


def test_init_to_value_without_fallback_names_site():
    with pytest.raises(ValueError, match="'z'"):
        init.init_to_value({"name": "z", "fn": dist.Normal(0.0, 1.0)}, fallback=None)


def test_discrete_site_raises_naming_it():
    def model():
        ppl.sample("k", dist.Bernoulli(0.3))
        ppl.sample("z", dist.Normal(0.0, 1.0))

    for guide in (ag.AutoNormal(model), ag.AutoDiagonalNormal(model)):
        with pytest.raises(ValueError, match="'k'.*continuous.*enumeration"):
            guide()
    assert set(ag.AutoNormal(block(model, hide=["k"]))()) == {"z"}


def test_init_outside_support_raises_naming_it():
    def model():
        ppl.sample("s", dist.Gamma(2.0, 1.0))

    strategy = init.init_to_value(values={"s": torch.tensor(-1.0)})
    with pytest.raises(ValueError, match="'s'.*outside the support"):
        ag.AutoNormal(model, init_loc_fn=strategy)()
    strategy = init.init_to_value(values={"s": torch.tensor(0.0)})  # the edge: -inf
    with pytest.raises(ValueError, match="'s'.*not finite"):
        ag.AutoDiagonalNormal(model, init_loc_fn=strategy)()


def test_model_that_changes_its_sites_raises_naming_the_site():
    def model(extra):
        ppl.sample("z", dist.Normal(0.0, 1.0))
        if extra:
            ppl.sample("w", dist.Normal(0.0, 1.0))

    ppl.clear_param_store()
    guide = ag.AutoNormal(model)
    guide(False)
    with pytest.raises(ValueError, match="'w'"):
        Trace_ELBO().loss(model, guide, True)


def test_median_and_quantiles_closed_form():
    # LogNormal site: quantiles are exp of the Normal's quantiles of locs, scales
    def model():
        ppl.sample("s", dist.LogNormal(0.0, 1.0))

    ppl.clear_param_store()
    guide = ag.AutoNormal(
        model, init_loc_fn=init.init_to_value(values={"s": torch.tensor(2.0)})
    )
    guide()
    q = guide.quantiles([0.1, 0.5, 0.9])["s"]
    normal = torch.distributions.Normal(torch.tensor(2.0).log(), 0.1)
    expected = normal.icdf(torch.tensor([0.1, 0.5, 0.9])).exp()
    assert torch.allclose(q, expected)
    assert torch.allclose(guide.median()["s"], torch.tensor(2.0))


def local_model(x, seen, subsample_size=2):
    with ppl.plate("data", len(x), subsample_size=subsample_size) as idx:
        z = ppl.sample("z", dist.Normal(0.0, 1.0))
        ppl.sample("x", dist.Normal(z, 1.0), obs=x[idx])
        seen.append((idx, z.detach()))


@pytest.mark.parametrize("subsample_size", [2, 6])
def test_autonormal_in_subsampled_plate(subsample_size):
    # Full-size locs; each step's gradient reaches exactly the rows of the model's
    # minibatch, with the full-batch gradient of each row times N / B (Pyro #3468)
    x = torch.arange(6.0)
    seen = []
    ppl.clear_param_store()
    ppl.set_rng_seed(0)
    guide = ag.AutoNormal(lambda x: local_model(x, seen, subsample_size))
    for _ in range(3):
        seen.clear()
        for _, p in ppl.get_param_store().named_parameters():
            p.grad = None
        Trace_ELBO().loss_and_grads(
            lambda x: local_model(x, seen, subsample_size), guide, x
        )
        idx, z = seen[-1]
        leaf = ppl.get_param_store()["AutoNormal.locs.z"].unconstrained()
        assert leaf.shape == (6,)
        # d(-ELBO)/d loc_i = -(N / B) (x_i - 2 z_i): the reparameterised z_i = loc_i +
        # scale_i eps_i, and log q does not depend on loc_i at fixed eps_i
        expected = torch.zeros(6)
        expected[idx] = -(6 / subsample_size) * (x[idx] - 2 * z)
        assert torch.allclose(leaf.grad, expected, atol=1e-6)


def test_explicit_subsample_needs_create_plates():
    x = torch.arange(6.0)
    idx = torch.tensor([4, 1])

    def model(x):
        with ppl.plate("data", 6, subsample=idx) as i:
            z = ppl.sample("z", dist.Normal(0.0, 1.0))
            ppl.sample("x", dist.Normal(z, 1.0), obs=x[i])

    ppl.clear_param_store()
    with pytest.raises(ValueError, match="plate 'data'.*create_plates"):
        Trace_ELBO().loss(model, ag.AutoNormal(model), x)
    guide = ag.AutoNormal(
        model, create_plates=lambda x: ppl.plate("data", 6, subsample=idx)
    )
    Trace_ELBO().loss_and_grads(model, guide, x)
    grad = ppl.get_param_store()["AutoNormal.locs.z"].unconstrained().grad
    assert set(grad.nonzero().flatten().tolist()) == {1, 4}


def test_flat_guides_refuse_subsampled_plates():
    seen = []
    guide = ag.AutoDiagonalNormal(lambda x: local_model(x, seen))
    with pytest.raises(ValueError, match="'z'.*plate 'data'.*AutoNormal"):
        guide(torch.arange(6.0))


@pytest.mark.parametrize("name", ["AutoNormal", "AutoDiagonalNormal"])
def test_vectorized_particles_with_a_simplex_site_match_pyro(name):
    # Four particles in a plate, and a Dirichlet site (stick-breaking: 3 values from 2)
    def make(P, D):
        def model(x):
            loc = P.sample("loc", D.Normal(0.0, 2.0))
            w = P.sample("w", D.Dirichlet(torch.ones(3)))
            with P.plate("data", len(x)):
                P.sample("obs", D.Normal(loc * w[..., :1], 1.0), obs=x)

        return model

    params = {}
    for P, D, A, S, E, Optim in [
        (ppl, dist, ag, SVI, Trace_ELBO, Adam),
        (pyro, pdist, pag, pyro.infer.SVI, pyro.infer.Trace_ELBO, pyro.optim.Adam),
    ]:
        P.clear_param_store()
        P.set_rng_seed(0)
        model = make(P, D)
        elbo = E(num_particles=4, vectorize_particles=True, max_plate_nesting=1)
        svi = S(model, getattr(A, name)(model), Optim({"lr": 0.05}), elbo)
        for _ in range(10):
            svi.step(DATA)
        store = P.get_param_store()
        params[P.__name__] = {k: store[k].detach().clone() for k in store.keys()}
    assert sorted(params["ppl"]) == sorted(params["pyro"])
    for key, value in params["ppl"].items():
        assert torch.equal(value, params["pyro"][key]), key
