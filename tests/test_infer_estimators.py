"""Tests of ppl.infer.estimators (chapter 6): gradient estimators checked against exact gradients.

Every random test seeds torch. Unbiasedness is checked the way the chapter does it: the mean of many
independent estimates must lie within five standard errors of the exact gradient (a false alarm has
probability below one in a million per component), and the check itself is shown to reject a biased
estimator. Variance comparisons use enough draws that the measured ratio sits far from its threshold.
"""

from __future__ import annotations

import doctest
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Bernoulli, Categorical, Normal

import ppl.infer.estimators
from ppl.infer.estimators import (
    MovingAverageBaseline,
    enumerated_expectation,
    gradient_samples,
    pathwise_surrogate,
    score_function_surrogate,
    surrogate_term,
)

MU, SIGMA = torch.tensor(2.0), torch.tensor(0.5)
# d/dmu, d/dsigma of E[z^2] = mu^2 + sigma^2
EXACT_GAUSSIAN = torch.tensor([2 * 2.0, 2 * 0.5])
N = 100_000


def square(z):
    return z**2


def z_scores(g: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """(mean - exact) / standard error, per component, for estimates stacked along dim 0."""
    se = g.std(0) / math.sqrt(g.shape[0])
    return (g.mean(0) - exact) / se


def assert_unbiased(g: torch.Tensor, exact: torch.Tensor) -> None:
    z = z_scores(g, exact)
    assert z.abs().max() < 5, f"mean {g.mean(0)} vs exact {exact}: z-scores {z}"


def gaussian_grads(estimator, num_samples=1, baseline=None, num_draws=N):
    def surrogate(mu, sigma):
        q = Normal(mu, sigma)
        if estimator == "pathwise":
            return pathwise_surrogate(square, q, num_samples)
        return score_function_surrogate(square, q, num_samples, baseline)

    g_mu, g_sigma = gradient_samples(surrogate, [MU, SIGMA], num_draws)
    return torch.stack([g_mu, g_sigma], dim=1)


# --- unbiasedness -------------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", ["pathwise", "score_function"])
@pytest.mark.parametrize("num_samples", [1, 4])
def test_gaussian_gradient_is_unbiased(estimator, num_samples):
    torch.manual_seed(0)
    assert_unbiased(gaussian_grads(estimator, num_samples), EXACT_GAUSSIAN)


def test_unbiasedness_check_rejects_a_biased_estimator():
    # A baseline that depends on its own draw scales the score-function gradient by 0.9.
    torch.manual_seed(0)

    def biased(mu, sigma):
        q = Normal(mu, sigma)
        z = q.sample()
        cost = square(z)
        return (cost + surrogate_term(q.log_prob(z), cost, 0.1 * cost)).sum()

    g_mu, g_sigma = gradient_samples(biased, [MU, SIGMA], N)
    g = torch.stack([g_mu, g_sigma], dim=1)
    assert z_scores(g, EXACT_GAUSSIAN).abs().max() > 5
    assert_unbiased(g, 0.9 * EXACT_GAUSSIAN)


def test_categorical_gradient_is_unbiased_against_enumeration():
    logits = torch.tensor([0.5, -0.3, 1.0, 0.0])
    costs = torch.tensor([2.0, -1.0, 0.5, 3.0])
    phi = logits.clone().requires_grad_()
    (exact,) = torch.autograd.grad(
        enumerated_expectation(lambda z: costs[z], Categorical(logits=phi)), phi
    )

    torch.manual_seed(0)
    (g,) = gradient_samples(
        lambda p: score_function_surrogate(lambda z: costs[z], Categorical(logits=p)),
        [logits],
        N,
    )
    assert g.shape == (N, 4)
    assert_unbiased(g, exact)


def elbo_like_cost(q, z):
    # f depends on the parameters through -log q, as the ELBO does: the direct term matters.
    return torch.where(z > 0.5, 1.5, -0.5) * torch.arange(1.0, 4.0) - q.log_prob(z)


@pytest.mark.parametrize("per_latent", [True, False])
def test_bernoulli_batch_gradient_with_direct_term_is_unbiased(per_latent):
    logits = torch.tensor([-1.0, 0.2, 2.0])
    phi = logits.clone().requires_grad_()
    q = Bernoulli(logits=phi)
    (exact,) = torch.autograd.grad(
        enumerated_expectation(lambda z: elbo_like_cost(q, z), q), phi
    )

    def surrogate(p):
        q = Bernoulli(logits=p)
        if per_latent:
            return score_function_surrogate(
                lambda z: elbo_like_cost(q, z), q, num_samples=2
            )
        return score_function_surrogate(
            lambda z: elbo_like_cost(q, z).sum(-1), q, num_samples=2
        )

    torch.manual_seed(0)
    (g,) = gradient_samples(surrogate, [logits], N)
    assert_unbiased(g, exact)


def test_pathwise_includes_the_direct_dependence_of_f():
    # E[(z - mu)^2] = sigma^2 does not depend on mu: through the draw and through f the mu-paths
    # cancel exactly, in every single draw.
    torch.manual_seed(0)
    g_mu, g_sigma = gradient_samples(
        lambda mu, sigma: pathwise_surrogate(
            lambda z: (z - mu) ** 2, Normal(mu, sigma)
        ),
        [MU, SIGMA],
        N,
    )
    assert torch.all(g_mu == 0)
    assert_unbiased(g_sigma.unsqueeze(1), torch.tensor([2 * 0.5]))


@pytest.mark.parametrize("estimator", [pathwise_surrogate, score_function_surrogate])
def test_gradient_includes_a_direct_dependence_of_f_on_the_parameters(estimator):
    # E[mu * z] = mu^2 for z ~ N(mu, sigma): d/dmu = 2 mu, half of it from f's own dependence on mu.
    torch.manual_seed(0)
    (g_mu,) = gradient_samples(
        lambda mu: estimator(lambda z: mu * z, Normal(mu, SIGMA)), [MU], N
    )
    assert_unbiased(g_mu.unsqueeze(1), torch.tensor([2 * 2.0]))


@settings(max_examples=10)
@given(
    logits=st.lists(st.floats(-3, 3), min_size=2, max_size=5),
    cost_seed=st.integers(0, 1000),
)
def test_score_function_is_unbiased_for_any_categorical(logits, cost_seed):
    logits = torch.tensor(logits)
    costs = torch.randn(len(logits), generator=torch.Generator().manual_seed(cost_seed))
    phi = logits.clone().requires_grad_()
    (exact,) = torch.autograd.grad(
        enumerated_expectation(lambda z: costs[z], Categorical(logits=phi)), phi
    )

    torch.manual_seed(0)
    (g,) = gradient_samples(
        lambda p: score_function_surrogate(
            lambda z: costs[z], Categorical(logits=p), baseline=0.3
        ),
        [logits],
        10_000,
    )
    se = g.std(0) / math.sqrt(g.shape[0])
    # components with (almost) no variance have (almost) no gradient: allow a tiny absolute slack
    assert torch.all((g.mean(0) - exact).abs() < 5 * se + 1e-6)


# --- values of the surrogates --------------------------------------------------------------------


def test_surrogate_values_equal_the_monte_carlo_estimate():
    mu, sigma = MU.clone().requires_grad_(), SIGMA.clone().requires_grad_()
    q = Normal(mu, sigma)
    for make in [
        lambda: score_function_surrogate(square, q, 1000),
        lambda: score_function_surrogate(square, q, 1000, baseline=3.0),
        lambda: pathwise_surrogate(square, q, 1000),
    ]:
        torch.manual_seed(1)
        value = make()
        torch.manual_seed(1)
        plain = square(q.sample((1000,))).sum() / 1000
        assert value.item() == plain.item()


def test_surrogate_term_is_zero_with_the_score_function_gradient():
    phi = torch.tensor([0.3, -1.2], requires_grad=True)
    q = Bernoulli(logits=phi)
    z = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    cost = torch.tensor([[2.0, -1.0], [0.5, 4.0], [-3.0, 1.0]], requires_grad=True)
    term = surrogate_term(q.log_prob(z), cost, baseline=0.5)
    assert torch.all(term == 0)
    (grad,) = torch.autograd.grad(term.sum(), phi)
    p = torch.sigmoid(phi.detach())
    # d/dlogit log Bernoulli(z) = z - sigmoid
    expected = ((cost.detach() - 0.5) * (z - p)).sum(0)
    assert torch.allclose(grad, expected)
    # the cost is a constant to the term: no gradient flows into it
    assert (
        torch.autograd.grad(
            surrogate_term(q.log_prob(z), cost).sum(), cost, allow_unused=True
        )[0]
        is None
    )


# --- variance ------------------------------------------------------------------------------------


def test_pathwise_has_lower_variance_than_score_function_for_the_gaussian():
    torch.manual_seed(0)
    ratio = gaussian_grads("pathwise").var(0) / gaussian_grads("score_function").var(0)
    assert torch.all(ratio < 0.2), ratio  # measured about 0.01 (mu) and 0.05 (sigma)


def test_baseline_keeps_unbiasedness_and_reduces_variance():
    torch.manual_seed(0)
    plain = gaussian_grads("score_function", num_draws=200_000)
    with_baseline = gaussian_grads(
        "score_function", baseline=MU**2 + SIGMA**2, num_draws=200_000
    )
    assert_unbiased(with_baseline, EXACT_GAUSSIAN)
    ratio = with_baseline.var(0) / plain.var(0)
    assert torch.all(ratio < 0.6), ratio  # measured about 0.28 (mu) and 0.46 (sigma)


def test_a_bad_baseline_increases_variance():
    torch.manual_seed(0)
    plain = gaussian_grads("score_function", num_draws=200_000)
    far_off = gaussian_grads("score_function", baseline=-20.0, num_draws=200_000)
    assert_unbiased(far_off, EXACT_GAUSSIAN)
    assert torch.all(far_off.var(0) > 2 * plain.var(0))


def test_per_latent_costs_reduce_variance():
    # Rao-Blackwellisation: pairing each latent's score with its own cost, not with the total.
    logits = torch.zeros(8)
    weights = torch.linspace(-2.0, 2.0, 8)

    def surrogate(p, per_latent):
        q = Bernoulli(logits=p)
        cost = (
            (lambda z: z * weights) if per_latent else (lambda z: (z * weights).sum(-1))
        )
        return score_function_surrogate(cost, q)

    torch.manual_seed(0)
    (per_latent,) = gradient_samples(lambda p: surrogate(p, True), [logits], 50_000)
    (total,) = gradient_samples(lambda p: surrogate(p, False), [logits], 50_000)
    exact = 0.25 * weights  # d/dlogit of sigmoid(logit) * w at logit 0
    assert_unbiased(per_latent, exact)
    assert_unbiased(total, exact)
    assert total.var(0).sum() > 3 * per_latent.var(0).sum()


# --- the moving-average baseline -----------------------------------------------------------------


def test_moving_average_baseline_update_semantics():
    baseline = MovingAverageBaseline(beta=0.9)
    # starts at zero, like Pyro's decaying average baseline
    assert baseline.value.item() == 0.0
    for k in range(1, 6):
        returned = baseline.update(10.0)
        assert returned is baseline.value
        assert math.isclose(baseline.value.item(), 10 * (1 - 0.9**k), rel_tol=1e-6)


def test_moving_average_baseline_per_latent_and_detached():
    baseline = MovingAverageBaseline(beta=0.5, init=1.0)
    cost = torch.tensor([3.0, -1.0], requires_grad=True)
    baseline.update(cost)
    assert torch.equal(baseline.value, torch.tensor([2.0, 0.0]))
    assert not baseline.value.requires_grad
    baseline.update(torch.tensor([2.0, 4.0]))
    assert torch.equal(baseline.value, torch.tensor([2.0, 2.0]))
    assert MovingAverageBaseline(beta=0.0).update(7.0).item() == 7.0


@pytest.mark.parametrize("beta", [-0.1, 1.0, 1.5])
def test_moving_average_baseline_rejects_bad_beta(beta):
    with pytest.raises(ValueError, match="beta"):
        MovingAverageBaseline(beta=beta)


# --- helpers and errors --------------------------------------------------------------------------


def test_enumerated_expectation_is_the_weighted_sum():
    logits = torch.tensor([[0.0, 1.0, -1.0], [2.0, 0.0, 0.0]])
    costs = torch.tensor([1.0, 5.0, -2.0])
    probs = torch.softmax(logits, -1)
    value = enumerated_expectation(lambda z: costs[z], Categorical(logits=logits))
    assert torch.allclose(value, (probs * costs).sum())
    with pytest.raises(ValueError, match="one cost per state"):
        enumerated_expectation(lambda z: costs[z].sum(-1), Categorical(logits=logits))


def test_gradient_samples_returns_one_gradient_per_copy():
    p = torch.tensor([1.0, -2.0])
    (g,) = gradient_samples(
        lambda c: (c**2 * torch.arange(1.0, 4.0).unsqueeze(1)).sum(), [p], 3
    )
    assert torch.equal(g, 2 * p * torch.arange(1.0, 4.0).unsqueeze(1))
    with pytest.raises(ValueError, match="scalar"):
        gradient_samples(lambda c: c, [p], 3)


def test_pathwise_rejects_a_distribution_without_rsample():
    with pytest.raises(ValueError, match="Bernoulli has no rsample"):
        pathwise_surrogate(square, Bernoulli(logits=torch.zeros(2)))


def test_score_function_rejects_costs_that_do_not_line_up():
    q = Bernoulli(logits=torch.zeros(3, 2))
    with pytest.raises(ValueError, match="does not line up"):
        # shape (4, 2): wrong dims
        score_function_surrogate(lambda z: z.sum(-2), q, num_samples=4)
    # one cost per draw, and one per leading batch dim, are both fine
    score_function_surrogate(lambda z: z.sum((-2, -1)), q, num_samples=4)
    score_function_surrogate(lambda z: z.sum(-1), q, num_samples=4)


def test_docstring_examples_run():
    failures, tried = doctest.testmod(ppl.infer.estimators, verbose=False)
    assert tried > 0 and failures == 0
