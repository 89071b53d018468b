"""ppl.infer.elbo (chapter 5): the ELBO identity, the Monte Carlo estimators and their error bars.

Ground truth is computed here, independently of the package: conjugate posteriors and log evidences
in closed form (the Normal-Normal evidence as a multivariate normal density), closed-form ELBOs from
the guides' log moments, and torch's ``kl_divergence``. Everything runs in float64 so that the exact
identities hold to 1e-9, and every Monte Carlo check allows five standard errors.
"""

import doctest
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import (
    Bernoulli,
    Beta,
    Categorical,
    Gamma,
    Independent,
    MultivariateNormal,
    Normal,
    constraints,
    kl_divergence,
    transform_to,
)

import ppl.infer.elbo
from ppl.infer.elbo import elbo, elbo_estimate, elbo_samples, kl_mc, mean_and_stderr

F64 = torch.float64
to_positive = transform_to(constraints.positive)


def t(value) -> torch.Tensor:
    return torch.as_tensor(value, dtype=F64)


# --- The coin: z ~ Beta(2, 3), x_i ~ Bernoulli(z); 6 heads and 2 tails give Beta(8, 5). ---------------

COIN_PRIOR = Beta(t(2.0), t(3.0))
FLIPS = t([1, 0, 1, 1, 0, 1, 1, 1])
HEADS, TAILS = FLIPS.sum(), (1 - FLIPS).sum()
COIN_POSTERIOR = Beta(t(8.0), t(5.0))


def log_beta_fn(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


COIN_LOG_EVIDENCE = log_beta_fn(8.0, 5.0) - log_beta_fn(2.0, 3.0)


def coin_log_joint(z: torch.Tensor) -> torch.Tensor:
    return COIN_PRIOR.log_prob(z) + Bernoulli(probs=z.unsqueeze(-1)).log_prob(
        FLIPS
    ).sum(-1)


def coin_elbo_exact(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """E_q[log p(x | z)] - KL(q || prior) for q = Beta(a, b), with E_q[log z] = psi(a) - psi(a + b)."""
    e_log_z = torch.digamma(a) - torch.digamma(a + b)
    e_log_1mz = torch.digamma(b) - torch.digamma(a + b)
    return HEADS * e_log_z + TAILS * e_log_1mz - kl_divergence(Beta(a, b), COIN_PRIOR)


# --- A mean: z ~ Normal(0.5, 1.5), x_i ~ Normal(z, 0.8). -----------------------------------------------

MU0, TAU, SIGMA = 0.5, 1.5, 0.8
READINGS = t([1.3, 0.2, 2.1, 1.7, 0.9, 1.1])
NORMAL_PRIOR = Normal(t(MU0), t(TAU))
_precision = TAU**-2 + len(READINGS) / SIGMA**2
NORMAL_POSTERIOR = Normal(
    t((MU0 / TAU**2 + READINGS.sum().item() / SIGMA**2) / _precision),
    t(_precision**-0.5),
)
_n = len(READINGS)
NORMAL_LOG_EVIDENCE = (
    MultivariateNormal(
        torch.full((_n,), MU0, dtype=F64),
        SIGMA**2 * torch.eye(_n, dtype=F64) + TAU**2 * torch.ones(_n, _n, dtype=F64),
    )
    .log_prob(READINGS)
    .item()
)


def normal_log_joint(z: torch.Tensor) -> torch.Tensor:
    return NORMAL_PRIOR.log_prob(z) + Normal(z.unsqueeze(-1), SIGMA).log_prob(
        READINGS
    ).sum(-1)


def normal_elbo_exact(m: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """E_q[log p(x | z)] - KL(q || prior) for q = Normal(m, s), with E_q[(x - z)^2] = (x - m)^2 + s^2."""
    expected = -0.5 * math.log(2 * math.pi * SIGMA**2) - (
        (READINGS - m) ** 2 + s**2
    ) / (2 * SIGMA**2)
    return expected.sum() - kl_divergence(Normal(m, s), NORMAL_PRIOR)


MODELS = {
    "beta-bernoulli": (
        coin_log_joint,
        coin_elbo_exact,
        COIN_POSTERIOR,
        COIN_LOG_EVIDENCE,
        [(1.0, 1.0), (2.0, 3.0), (8.0, 5.0), (20.0, 4.0), (3.0, 9.0)],
        Beta,
    ),
    "normal-normal": (
        normal_log_joint,
        normal_elbo_exact,
        NORMAL_POSTERIOR,
        NORMAL_LOG_EVIDENCE,
        [(0.0, 1.0), (1.0, 0.3), (2.0, 0.5), (-1.0, 2.0)],
        Normal,
    ),
}


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


# --- log p(x) = ELBO + KL(q || p(z | x)) ---------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_elbo_plus_kl_is_log_evidence(model):
    log_joint, elbo_exact, posterior, log_evidence, guides, family = MODELS[model]
    for params in guides:
        q = family(t(params[0]), t(params[1]))
        kl = kl_divergence(q, posterior).item()
        closed = elbo_exact(t(params[0]), t(params[1])).item()
        assert closed + kl == pytest.approx(log_evidence, abs=1e-9)
        estimate, se = elbo_estimate(log_joint, q, 20_000)
        # 1e-9 covers rounding where the guide is the posterior and the standard error vanishes.
        assert abs(estimate - closed) < 5 * se + 1e-9
        assert abs(estimate + kl - log_evidence) < 5 * se + 1e-9


@pytest.mark.parametrize("model", MODELS)
def test_monte_carlo_check_is_sharp_enough_to_catch_a_missing_entropy(model):
    # The 5-SE checks above mean something only if a plausible bug lands outside them. Dropping
    # -log q(z) from the estimator (a classic slip) moves the estimate by the guide's entropy.
    log_joint, elbo_exact, _, _, guides, family = MODELS[model]
    params = t(guides[-1][0]), t(guides[-1][1])
    q = family(*params)
    z = q.sample((20_000,))
    wrong, _ = mean_and_stderr(log_joint(z))
    _, se = elbo_estimate(log_joint, q, 20_000)
    assert abs(wrong - elbo_exact(*params).item()) > 5 * se


@pytest.mark.parametrize("model", MODELS)
def test_elbo_at_the_exact_posterior_has_zero_variance(model):
    log_joint, _, posterior, log_evidence, _, _ = MODELS[model]
    terms = elbo_samples(log_joint, posterior, 1000)
    assert terms.shape == (1000,)
    assert torch.allclose(terms, t(log_evidence).expand(1000), rtol=0, atol=1e-9)
    value, se = elbo_estimate(log_joint, posterior, 1000)
    assert value == pytest.approx(log_evidence, abs=1e-9) and se < 1e-9


@settings(max_examples=25)
@given(a=st.floats(0.3, 40.0), b=st.floats(0.3, 40.0))
def test_elbo_never_exceeds_log_evidence(a, b):
    torch.manual_seed(0)
    q = Beta(t(a), t(b))
    assert coin_elbo_exact(t(a), t(b)).item() <= COIN_LOG_EVIDENCE + 1e-12
    estimate, se = elbo_estimate(coin_log_joint, q, 2000)
    assert estimate <= COIN_LOG_EVIDENCE + 5 * se


# --- Monte Carlo error bars ----------------------------------------------------------------------------


def test_mean_and_stderr_by_hand():
    terms = t([1.0, 2.0, 3.0, 4.0])
    mean, se = mean_and_stderr(terms)
    sd = math.sqrt(((terms - 2.5) ** 2).sum().item() / 3)  # sample standard deviation
    assert mean == pytest.approx(2.5) and se == pytest.approx(sd / 2)
    with pytest.raises(ValueError, match="at least 2"):
        mean_and_stderr(t([1.0]))


def test_standard_error_shrinks_like_one_over_sqrt_n():
    q = Normal(t(0.5), t(0.6))
    _, se_small = elbo_estimate(normal_log_joint, q, 1_000)
    _, se_large = elbo_estimate(normal_log_joint, q, 100_000)
    assert se_small / se_large == pytest.approx(10.0, rel=0.15)


def test_standard_error_is_the_spread_of_independent_estimates():
    # The SE one estimate reports should match the scatter of many independent estimates.
    q = Beta(t(3.0), t(2.0))
    runs = [elbo_estimate(coin_log_joint, q, 200) for _ in range(300)]
    means = t([m for m, _ in runs])
    mean_reported_se = sum(se for _, se in runs) / len(runs)
    assert means.std().item() == pytest.approx(mean_reported_se, rel=0.15)


@pytest.mark.parametrize(
    "q, p",
    [
        (Normal(t(0.0), t(1.0)), Normal(t(1.0), t(2.0))),
        (Normal(t(1.0), t(2.0)), Normal(t(0.0), t(1.0))),
        (Beta(t(2.0), t(5.0)), Beta(t(3.0), t(3.0))),
        (Gamma(t(3.0), t(2.0)), Gamma(t(2.0), t(1.0))),
        (
            Independent(Normal(t([0.0, 1.0, -1.0]), t([1.0, 0.5, 2.0])), 1),
            Independent(Normal(t([0.3, 0.0, 0.0]), t([1.0, 1.0, 1.0])), 1),
        ),
    ],
)
def test_kl_mc_matches_kl_divergence(q, p):
    exact = kl_divergence(q, p).item()
    estimate, se = kl_mc(q, p, 20_000)
    assert abs(estimate - exact) < 5 * se
    assert 5 * se < 0.2 * exact  # sharp enough to notice a wrong KL


def test_kl_mc_of_a_distribution_with_itself_is_zero():
    q = Gamma(t(2.0), t(3.0))
    estimate, se = kl_mc(q, q, 100)
    assert estimate == 0.0 and se == 0.0


def test_elbo_estimate_with_a_discrete_guide_matches_enumeration():
    # No rsample: the estimator falls back to sample(). Latent k in {0, 1, 2}, enumerated exactly.
    prior = Categorical(probs=t([0.2, 0.5, 0.3]))
    x = t(1.4)

    def log_joint(k):
        return prior.log_prob(k) + Normal(k.to(F64), 1.0).log_prob(x)

    guide = Categorical(probs=t([0.1, 0.6, 0.3]))
    ks = torch.arange(3)
    exact = (guide.probs * (log_joint(ks) - guide.log_prob(ks))).sum().item()
    estimate, se = elbo_estimate(log_joint, guide, 20_000)
    assert abs(estimate - exact) < 5 * se


# --- Gradients -----------------------------------------------------------------------------------------


def _mc_gradients(log_joint, make_guide, phi, replicates, num_samples, detach=False):
    grads = []
    for _ in range(replicates):
        guide = make_guide(phi)
        if detach:  # a deliberately wrong estimator: draws carry no gradient to phi
            z = guide.sample((num_samples,))
            value = (log_joint(z) - guide.log_prob(z)).mean()
        else:
            value = elbo(log_joint, guide, num_samples)
        grads.append(torch.autograd.grad(value, phi)[0])
    grads = torch.stack(grads)
    return grads.mean(0), grads.std(0) / math.sqrt(replicates)


@pytest.mark.parametrize("model", MODELS)
def test_mc_elbo_gradient_is_unbiased(model):
    log_joint, elbo_exact, _, _, _, family = MODELS[model]
    if family is Beta:
        phi = t([math.log(3.0), math.log(4.0)]).requires_grad_()

        def split(phi):
            return to_positive(phi[0]), to_positive(phi[1])
    else:
        phi = t([0.3, math.log(0.7)]).requires_grad_()

        def split(phi):
            return phi[0], to_positive(phi[1])

    (exact,) = torch.autograd.grad(elbo_exact(*split(phi)), phi)
    mean, se = _mc_gradients(log_joint, lambda p: family(*split(p)), phi, 200, 20)
    assert torch.all((mean - exact).abs() < 5 * se), (mean, se, exact)
    # ... and the check can fail: without reparameterisation the gradient is biased.
    wrong, _ = _mc_gradients(
        log_joint, lambda p: family(*split(p)), phi, 200, 20, detach=True
    )
    assert torch.any((wrong - exact).abs() > 5 * se)


# --- Fitting a guide -----------------------------------------------------------------------------------


def test_adam_on_the_mc_elbo_recovers_the_coin_posterior():
    phi = torch.zeros(2, dtype=F64, requires_grad=True)  # Beta(1, 1)
    optimizer = torch.optim.Adam([phi], lr=0.1)
    history = []
    for _ in range(400):
        loss = -elbo(coin_log_joint, Beta(*to_positive(phi)), 32)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(to_positive(phi).detach())
    # average away the stochastic-gradient jitter
    a, b = torch.stack(history[-150:]).mean(0)
    # The posterior Beta(8, 5) is in the family; what remains is optimisation noise: up to 2.4% in
    # a and b over seeds 0-7, so 6% leaves room without letting a wrong optimum through.
    assert a.item() == pytest.approx(8.0, rel=0.06) and b.item() == pytest.approx(
        5.0, rel=0.06
    )
    assert kl_divergence(Beta(a, b), COIN_POSTERIOR).item() < 2e-3


# --- Bad input -----------------------------------------------------------------------------------------


def test_bad_input_gets_a_clear_error():
    batched = Normal(t([0.0, 1.0]), t([1.0, 1.0]))
    with pytest.raises(ValueError, match="batch_shape"):
        elbo(lambda z: z.sum(-1), batched, 3)
    with pytest.raises(ValueError, match="batch_shape"):
        kl_mc(batched, batched, 3)
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        elbo(lambda z: z.unsqueeze(-1), Normal(t(0.0), t(1.0)), 5)
    with pytest.raises(ValueError, match="num_samples"):
        elbo(normal_log_joint, Normal(t(0.0), t(1.0)), 0)
    with pytest.raises(TypeError, match="Distribution"):
        elbo(normal_log_joint, "not a distribution", 3)
    # A vector latent declared as one event is fine.
    vector = Independent(batched, 1)
    assert elbo_samples(lambda z: -(z**2).sum(-1), vector, 4).shape == (4,)


def test_docstring_examples_run():
    failures, tried = doctest.testmod(ppl.infer.elbo, verbose=False)
    assert tried > 0 and failures == 0
