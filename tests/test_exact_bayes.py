"""Chapter 2's exact-inference oracles (ppl.exact): grid posteriors and conjugate closed forms.

Each oracle is checked against an independent computation: hand-computed values, exact rational
arithmetic, the chain rule of sequential predictions, enumeration of every possible data set, torch's
MultivariateNormal, and each other (a grid posterior against a closed form, within a tolerance set
by the grid spacing).
"""

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ppl.exact import BetaBernoulli, GridPosterior, NormalNormal, grid_posterior

F64 = torch.float64

flips_st = st.lists(st.integers(0, 1), min_size=0, max_size=40)
concentration_st = st.floats(0.1, 20.0, allow_nan=False, allow_infinity=False)
smooth_concentration_st = st.floats(2.0, 10.0, allow_nan=False, allow_infinity=False)


def tensor(values, dtype=F64):
    return torch.tensor(values, dtype=dtype)


def chain_log_evidence_beta(alpha: float, beta: float, flips: list[int]) -> float:
    """log p(x) as the sum of log one-step predictives (the chain rule), counting as we go."""
    total, heads, n = 0.0, 0, 0
    for flip in flips:
        p_head = (alpha + heads) / (alpha + beta + n)
        total += math.log(p_head if flip == 1 else 1 - p_head)
        heads += flip
        n += 1
    return total


def chain_log_evidence_normal(x: list[float], mu0: float, s0: float, s: float) -> float:
    """log p(x) as the sum of one-step Normal predictive log densities, updating as we go."""
    total, loc, var = 0.0, mu0, s0**2
    for xi in x:
        pred_var = var + s**2
        total += -0.5 * (math.log(2 * math.pi * pred_var) + (xi - loc) ** 2 / pred_var)
        precision = 1 / var + 1 / s**2
        loc = (loc / var + xi / s**2) / precision
        var = 1 / precision
    return total


# --- BetaBernoulli ------------------------------------------------------------------------------


def test_beta_bernoulli_posterior_hand_values():
    post = BetaBernoulli(2.0, 2.0).posterior(torch.tensor([1, 1, 0]))
    assert (float(post.concentration1), float(post.concentration0)) == (4.0, 3.0)
    post = BetaBernoulli(1, 1).posterior(tensor([1.0] * 7 + [0.0] * 3))
    assert (float(post.concentration1), float(post.concentration0)) == (8.0, 4.0)
    assert float(post.mean) == pytest.approx(8 / 12, abs=1e-15)


def test_beta_bernoulli_no_data_is_the_prior():
    coin = BetaBernoulli(3.0, 5.0)
    post = coin.posterior(torch.tensor([]))
    assert (float(post.concentration1), float(post.concentration0)) == (3.0, 5.0)
    assert coin.log_evidence(torch.tensor([])) == 0.0
    assert coin.predictive(torch.tensor([])) == pytest.approx(3 / 8, abs=1e-15)
    prior = coin.prior()
    assert isinstance(prior, torch.distributions.Beta)
    assert (float(prior.concentration1), float(prior.concentration0)) == (3.0, 5.0)


def test_beta_bernoulli_log_evidence_hand_value():
    # B(4, 3) / B(2, 2) = (1/60) / (1/6) = 1/10; also 1/2 * 3/5 * 1/3 by the chain rule.
    got = BetaBernoulli(2.0, 2.0).log_evidence(torch.tensor([1, 1, 0]))
    assert got == pytest.approx(math.log(0.1), abs=1e-14)


@pytest.mark.parametrize("alpha,beta", [(1, 1), (2, 3), (5, 1), (4, 7)])
@pytest.mark.parametrize(
    "flips", [[1], [0, 0, 1], [1, 1, 0, 1, 0, 1, 1], [0] * 9 + [1] * 4]
)
def test_beta_bernoulli_evidence_exact_rational(alpha, beta, flips):
    """For whole-number concentrations the evidence is a rational number. Compute it exactly as
    the integral of z^(alpha+h-1) (1-z)^(beta+t-1) / B(alpha, beta), expanding (1-z)^k by the
    binomial theorem: no Gamma function involved."""

    def integral(m: int, k: int) -> Fraction:  # int_0^1 z^m (1 - z)^k dz
        return sum(
            (Fraction((-1) ** j * math.comb(k, j), m + j + 1) for j in range(k + 1)),
            Fraction(0),
        )

    h, t = sum(flips), len(flips) - sum(flips)
    exact = integral(alpha - 1 + h, beta - 1 + t) / integral(alpha - 1, beta - 1)
    got = BetaBernoulli(alpha, beta).log_evidence(torch.tensor(flips))
    assert got == pytest.approx(math.log(exact), abs=1e-12)


@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, 2.5), (3.0, 7.0)])
def test_beta_bernoulli_evidence_sums_to_one_over_all_data_sets(alpha, beta):
    """The evidence is a distribution over data: summed over all 2^8 sequences it is 1."""
    coin = BetaBernoulli(alpha, beta)
    total = sum(
        math.exp(coin.log_evidence(torch.tensor(seq)))
        for seq in itertools.product([0, 1], repeat=8)
    )
    assert total == pytest.approx(1.0, abs=1e-12)


@settings(deadline=None, max_examples=30)
@given(alpha=concentration_st, beta=concentration_st, flips=flips_st)
def test_beta_bernoulli_log_evidence_is_chain_of_predictives(alpha, beta, flips):
    got = BetaBernoulli(alpha, beta).log_evidence(torch.tensor(flips, dtype=torch.long))
    assert got == pytest.approx(
        chain_log_evidence_beta(alpha, beta, flips), rel=1e-10, abs=1e-10
    )


@settings(deadline=None, max_examples=30)
@given(alpha=concentration_st, beta=concentration_st, flips=flips_st)
def test_beta_bernoulli_predictive(alpha, beta, flips):
    coin = BetaBernoulli(alpha, beta)
    x = tensor(flips)
    p = coin.predictive(x)
    h = sum(flips)
    assert p == pytest.approx((alpha + h) / (alpha + beta + len(flips)), rel=1e-12)
    assert p == pytest.approx(float(coin.posterior(x).mean), rel=1e-12)
    # p(next = 1 | x) = p(x, 1) / p(x): a ratio of evidences.
    ratio = math.exp(coin.log_evidence(tensor(flips + [1])) - coin.log_evidence(x))
    assert p == pytest.approx(ratio, rel=1e-9)


def test_beta_bernoulli_rule_of_succession():
    # Uniform prior, three heads in three flips: (3 + 1) / (3 + 2).
    assert BetaBernoulli(1, 1).predictive(torch.tensor([1, 1, 1])) == pytest.approx(
        0.8, abs=1e-15
    )


@settings(deadline=None, max_examples=30)
@given(
    alpha=concentration_st,
    beta=concentration_st,
    flips=flips_st,
    cut=st.integers(0, 40),
)
def test_beta_bernoulli_sequential_equals_batch(alpha, beta, flips, cut):
    cut = min(cut, len(flips))
    x = tensor(flips)
    coin = BetaBernoulli(alpha, beta)
    stepwise = coin.update(x[:cut]).update(x[cut:])
    post = coin.posterior(x)
    assert stepwise.alpha == pytest.approx(float(post.concentration1), rel=1e-12)
    assert stepwise.beta == pytest.approx(float(post.concentration0), rel=1e-12)
    # The evidence factorises the same way: p(x) = p(x[:cut]) p(x[cut:] | x[:cut]).
    split = coin.log_evidence(x[:cut]) + coin.update(x[:cut]).log_evidence(x[cut:])
    assert split == pytest.approx(coin.log_evidence(x), rel=1e-10, abs=1e-10)


def test_beta_bernoulli_dtypes_follow_the_data():
    coin = BetaBernoulli(2.0, 2.0)
    assert coin.posterior(tensor([1.0, 0.0])).concentration1.dtype == F64
    assert (
        coin.posterior(torch.tensor([1, 0])).concentration1.dtype
        == torch.get_default_dtype()
    )
    assert (
        coin.posterior(torch.tensor([True, False])).concentration1.dtype
        == torch.get_default_dtype()
    )
    # a list is accepted too
    assert coin.posterior([1, 0, 1]).concentration1.item() == 4.0


# --- NormalNormal -------------------------------------------------------------------------------


def test_normal_normal_posterior_hand_values():
    post = NormalNormal(0.0, 1.0, 1.0).posterior(tensor([2.0]))
    assert float(post.loc) == pytest.approx(1.0, abs=1e-15)
    assert float(post.scale) == pytest.approx(math.sqrt(0.5), abs=1e-15)
    # prior N(1, 2^2), noise 1, readings 3, 5, 4: precision 1/4 + 3 = 13/4; mean (1/4 + 12) * 4/13.
    post = NormalNormal(1.0, 2.0, 1.0).posterior(tensor([3.0, 5.0, 4.0]))
    assert float(post.loc) == pytest.approx((0.25 + 12.0) * 4 / 13, abs=1e-14)
    assert float(post.scale) == pytest.approx(math.sqrt(4 / 13), abs=1e-14)
    prior = NormalNormal(1.0, 2.0, 1.0).prior()
    assert (float(prior.loc), float(prior.scale)) == (1.0, 2.0)


def test_normal_normal_no_data():
    model = NormalNormal(1.5, 2.0, 0.5)
    assert model.log_evidence(tensor([])) == 0.0
    pred = model.predictive(tensor([]))
    assert float(pred.loc) == 1.5
    assert float(pred.scale) == pytest.approx(math.sqrt(4.25), abs=1e-14)


normal_data_st = st.lists(
    st.floats(-20.0, 20.0, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=25,
)
location_st = st.floats(-10.0, 10.0, allow_nan=False, allow_infinity=False)
scale_st = st.floats(0.05, 10.0, allow_nan=False, allow_infinity=False)


@settings(deadline=None, max_examples=30)
@given(x=normal_data_st, mu0=location_st, s0=scale_st, s=scale_st)
def test_normal_normal_log_evidence_is_chain_of_predictives(x, mu0, s0, s):
    got = NormalNormal(mu0, s0, s).log_evidence(tensor(x))
    assert got == pytest.approx(
        chain_log_evidence_normal(x, mu0, s0, s), rel=1e-9, abs=1e-9
    )


@settings(deadline=None, max_examples=30)
@given(x=normal_data_st, mu0=location_st, s0=scale_st, s=scale_st)
def test_normal_normal_log_evidence_matches_multivariate_normal(x, mu0, s0, s):
    n = len(x)
    cov = s**2 * torch.eye(n, dtype=F64) + s0**2 * torch.ones(n, n, dtype=F64)
    mvn = torch.distributions.MultivariateNormal(
        torch.full((n,), mu0, dtype=F64), covariance_matrix=cov
    )
    got = NormalNormal(mu0, s0, s).log_evidence(tensor(x))
    assert got == pytest.approx(float(mvn.log_prob(tensor(x))), rel=1e-8, abs=1e-8)


@settings(deadline=None, max_examples=30)
@given(
    x=normal_data_st,
    mu0=location_st,
    s0=scale_st,
    s=scale_st,
    x_new=st.floats(-20.0, 20.0),
)
def test_normal_normal_predictive(x, mu0, s0, s, x_new):
    model = NormalNormal(mu0, s0, s)
    pred, post = model.predictive(tensor(x)), model.posterior(tensor(x))
    assert float(pred.loc) == pytest.approx(float(post.loc), rel=1e-12, abs=1e-12)
    assert float(pred.scale) ** 2 == pytest.approx(
        float(post.scale) ** 2 + s**2, rel=1e-12
    )
    # p(x_new | x) = p(x, x_new) / p(x): a ratio of evidences.
    ratio = model.log_evidence(tensor(x + [x_new])) - model.log_evidence(tensor(x))
    assert float(pred.log_prob(tensor(x_new))) == pytest.approx(
        ratio, rel=1e-8, abs=1e-8
    )


@settings(deadline=None, max_examples=30)
@given(
    x=normal_data_st, mu0=location_st, s0=scale_st, s=scale_st, cut=st.integers(0, 25)
)
def test_normal_normal_sequential_equals_batch(x, mu0, s0, s, cut):
    cut = min(cut, len(x))
    data = tensor(x)
    model = NormalNormal(mu0, s0, s)
    stepwise = model.update(data[:cut]).update(data[cut:])
    post = model.posterior(data)
    assert stepwise.prior_loc == pytest.approx(float(post.loc), rel=1e-9, abs=1e-9)
    assert stepwise.prior_scale == pytest.approx(float(post.scale), rel=1e-9)
    assert stepwise.obs_scale == s


def test_normal_normal_dtypes_follow_the_data():
    model = NormalNormal(0.0, 1.0, 1.0)
    assert model.posterior(tensor([1.0])).loc.dtype == F64
    assert model.predictive(tensor([1.0])).scale.dtype == F64
    assert (
        model.posterior(torch.tensor([1.0], dtype=torch.float32)).loc.dtype
        == torch.float32
    )
    assert model.posterior(torch.tensor([1, 2])).loc.dtype == torch.get_default_dtype()


# --- grid_posterior against the closed forms -----------------------------------------------------


def beta_grid(
    alpha: float, beta: float, heads: int, tails: int, points: int
) -> GridPosterior:
    prior = torch.distributions.Beta(tensor(alpha), tensor(beta))
    return grid_posterior(
        prior.log_prob,
        lambda z: torch.xlogy(heads, z) + torch.xlogy(tails, 1 - z),
        torch.linspace(0, 1, points, dtype=F64),
    )


@settings(deadline=None, max_examples=30)
@given(
    alpha=smooth_concentration_st,
    beta=smooth_concentration_st,
    heads=st.integers(0, 30),
    tails=st.integers(0, 30),
)
def test_grid_matches_beta_bernoulli(alpha, beta, heads, tails):
    """With concentrations >= 2 the integrand is smooth on [0, 1] and the trapezoid rule's error is
    O(spacing^2): with 2000 intervals, spacing^2 = 2.5e-7; the constant (the integrand's curvature)
    stays below 100 for these densities."""
    grid = beta_grid(alpha, beta, heads, tails, 2001)
    spacing = 1 / 2000
    tol = 100 * spacing**2
    x = tensor([1.0] * heads + [0.0] * tails)
    oracle = BetaBernoulli(alpha, beta)
    post = oracle.posterior(x)
    assert grid.mean() == pytest.approx(float(post.mean), abs=tol)
    assert grid.var() == pytest.approx(float(post.variance), abs=tol)
    assert grid.log_evidence == pytest.approx(oracle.log_evidence(x), abs=tol)
    assert float(torch.trapezoid(grid.density, grid.grid)) == pytest.approx(
        1.0, abs=1e-12
    )


def test_grid_error_shrinks_like_spacing_squared():
    """Halving the spacing divides the trapezoid rule's error by about four. (The integrand
    z^2 (1 - z) has different slopes at 0 and 1, so the spacing^2 term of the error does not cancel.)"""
    exact = BetaBernoulli(1.0, 1.0).log_evidence(tensor([1.0, 1.0, 0.0]))
    errors = [
        abs(beta_grid(1.0, 1.0, 2, 1, points).log_evidence - exact)
        for points in (51, 101, 201)
    ]
    for coarse, fine in zip(errors, errors[1:]):
        assert 3.5 < coarse / fine < 4.5


def test_grid_on_an_uneven_grid():
    """Trapezoid weights on a non-uniform grid: points crowded near 0."""
    grid_z = torch.linspace(0, 1, 3001, dtype=F64) ** 2
    prior = torch.distributions.Beta(tensor(2.0), tensor(3.0))
    post = grid_posterior(
        prior.log_prob, lambda z: torch.xlogy(4, z) + torch.xlogy(6, 1 - z), grid_z
    )
    x = tensor([1.0] * 4 + [0.0] * 6)
    oracle = BetaBernoulli(2.0, 3.0)
    assert post.log_evidence == pytest.approx(oracle.log_evidence(x), abs=1e-5)
    assert post.mean() == pytest.approx(float(oracle.posterior(x).mean), abs=1e-5)


@settings(deadline=None, max_examples=30)
@given(
    x=st.lists(st.floats(-5.0, 5.0, allow_nan=False), min_size=0, max_size=20),
    mu0=st.floats(-3.0, 3.0),
    s0=st.floats(0.3, 3.0),
    s=st.floats(0.3, 3.0),
)
def test_grid_matches_normal_normal(x, mu0, s0, s):
    """Grid over the posterior mean +- 12 posterior sds with 2001 points: spacing = 24 sd / 2000.
    The density is smooth and negligible at the ends, so the error is far below spacing^2."""
    model = NormalNormal(mu0, s0, s)
    data = tensor(x)
    post = model.posterior(data)
    loc, sd = float(post.loc), float(post.scale)
    grid_z = torch.linspace(loc - 12 * sd, loc + 12 * sd, 2001, dtype=F64)
    prior = torch.distributions.Normal(tensor(mu0), tensor(s0))
    grid = grid_posterior(
        prior.log_prob,
        lambda z: torch.distributions.Normal(z[:, None], s).log_prob(data).sum(-1),
        grid_z,
    )
    spacing = 24 * sd / 2000
    assert grid.mean() == pytest.approx(loc, abs=spacing**2)
    assert grid.var() == pytest.approx(sd**2, rel=spacing**2 / sd**2)
    assert grid.log_evidence == pytest.approx(
        model.log_evidence(data), abs=spacing**2 / sd**2
    )


# --- GridPosterior's cdf and quantiles ----------------------------------------------------------


def test_cdf_and_quantiles_against_beta_2_2():
    """Beta(2, 2) has cdf 3z^2 - 2z^3: median 0.5, and cdf(0.25) = 0.15625."""
    post = beta_grid(2.0, 2.0, 0, 0, 2001)
    cdf = post.cdf()
    assert cdf.shape == post.grid.shape
    assert float(cdf[0]) == 0.0 and float(cdf[-1]) == 1.0
    assert bool((cdf.diff() >= 0).all())
    assert torch.allclose(cdf, 3 * post.grid**2 - 2 * post.grid**3, atol=1e-6)
    assert post.quantile(0.5) == pytest.approx(0.5, abs=1e-6)
    assert post.quantile(0.15625) == pytest.approx(0.25, abs=1e-6)
    both = post.quantile(tensor([0.15625, 0.84375]))
    assert isinstance(both, torch.Tensor) and both.shape == (2,)
    assert torch.allclose(both, tensor([0.25, 0.75]), atol=1e-6)
    assert post.quantile(0.0) == 0.0 and post.quantile(1.0) == 1.0


@settings(deadline=None, max_examples=30)
@given(q=st.floats(0.001, 0.999))
def test_quantile_inverts_cdf(q):
    post = beta_grid(3.0, 5.0, 4, 2, 1001)
    z = post.quantile(q)
    # Interpolate the cdf at z and compare with q.
    cdf_at_z = float(np.interp(z, post.grid.numpy(), post.cdf().numpy()))
    assert cdf_at_z == pytest.approx(q, abs=1e-9)


def test_repr_is_short():
    text = repr(beta_grid(2.0, 2.0, 1, 1, 11))
    assert text.startswith("GridPosterior(11 points on [0, 1], log_evidence=")


# --- invalid input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "alpha,beta,name",
    [
        (0.0, 1.0, "alpha"),
        (-1.0, 1.0, "alpha"),
        (1.0, 0.0, "beta"),
        (float("nan"), 1.0, "alpha"),
        (1.0, float("inf"), "beta"),
        ("two", 1.0, "alpha"),
    ],
)
def test_beta_bernoulli_rejects_bad_concentrations(alpha, beta, name):
    with pytest.raises(ValueError, match=f"{name} must be a positive number"):
        BetaBernoulli(alpha, beta)


@pytest.mark.parametrize("x", [[0, 1, 2], [0.5], [1.0, float("nan")], [-1]])
def test_beta_bernoulli_rejects_non_binary_data(x):
    coin = BetaBernoulli(1.0, 1.0)
    for method in (coin.posterior, coin.log_evidence, coin.predictive, coin.update):
        with pytest.raises(ValueError, match="only 0s and 1s"):
            method(torch.tensor(x))


def test_data_must_be_one_dimensional():
    with pytest.raises(ValueError, match="1-D tensor"):
        BetaBernoulli(1.0, 1.0).posterior(torch.ones(2, 3))
    with pytest.raises(ValueError, match="1-D tensor"):
        NormalNormal(0.0, 1.0, 1.0).log_evidence(torch.tensor(1.0))


@pytest.mark.parametrize(
    "args,message",
    [
        ((0.0, 0.0, 1.0), "prior_scale must be a positive number"),
        ((0.0, 1.0, -2.0), "obs_scale must be a positive number"),
        ((float("nan"), 1.0, 1.0), "prior_loc must be a finite number"),
        ((None, 1.0, 1.0), "prior_loc must be a finite number"),
    ],
)
def test_normal_normal_rejects_bad_parameters(args, message):
    with pytest.raises(ValueError, match=message):
        NormalNormal(*args)


def test_normal_normal_rejects_non_finite_data():
    with pytest.raises(ValueError, match="finite"):
        NormalNormal(0.0, 1.0, 1.0).posterior(tensor([1.0, float("inf")]))


def test_grid_posterior_rejects_bad_grids_and_densities():
    flat = lambda z: torch.zeros_like(z)
    with pytest.raises(ValueError, match="strictly increasing"):
        grid_posterior(flat, flat, tensor([0.0, 0.5, 0.5, 1.0]))
    with pytest.raises(ValueError, match="1-D tensor of at least 2 points"):
        grid_posterior(flat, flat, tensor([0.5]))
    with pytest.raises(ValueError, match="1-D tensor of at least 2 points"):
        grid_posterior(flat, flat, torch.zeros(3, 3, dtype=F64))
    # Beta(0.5, 0.5) is infinite at 0
    with pytest.raises(ValueError, match="finite or -inf"):
        beta_half = torch.distributions.Beta(tensor(0.5), tensor(0.5))
        grid_posterior(beta_half.log_prob, flat, torch.linspace(0, 1, 11, dtype=F64))
    with pytest.raises(ValueError, match="zero at every grid point"):
        grid_posterior(
            flat,
            lambda z: torch.full_like(z, float("-inf")),
            torch.linspace(0, 1, 11, dtype=F64),
        )
    with pytest.raises(ValueError, match="must have the grid's shape"):
        grid_posterior(
            flat,
            lambda z: torch.zeros(len(z), 2, dtype=F64),
            torch.linspace(0, 1, 11, dtype=F64),
        )


@pytest.mark.parametrize("q", [-0.1, 1.5, float("nan")])
def test_quantile_rejects_levels_outside_unit_interval(q):
    with pytest.raises(ValueError, match=r"quantile levels must lie in \[0, 1\]"):
        beta_grid(2.0, 2.0, 0, 0, 101).quantile(q)
