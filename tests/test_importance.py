"""Tests of ppl.infer.importance (chapter 11): Importance, EmpiricalMarginal and
vectorized_importance_weights.

Oracles: Pyro 1.9's Importance, EmpiricalMarginal and vectorized_importance_weights on the
same programs from the same seed (they draw the same random numbers, so the log weights agree
exactly); the closed-form evidence of the conjugate coin and of the Normal mean; the closed-form
effective sample size of a shifted Normal proposal. Monte Carlo checks use five standard errors.
"""

from __future__ import annotations

import math

import pyro
import pyro.infer
import pyro.infer.importance
import pytest
import torch

import ppl
import ppl.distributions as dist
from ppl.exact.bayes import BetaBernoulli, NormalNormal
from ppl.handlers import fix_latents, replay, trace
from ppl.infer import EmpiricalMarginal, Importance, vectorized_importance_weights

pytestmark = pytest.mark.usefixtures("clean_state")

FLIPS = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0])
READINGS = torch.tensor([1.2, 0.4, 2.1, 1.7, 0.9])
COIN, NORMAL = BetaBernoulli(2.0, 2.0), NormalNormal(0.0, 2.0, 1.0)


def coin(P, guide_ab=(8.0, 5.0)):
    def model(flips):
        z = P.sample("z", P.distributions.Beta(2.0, 2.0))
        with P.plate("flips", len(flips)):
            P.sample("x", P.distributions.Bernoulli(z), obs=flips)
        return z

    def guide(flips):
        P.sample("z", P.distributions.Beta(*guide_ab))

    return model, guide


def normal_mean(P, loc=1.0, scale=0.5):
    # z ~ Normal(0, 2), readings ~ Normal(z, 1); the guide Normal(loc, scale)
    def model(x):
        z = P.sample("z", P.distributions.Normal(0.0, 2.0))
        with P.plate("data", len(x)):
            P.sample("x", P.distributions.Normal(z, 1.0), obs=x)

    def guide(x):
        P.sample("z", P.distributions.Normal(loc, scale))

    return model, guide


def pyro_and_ppl(make, use_guide, num_samples, data, seed=0):
    """Run Importance on both libraries from the same seed; return both objects."""
    out = []
    for P, cls in ((ppl, Importance), (pyro, pyro.infer.Importance)):
        model, guide = make(P)
        P.set_rng_seed(seed)
        out.append(cls(model, guide if use_guide else None, num_samples).run(data))
    return out


def stderr_of_log_mean(log_w):
    # delta method: sd(w) / (mean(w) sqrt(N)), computed stably
    w = (log_w - log_w.max()).exp()
    return float(w.std() / w.mean() / math.sqrt(len(w)))


# --- agreement with Pyro ------------------------------------------------------------------------


@pytest.mark.parametrize("use_guide", [False, True])
@pytest.mark.parametrize("make", [coin, normal_mean])
def test_same_weights_and_estimates_as_pyro(make, use_guide):
    data = FLIPS if make is coin else READINGS
    ours, theirs = pyro_and_ppl(make, use_guide, 200, data)
    assert len(ours.log_weights) == len(theirs.log_weights) == 200
    assert torch.equal(torch.stack(ours.log_weights), torch.stack(theirs.log_weights))
    assert ours.chain_ids == theirs.chain_ids
    assert torch.equal(ours.get_log_normalizer(), theirs.get_log_normalizer())
    assert torch.equal(ours.get_normalized_weights(), theirs.get_normalized_weights())
    assert torch.equal(
        ours.get_normalized_weights(log_scale=True),
        theirs.get_normalized_weights(log_scale=True),
    )
    assert torch.allclose(ours.get_ESS(), theirs.get_ESS(), rtol=1e-6)
    assert [list(t.nodes) for t in ours.exec_traces] == [
        list(t.nodes) for t in theirs.exec_traces
    ]


def test_resampled_traces_and_marginal_as_pyro():
    ours, theirs = pyro_and_ppl(coin, True, 300, FLIPS)
    results = []
    for P, imp, em_cls in (
        (ppl, ours, EmpiricalMarginal),
        (pyro, theirs, pyro.infer.EmpiricalMarginal),
    ):
        P.set_rng_seed(1)
        tr = imp()
        marginal = em_cls(imp, sites="z")
        returns = em_cls(imp)  # "_RETURN" by default
        results.append(
            (
                list(tr.nodes),
                tr.nodes["z"]["value"],
                marginal.sample((7,)),
                marginal.mean,
                marginal.variance,
                marginal.log_prob(marginal.enumerate_support()[4]),
                returns.mean,
            )
        )
    (nodes, *ours_values), (pyro_nodes, *pyro_values) = results
    assert nodes == pyro_nodes and "x" not in nodes  # observed sites removed
    for a, b in zip(ours_values, pyro_values):
        assert a.shape == b.shape and torch.allclose(a, b, rtol=1e-6, atol=0)


def test_marginal_of_several_sites():
    def model():
        a = ppl.sample("a", dist.Normal(0.0, 1.0))
        ppl.sample("b", dist.Normal(a, 1.0))
        ppl.sample("y", dist.Normal(a, 1.0), obs=torch.tensor(0.5))

    ppl.set_rng_seed(0)
    imp = Importance(model, num_samples=50).run()
    both = EmpiricalMarginal(imp, sites=["a", "b"])
    assert both.event_shape == (2,) and both.sample((3,)).shape == (3, 2)
    values = torch.stack(
        [torch.stack([t.nodes[n]["value"] for n in "ab"]) for t in imp.exec_traces]
    )
    w = imp.get_normalized_weights()
    assert torch.allclose(both.mean, (w[:, None] * values).sum(0), atol=1e-6)
    with pytest.raises(ValueError, match="'c'"):
        EmpiricalMarginal(imp, sites="c")


def test_vectorized_weights_as_pyro():
    for use_plate_data in (FLIPS,):
        values = []
        for P, fn in (
            (ppl, vectorized_importance_weights),
            (pyro, pyro.infer.importance.vectorized_importance_weights),
        ):
            model, guide = coin(P)
            P.set_rng_seed(0)
            log_w, _, _ = fn(
                model, guide, use_plate_data, num_samples=100, max_plate_nesting=1
            )
            P.set_rng_seed(0)
            one, _, _ = fn(
                model, guide, use_plate_data, num_samples=1, max_plate_nesting=1
            )
            values.append((log_w, one))
        (ours, ours_one), (theirs, theirs_one) = values
        assert ours.shape == (100,) and ours_one.shape == ()
        assert torch.allclose(ours, theirs, atol=1e-5) and torch.allclose(
            ours_one, theirs_one
        )


# --- closed forms -------------------------------------------------------------------------------


@pytest.mark.parametrize("use_guide", [False, True])
def test_log_evidence_of_the_coin(use_guide):
    model, guide = coin(ppl)
    ppl.set_rng_seed(0)
    imp = Importance(model, guide if use_guide else None, num_samples=1000).run(FLIPS)
    estimate, exact = float(imp.get_log_normalizer()), COIN.log_evidence(FLIPS)
    se = stderr_of_log_mean(torch.stack(imp.log_weights))
    assert abs(estimate - exact) < 5 * se


def test_log_evidence_of_the_normal_mean_vectorized():
    post = NORMAL.posterior(READINGS)
    model, guide = normal_mean(ppl, float(post.loc) + 0.3, 1.5 * float(post.scale))
    ppl.set_rng_seed(0)
    log_w, _, _ = vectorized_importance_weights(
        model, guide, READINGS, num_samples=20000, max_plate_nesting=1
    )
    estimate = float(log_w.logsumexp(0) - math.log(len(log_w)))
    assert abs(estimate - NORMAL.log_evidence(READINGS)) < 5 * stderr_of_log_mean(log_w)


def test_exact_posterior_as_proposal_gives_equal_weights():
    post = NORMAL.posterior(READINGS)
    model, guide = normal_mean(ppl, float(post.loc), float(post.scale))
    ppl.set_rng_seed(0)
    imp = Importance(model, guide, num_samples=50).run(READINGS)
    log_w = torch.stack(imp.log_weights)
    assert torch.allclose(log_w, torch.tensor(NORMAL.log_evidence(READINGS)), atol=1e-4)
    assert abs(float(imp.get_ESS()) - 50) < 1e-2


@pytest.mark.parametrize("shift", [0.5, 1.0])
def test_ess_of_a_shifted_proposal(shift):
    # proposal N(mu + shift * s, s) for the posterior N(mu, s): E[w^2] / E[w]^2 = exp(shift^2),
    # so ESS / N -> exp(-shift^2)
    post = NORMAL.posterior(READINGS)
    loc, scale = float(post.loc), float(post.scale)
    model, guide = normal_mean(ppl, loc + shift * scale, scale)
    ppl.set_rng_seed(0)
    log_w, _, _ = vectorized_importance_weights(
        model, guide, READINGS, num_samples=40000, max_plate_nesting=1
    )
    ess = float(torch.exp(2 * log_w.logsumexp(0) - (2 * log_w).logsumexp(0)))
    # N / ESS is a mean of w^2 / E[w]^2, of relative variance (E[w^4] / E[w^2]^2 - 1) / N
    # = (exp(4 shift^2) - 1) / N
    relative_se = math.sqrt((math.exp(4 * shift**2) - 1) / 40000)
    assert abs(ess / 40000 / math.exp(-(shift**2)) - 1) < 5 * relative_se


def test_exponentiated_estimate_is_unbiased_and_its_log_biased_low():
    # 2000 estimates from two prior draws each: exp(log Z_hat) averages to p(x), log Z_hat
    # lies below log p(x)
    model, _ = coin(ppl)
    prior = ppl.handlers.block(model, hide_types=["observe"])
    ppl.set_rng_seed(0)
    log_w, _, _ = vectorized_importance_weights(
        model, prior, FLIPS, num_samples=4000, max_plate_nesting=1
    )
    estimates = (log_w.reshape(2000, 2).logsumexp(-1) - math.log(2)).double()
    exact = COIN.log_evidence(FLIPS)
    ratio = (estimates - exact).exp()  # unbiased for 1
    assert abs(float(ratio.mean()) - 1) < 5 * float(ratio.std()) / math.sqrt(2000)
    gap = exact - estimates
    assert float(gap.mean()) > 5 * float(gap.std()) / math.sqrt(2000)


# --- vectorized against sequential --------------------------------------------------------------


def test_vectorized_weights_are_the_sequential_weights_of_the_same_draws():
    model, guide = normal_mean(ppl, 1.0, 0.5)
    ppl.set_rng_seed(0)
    log_w, _, guide_trace = vectorized_importance_weights(
        model, guide, READINGS, num_samples=20, max_plate_nesting=1
    )
    z = guide_trace.nodes["z"]["value"].reshape(-1)
    assert z.shape == (20,)
    for k in range(20):
        # the weight of the draw z_k alone, from one run of each program
        g = trace(fix_latents(guide, data={"z": z[k]})).get_trace(READINGS)
        m = trace(replay(model, trace=g)).get_trace(READINGS)
        assert torch.allclose(log_w[k], m.log_prob_sum() - g.log_prob_sum(), atol=1e-4)
    normalized, _, _ = vectorized_importance_weights(
        model, guide, READINGS, num_samples=20, max_plate_nesting=1, normalized=True
    )
    assert torch.allclose(normalized.logsumexp(0), torch.tensor(0.0), atol=1e-6)


def test_vectorized_needs_max_plate_nesting():
    model, guide = coin(ppl)
    with pytest.raises(ValueError, match="max_plate_nesting"):
        vectorized_importance_weights(model, guide, FLIPS, num_samples=10)


# --- errors and bookkeeping ---------------------------------------------------------------------


def test_guide_missing_a_latent_site_names_it():
    def model():
        a = ppl.sample("a", dist.Normal(0.0, 1.0))
        b = ppl.sample("b", dist.Normal(a, 1.0))
        ppl.sample("y", dist.Normal(b, 1.0), obs=torch.tensor(0.0))

    def guide():
        ppl.sample("a", dist.Normal(0.0, 1.0))

    imp = Importance(model, guide, num_samples=5)
    with pytest.raises(ValueError, match="model site 'b' is latent"):
        imp.run()
    assert imp.log_weights == [] and imp.exec_traces == []


def test_all_zero_weights_raise_naming_the_cause():
    def model(x):
        z = ppl.sample("z", dist.Uniform(0.0, 1.0))
        ppl.sample("x", dist.Uniform(0.0, z), obs=x)

    def guide(x):  # proposes z below the observation: the likelihood is zero
        ppl.sample("z", dist.Uniform(0.0, 0.5))

    with ppl.validation_enabled(False):
        imp = Importance(model, guide, num_samples=20).run(torch.tensor(0.7))
    assert imp.get_log_normalizer() == -math.inf  # as Pyro
    for call in (imp.get_normalized_weights, imp.get_ESS, imp):
        with pytest.raises(ValueError, match="all 20 importance weights are zero.*'x'"):
            call()


def test_nan_weight_names_the_site_and_leaves_results():
    def model(x):
        z = ppl.sample("z", dist.Normal(0.0, 1.0))
        ppl.sample("x", dist.Normal(z, 1.0), obs=x)

    imp = Importance(model, num_samples=5).run(torch.tensor(0.0))
    before = list(imp.log_weights)
    with (
        ppl.validation_enabled(False),
        pytest.raises(ValueError, match="model site 'x'"),
    ):
        imp.run(torch.tensor(math.nan))
    assert imp.log_weights == before


def test_no_run_and_bad_num_samples():
    model, guide = coin(ppl)
    imp = Importance(model, guide, num_samples=3)
    with pytest.raises(RuntimeError, match="run"):
        imp.get_log_normalizer()
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="num_samples"):
            Importance(model, guide, num_samples=bad)
    with pytest.warns(UserWarning, match="defaulting to 10"):
        assert Importance(model, guide).num_samples == 10


def test_run_is_hidden_from_outer_handlers_and_records_no_graph():
    def guide(flips):
        a = ppl.param("a", torch.tensor(8.0), constraint=dist.constraints.positive)
        ppl.sample("z", dist.Beta(a, 5.0))

    model, _ = coin(ppl)
    with trace() as outer:
        imp = Importance(model, guide, num_samples=4).run(FLIPS)
    assert len(outer.trace.nodes) == 0
    assert not any(w.requires_grad for w in imp.log_weights)
    assert not imp.exec_traces[0].nodes["z"]["value"].requires_grad


def test_marginal_needs_a_run():
    model, guide = coin(ppl)
    with pytest.raises(RuntimeError, match="run"):
        EmpiricalMarginal(Importance(model, guide, num_samples=3), sites="z")
