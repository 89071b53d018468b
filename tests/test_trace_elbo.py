"""Tests of ppl.infer.trace_elbo (chapter 8): Trace_ELBO and TraceMeanField_ELBO.

Oracles: Pyro's Trace_ELBO and TraceMeanField_ELBO on the same programs with the same latent
values (substituted, or drawn from the same seed); the ELBO written by hand; exact gradients by
enumeration; closed-form ELBOs and KL divergences. Monte Carlo checks use five standard errors,
and the unbiasedness check is shown to reject a biased estimator.
"""

from __future__ import annotations

import math
import warnings
import weakref

import pytest
import torch
from programs import FLIPS, READINGS, beta_coin

import ppl
import ppl.distributions as dist
from ppl import handlers as poutine
from ppl.distributions import constraints
from ppl.infer import Trace_ELBO, TraceMeanField_ELBO
from ppl.infer.estimators import enumerated_expectation
from ppl.runtime import get_stack

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import pyro
    import pyro.distributions as pdist
    import pyro.infer
    from pyro import poutine as pyro_poutine


@pytest.fixture(autouse=True)
def clean_state():
    ppl.clear_param_store()
    pyro.clear_param_store()
    yield
    ppl.clear_param_store()
    pyro.clear_param_store()
    assert get_stack() == []


# --- programs written once, run on either library -----------------------------------------------


def normal_vector(P, D):
    # a vector latent (event dim 1) and observed vector data, no plates
    def model(x):
        loc = P.param("prior_loc", torch.tensor(0.5))
        z = P.sample("z", D.Normal(loc, 2.0).expand([2]).to_event(1))
        P.sample("x", D.Normal(z.sum(), 1.0).expand([len(x)]).to_event(1), obs=x)

    def guide(x):
        m = P.param("m", torch.tensor([0.3, -0.2]))
        s = P.param("s", torch.tensor([0.7, 1.3]), constraint=D.constraints.positive)
        P.sample("z", D.Normal(m, s).to_event(1))

    return model, guide


def scaled(P, D, handlers):
    model, guide = normal_vector(P, D)
    return handlers.scale(model, scale=2.5), handlers.scale(guide, scale=2.5)


def masked(P, D, handlers):
    def model(x):
        z = P.sample("z", D.Normal(0.0, 1.0))
        with handlers.mask(mask=torch.tensor(False)):  # these readings are dropped
            P.sample("x_dropped", D.Normal(z, 1.0).expand([2]).to_event(1), obs=x[:2])
        with handlers.mask(mask=torch.tensor(True)):
            P.sample("x", D.Normal(z, 1.0).expand([len(x) - 2]).to_event(1), obs=x[2:])

    def guide(x):
        P.sample("z", D.Normal(P.param("m", torch.tensor(0.2)), 0.8))

    return model, guide


def discrete(P, D):
    # a reparameterised and a discrete latent: Trace_ELBO needs its score-function term
    def model(x):
        loc = P.sample("loc", D.Normal(0.0, 1.0))
        k = P.sample("k", D.Bernoulli(0.4))
        P.sample("x", D.Normal(loc + 2.0 * k, 1.0).expand([len(x)]).to_event(1), obs=x)

    def guide(x):
        P.sample("loc", D.Normal(P.param("m", torch.tensor(0.1)), 0.9))
        P.sample("k", D.Bernoulli(logits=P.param("logit", torch.tensor(0.3))))

    return model, guide


def with_factor(P, D):
    def model(x):
        z = P.sample("z", D.Normal(0.0, 1.0))
        P.factor("penalty", -(z**2))
        P.sample("x", D.Normal(z, 1.0).expand([len(x)]).to_event(1), obs=x)

    def guide(x):
        P.sample("z", D.Normal(P.param("m", torch.tensor(0.0)), 1.0))

    return model, guide


CASES = {
    "coin": (lambda P, D, H: beta_coin(P, D), FLIPS, {"z": torch.tensor(0.37)}),
    "vector": (
        lambda P, D, H: normal_vector(P, D),
        READINGS,
        {"z": torch.tensor([0.4, 0.9])},
    ),
    "scale": (
        lambda P, D, H: scaled(P, D, H),
        READINGS,
        {"z": torch.tensor([-0.3, 1.1])},
    ),
    "mask": (masked, READINGS, {"z": torch.tensor(0.8)}),
    "discrete": (
        lambda P, D, H: discrete(P, D),
        READINGS,
        {"loc": torch.tensor(0.6), "k": torch.tensor(1.0)},
    ),
    "factor": (lambda P, D, H: with_factor(P, D), READINGS, {"z": torch.tensor(-0.4)}),
}


def both(case):
    build, data, latents = CASES[case]
    ppl_model, ppl_guide = build(ppl, dist, poutine)
    pyro_model, pyro_guide = build(pyro, pdist, pyro_poutine)
    return (ppl_model, ppl_guide), (pyro_model, pyro_guide), data, latents


# --- the value: ppl and Pyro agree -----------------------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
def test_loss_equals_pyros_for_the_same_substituted_latents(case, pyro_fix_latents):
    (m, g), (pm, pg), data, latents = both(case)
    ours = Trace_ELBO().loss(m, poutine.fix_latents(g, data=latents), data)
    theirs = pyro.infer.Trace_ELBO().loss(pm, pyro_fix_latents(pg, latents), data)
    assert ours == pytest.approx(theirs, rel=1e-6, abs=1e-5)


@pytest.mark.parametrize("case", list(CASES))
def test_loss_and_gradients_equal_pyros_for_the_same_seed(case):
    (m, g), (pm, pg), data, _ = both(case)
    for seed in range(3):
        ppl.set_rng_seed(seed)
        ours = Trace_ELBO(num_particles=2).differentiable_loss(m, g, data)
        pyro.set_rng_seed(seed)
        theirs = pyro.infer.Trace_ELBO(num_particles=2).differentiable_loss(
            pm, pg, data
        )
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
        names = sorted(ppl.get_param_store().keys())
        assert names == sorted(pyro.get_param_store().keys())
        ours_leaves = [ppl.param(n).unconstrained() for n in names]
        theirs_leaves = [pyro.param(n).unconstrained() for n in names]
        for ga, gb in zip(
            torch.autograd.grad(ours, ours_leaves),
            torch.autograd.grad(theirs, theirs_leaves),
        ):
            torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ["coin", "vector", "discrete"])
def test_mean_field_loss_equals_pyros_for_the_same_seed(case):
    (m, g), (pm, pg), data, _ = both(case)
    if case == "discrete":  # Pyro and ppl both refuse a guide site without rsample
        with pytest.raises(NotImplementedError):
            pyro.infer.TraceMeanField_ELBO().loss(pm, pg, data)
        with pytest.raises(NotImplementedError, match="'k'"):
            TraceMeanField_ELBO().loss(m, g, data)
        return
    for seed in range(3):
        ppl.set_rng_seed(seed)
        ours = TraceMeanField_ELBO().loss(m, g, data)
        pyro.set_rng_seed(seed)
        theirs = pyro.infer.TraceMeanField_ELBO().loss(pm, pg, data)
        assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-5)


def test_loss_is_the_hand_written_elbo():
    model, guide = beta_coin(ppl, dist)
    z = torch.tensor(0.62)
    loss = Trace_ELBO().loss(model, poutine.fix_latents(guide, data={"z": z}), FLIPS)
    heads, tails = FLIPS.sum(), (1 - FLIPS).sum()
    elbo = (
        dist.Beta(2.0, 2.0).log_prob(z)
        + heads * z.log()
        + tails * (1 - z).log()
        - dist.Beta(3.0, 2.0).log_prob(z)
    )
    assert loss == pytest.approx(-elbo.item(), abs=1e-5)


def test_three_ways_to_the_loss_agree_and_loss_builds_no_graph():
    model, guide = discrete(ppl, dist)
    ppl.set_rng_seed(5)
    value = Trace_ELBO(num_particles=3).loss(model, guide, READINGS)
    assert isinstance(value, float)
    ppl.set_rng_seed(5)
    tensor = Trace_ELBO(num_particles=3).differentiable_loss(model, guide, READINGS)
    assert tensor.requires_grad and tensor.item() == pytest.approx(value, abs=1e-5)
    leaves = [ppl.param(n).unconstrained() for n in ("m", "logit")]
    expected = torch.autograd.grad(tensor, leaves)
    ppl.set_rng_seed(5)
    returned = Trace_ELBO(num_particles=3).loss_and_grads(model, guide, READINGS)
    assert returned == pytest.approx(value, abs=1e-5)
    for leaf, grad in zip(leaves, expected):
        torch.testing.assert_close(leaf.grad, grad)


# --- the gradient: unbiased, against enumeration -------------------------------------------------

BIASES = torch.tensor([0.2, 0.5, 0.8])


def three_coins(x):
    k = ppl.sample("coin", dist.Categorical(logits=torch.zeros(3)))
    ppl.sample("x", dist.Bernoulli(BIASES[k]).expand([len(x)]).to_event(1), obs=x)


def three_coins_guide(x):
    ppl.sample(
        "coin",
        dist.Categorical(logits=ppl.param("phi", torch.tensor([0.5, -0.5, 0.0]))),
    )


def exact_three_coins_gradient(phi):
    heads, tails = FLIPS.sum(), (1 - FLIPS).sum()
    q = dist.Categorical(logits=phi)
    log_joint = lambda k: (
        math.log(1 / 3) + heads * BIASES[k].log() + tails * (1 - BIASES[k]).log()
    )
    return torch.autograd.grad(
        enumerated_expectation(lambda k: log_joint(k) - q.log_prob(k), q), phi
    )[0]


def z_scores(samples: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    return (samples.mean(0) - exact) / (samples.std(0) / math.sqrt(len(samples)))


def gradient_draws(loss_fn, num_draws):
    three_coins_guide(FLIPS)
    phi = ppl.param("phi")
    return phi, torch.stack(
        [torch.autograd.grad(loss_fn(), phi)[0] for _ in range(num_draws)]
    )


def test_gradient_with_a_discrete_latent_is_unbiased():
    ppl.set_rng_seed(0)
    elbo = Trace_ELBO()
    phi, draws = gradient_draws(
        lambda: -elbo.differentiable_loss(three_coins, three_coins_guide, FLIPS), 3000
    )
    exact = exact_three_coins_gradient(phi)
    assert exact.abs().min() > 0.3
    assert z_scores(draws, exact).abs().max() < 5


def test_the_unbiasedness_check_rejects_the_pathwise_only_estimator():
    # Without the score-function term (chapter 5's estimator), the gradient averages to zero.
    def pathwise_only():
        guide_trace = poutine.trace(three_coins_guide).get_trace(FLIPS)
        model_trace = poutine.trace(
            poutine.replay(three_coins, trace=guide_trace)
        ).get_trace(FLIPS)
        return model_trace.log_prob_sum() - guide_trace.log_prob_sum()

    ppl.set_rng_seed(0)
    phi, draws = gradient_draws(pathwise_only, 3000)
    assert z_scores(draws, exact_three_coins_gradient(phi)).abs().max() > 5


def test_num_particles_agrees_with_one_particle_in_expectation():
    model, guide = discrete(ppl, dist)
    ppl.set_rng_seed(1)
    guide(READINGS)
    leaves = [ppl.param(n).unconstrained() for n in ("m", "logit")]

    def draws(k, n):
        elbo = Trace_ELBO(num_particles=k)
        rows = []
        for _ in range(n):
            loss = elbo.differentiable_loss(model, guide, READINGS)
            rows.append(
                torch.stack([loss.detach(), *torch.autograd.grad(loss, leaves)])
            )
        return torch.stack(rows)

    one, four = draws(1, 2000), draws(4, 500)
    se = torch.sqrt(one.var(0) / len(one) + four.var(0) / len(four))
    assert ((one.mean(0) - four.mean(0)).abs() / se).max() < 5
    variance_ratio = one.var(0) / four.var(0)
    assert ((variance_ratio > 2.8) & (variance_ratio < 5.7)).all(), variance_ratio


# --- TraceMeanField_ELBO -----------------------------------------------------------------------


def noisy_model(x):
    z = ppl.sample("z", dist.Normal(0.0, 1.0))
    ppl.sample("x", dist.Normal(z, 3.0).expand([len(x)]).to_event(1), obs=x)


def noisy_guide(x):
    m = ppl.param("m", torch.tensor(0.2))
    s = ppl.param("s", torch.tensor(0.9), constraint=constraints.positive)
    ppl.sample("z", dist.Normal(m, s))


def closed_form_elbo(m=0.2, s=0.9, sigma=3.0):
    expected_log_lik = (
        (
            -0.5 * math.log(2 * math.pi * sigma**2)
            - ((READINGS - m) ** 2 + s**2) / (2 * sigma**2)
        )
        .sum()
        .item()
    )
    kl = torch.distributions.kl_divergence(
        torch.distributions.Normal(torch.tensor(m), torch.tensor(s)),
        torch.distributions.Normal(0.0, 1.0),
    ).item()
    return expected_log_lik - kl


def test_mean_field_and_trace_elbo_equal_the_closed_form_in_expectation():
    ppl.set_rng_seed(2)
    exact = closed_form_elbo()
    for elbo in (Trace_ELBO(), TraceMeanField_ELBO()):
        values = torch.tensor(
            [-elbo.loss(noisy_model, noisy_guide, READINGS) for _ in range(3000)]
        )
        se = values.std() / math.sqrt(len(values))
        assert abs(values.mean() - exact) < 5 * se


def test_mean_field_is_exactly_minus_the_kl_without_observations():
    def prior_only(x):
        ppl.sample("z", dist.Normal(0.0, 1.0).expand([3]).to_event(1))

    def guide(x):
        ppl.sample(
            "z",
            dist.Normal(
                torch.tensor([0.5, -1.0, 2.0]), torch.tensor([0.3, 1.5, 1.0])
            ).to_event(1),
        )

    kl = (
        torch.distributions.kl_divergence(
            torch.distributions.Normal(
                torch.tensor([0.5, -1.0, 2.0]), torch.tensor([0.3, 1.5, 1.0])
            ),
            torch.distributions.Normal(0.0, 1.0),
        )
        .sum()
        .item()
    )
    for _ in range(3):
        assert TraceMeanField_ELBO().loss(prior_only, guide, None) == pytest.approx(
            kl, rel=1e-6
        )
    assert TraceMeanField_ELBO().loss(
        prior_only, poutine.scale(guide, scale=2.0), None
    ) == pytest.approx(2 * kl)


def test_mean_field_has_lower_gradient_variance_on_the_noisy_normal_model():
    ppl.set_rng_seed(3)
    noisy_guide(READINGS)
    m = ppl.param("m")
    spread = []
    for elbo in (Trace_ELBO(), TraceMeanField_ELBO()):
        grads = torch.stack(
            [
                torch.autograd.grad(
                    elbo.differentiable_loss(noisy_model, noisy_guide, READINGS), m
                )[0]
                for _ in range(1000)
            ]
        )
        spread.append(grads.var())
    assert spread[0] / spread[1] > 3


def test_mean_field_falls_back_to_sampled_terms_without_a_closed_form():
    def model(x):
        # no registered KL
        z = ppl.sample("z", dist.Normal(0.0, 1.0).mask(torch.tensor(True)))
        ppl.sample("x", dist.Normal(z, 1.0), obs=x)

    def guide(x):
        ppl.sample("z", dist.Normal(0.3, 0.5))

    for seed in range(3):
        ppl.set_rng_seed(seed)
        sampled = Trace_ELBO().loss(model, guide, torch.tensor(1.0))
        ppl.set_rng_seed(seed)
        assert TraceMeanField_ELBO().loss(
            model, guide, torch.tensor(1.0)
        ) == pytest.approx(sampled)


# --- clear errors --------------------------------------------------------------------------------


def test_guide_missing_a_latent_site_names_it():
    model, _ = normal_vector(ppl, dist)
    with pytest.raises(
        ValueError, match="model site 'z' is latent.*no sample site 'z'"
    ):
        Trace_ELBO().loss(model, lambda x: None, READINGS)


def test_guide_site_that_the_model_lacks_names_it():
    model, guide = beta_coin(ppl, dist)

    def guide_plus(x):
        guide(x)
        ppl.sample("extra", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="guide site 'extra'.*is_auxiliary"):
        Trace_ELBO().loss(model, guide_plus, FLIPS)


def test_guide_sampling_an_observed_site_names_it():
    model, guide = beta_coin(ppl, dist)

    def guide_plus(x):
        guide(x)
        ppl.sample("x", dist.Bernoulli(0.5).expand([len(x)]).to_event(1))

    with pytest.raises(ValueError, match="guide site 'x' is observed in the model"):
        TraceMeanField_ELBO().loss(model, guide_plus, FLIPS)


def test_auxiliary_guide_sites_are_allowed():
    model, guide = beta_coin(ppl, dist)

    def guide_plus(x):
        guide(x)
        ppl.sample("aux", dist.Normal(0.0, 1.0), infer={"is_auxiliary": True})

    assert math.isfinite(Trace_ELBO().loss(model, guide_plus, FLIPS))


def test_shape_mismatch_names_the_site():
    model, _ = normal_vector(ppl, dist)
    with pytest.raises(ValueError, match="site 'z'.*event_shape"):
        Trace_ELBO().loss(
            model,
            lambda x: ppl.sample("z", dist.Normal(0.0, 1.0).expand([2])),
            READINGS,
        )
    with pytest.raises(
        ValueError, match=r"site 'z' has shape \(2,\) in the model and \(3,\)"
    ):
        Trace_ELBO().loss(
            model,
            lambda x: ppl.sample("z", dist.Normal(0.0, 1.0).expand([3]).to_event(1)),
            READINGS,
        )


def test_checks_are_skipped_with_validation_off():
    model, guide = beta_coin(ppl, dist)

    def guide_plus(x):
        guide(x)
        ppl.sample("extra", dist.Normal(0.0, 1.0))

    with ppl.validation_enabled(False):
        assert math.isfinite(Trace_ELBO().loss(model, guide_plus, FLIPS))


def test_non_finite_particle_names_the_first_bad_site():
    def model(x):
        ppl.sample("z", dist.Uniform(0.0, 0.5))

    def guide(x):
        ppl.sample("z", dist.Delta(torch.tensor(0.7)))

    elbo = Trace_ELBO()
    with ppl.validation_enabled(False):
        assert elbo.loss(model, guide, None) == math.inf
    assert elbo.nonfinite_site == "model site 'z' (Uniform): log density -inf"
    assert elbo.loss(beta_coin(ppl, dist)[0], beta_coin(ppl, dist)[1], FLIPS) < math.inf
    assert elbo.nonfinite_site is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_particles": 0}, "positive integer"),
        ({"num_particles": 2.0}, "positive integer"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Trace_ELBO(**kwargs)


def test_traces_are_released_before_backward():
    # Each particle's traces (every site's distribution and log-density) are freed before
    # loss_and_grads runs backward, so that backward's buffers can reuse their memory.
    refs, freed_during_backward = [], []

    def model():
        ppl.sample("z", dist.Normal(0.0, 1.0))

    def guide():
        loc = ppl.param("loc", torch.tensor(0.0))
        q = dist.Normal(loc, 1.0)
        if not refs:  # one hook on the leaf: it fires in each particle's backward
            loc.register_hook(
                lambda grad: freed_during_backward.append(refs[-1]() is None)
            )
        refs.append(weakref.ref(q))
        ppl.sample("z", q)

    Trace_ELBO(num_particles=2).loss_and_grads(model, guide)
    assert freed_during_backward == [True, True]
