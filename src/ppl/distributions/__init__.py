"""Distributions (chapter 4): torch's classes with Pyro's conveniences.

- ``ppl.distributions.core``: ``TorchDistributionMixin`` (``.to_event``, ``.mask``,
  ``.expand_by``, calling a distribution to sample), ``TorchDistribution``,
  ``MaskedDistribution``, and every public ``torch.distributions`` class re-exported
  under its own name as a subclass with the mixin (``Normal``, ``Independent``,
  ``Dirichlet``, ...; the mapping ``WRAPPED`` lists them).
- ``ppl.distributions.delta``: ``Delta``, a point mass.
- ``ppl.distributions.constraints``: ``torch.distributions.constraints``, under Pyro's
  name.
- ``enable_validation``, ``is_validation_enabled`` and ``validation_enabled``: Pyro's
  ``pyro.distributions`` names for ppl's one validation switch, ``ppl.runtime``'s
  (``ppl.enable_validation``). It covers torch's checks of distribution arguments and
  values, which Pyro's ``pyro.distributions.enable_validation`` turns on or off, and
  ppl's other checks as well.

Use it as Pyro's ``pyro.distributions``::

    import ppl.distributions as dist
    dist.Normal(0.0, 1.0).expand([3]).to_event(1)
"""

from torch.distributions import (
    biject_to,
    kl_divergence,
    register_kl,
    transform_to,
    transforms,
)

from ppl.distributions import constraints
from ppl.distributions.core import (
    WRAPPED,
    Distribution,
    MaskedDistribution,
    TorchDistribution,
    TorchDistributionMixin,
)
from ppl.distributions.delta import Delta
from ppl.runtime import enable_validation, is_validation_enabled, validation_enabled

# Every torch distribution class, wrapped, under its own name, each with a line for the API
# reference. tests/test_distributions.py checks that this list is complete for the installed
# torch.
Bernoulli = WRAPPED["Bernoulli"]
"""``torch.distributions.Bernoulli`` with Pyro's methods.

Creates a Bernoulli distribution parameterized by ``probs`` or ``logits`` (but not
both).
"""
Beta = WRAPPED["Beta"]
"""``torch.distributions.Beta`` with Pyro's methods.

Beta distribution parameterized by ``concentration1`` and ``concentration0``.
"""
Binomial = WRAPPED["Binomial"]
"""``torch.distributions.Binomial`` with Pyro's methods.

Creates a Binomial distribution parameterized by ``total_count`` and either ``probs`` or
``logits`` (but not both).
"""
Categorical = WRAPPED["Categorical"]
"""``torch.distributions.Categorical`` with Pyro's methods.

Creates a categorical distribution parameterized by either ``probs`` or ``logits`` (but
not both).
"""
Cauchy = WRAPPED["Cauchy"]
"""``torch.distributions.Cauchy`` with Pyro's methods.

Samples from a Cauchy (Lorentz) distribution.
"""
Chi2 = WRAPPED["Chi2"]
"""``torch.distributions.Chi2`` with Pyro's methods.

Creates a Chi-squared distribution parameterized by shape parameter ``df``.
"""
ContinuousBernoulli = WRAPPED["ContinuousBernoulli"]
"""``torch.distributions.ContinuousBernoulli`` with Pyro's methods.

Creates a continuous Bernoulli distribution parameterized by ``probs`` or ``logits``
(but not both).
"""
Dirichlet = WRAPPED["Dirichlet"]
"""``torch.distributions.Dirichlet`` with Pyro's methods.

Creates a Dirichlet distribution parameterized by concentration ``concentration``.
"""
Exponential = WRAPPED["Exponential"]
"""``torch.distributions.Exponential`` with Pyro's methods.

Creates a Exponential distribution parameterized by ``rate``.
"""
ExponentialFamily = WRAPPED["ExponentialFamily"]
"""``torch.distributions.ExponentialFamily`` with Pyro's methods.

ExponentialFamily is the abstract base class for probability distributions belonging to
an exponential family, whose probability mass/density function has the form is defined
below.
"""
FisherSnedecor = WRAPPED["FisherSnedecor"]
"""``torch.distributions.FisherSnedecor`` with Pyro's methods.

Creates a Fisher-Snedecor distribution parameterized by ``df1`` and ``df2``.
"""
Gamma = WRAPPED["Gamma"]
"""``torch.distributions.Gamma`` with Pyro's methods.

Creates a Gamma distribution parameterized by shape ``concentration`` and ``rate``.
"""
GeneralizedPareto = WRAPPED["GeneralizedPareto"]
"""``torch.distributions.GeneralizedPareto`` with Pyro's methods.

Creates a Generalized Pareto distribution parameterized by ``loc``, ``scale``, and
``concentration``.
"""
Geometric = WRAPPED["Geometric"]
"""``torch.distributions.Geometric`` with Pyro's methods.

Creates a Geometric distribution parameterized by ``probs``, where ``probs`` is the
probability of success of Bernoulli trials.
"""
Gumbel = WRAPPED["Gumbel"]
"""``torch.distributions.Gumbel`` with Pyro's methods.

Samples from a Gumbel Distribution.
"""
HalfCauchy = WRAPPED["HalfCauchy"]
"""``torch.distributions.HalfCauchy`` with Pyro's methods.

Creates a half-Cauchy distribution parameterized by `scale` where.
"""
HalfNormal = WRAPPED["HalfNormal"]
"""``torch.distributions.HalfNormal`` with Pyro's methods.

Creates a half-normal distribution parameterized by `scale` where.
"""
Independent = WRAPPED["Independent"]
"""``torch.distributions.Independent`` with Pyro's methods.

Reinterprets some of the batch dims of a distribution as event dims.
"""
InverseGamma = WRAPPED["InverseGamma"]
"""``torch.distributions.InverseGamma`` with Pyro's methods.

Creates an inverse gamma distribution parameterized by ``concentration`` and ``rate``
where.
"""
Kumaraswamy = WRAPPED["Kumaraswamy"]
"""``torch.distributions.Kumaraswamy`` with Pyro's methods.

Samples from a Kumaraswamy distribution.
"""
LKJCholesky = WRAPPED["LKJCholesky"]
"""``torch.distributions.LKJCholesky`` with Pyro's methods.

LKJ distribution for lower Cholesky factor of correlation matrices.
"""
Laplace = WRAPPED["Laplace"]
"""``torch.distributions.Laplace`` with Pyro's methods.

Creates a Laplace distribution parameterized by ``loc`` and ``scale``.
"""
LogNormal = WRAPPED["LogNormal"]
"""``torch.distributions.LogNormal`` with Pyro's methods.

Creates a log-normal distribution parameterized by ``loc`` and ``scale`` where.
"""
LogisticNormal = WRAPPED["LogisticNormal"]
"""``torch.distributions.LogisticNormal`` with Pyro's methods.

Creates a logistic-normal distribution parameterized by ``loc`` and ``scale`` that
define the base `Normal` distribution transformed with the `StickBreakingTransform` such
that.
"""
LowRankMultivariateNormal = WRAPPED["LowRankMultivariateNormal"]
"""``torch.distributions.LowRankMultivariateNormal`` with Pyro's methods.

Creates a multivariate normal distribution with covariance matrix having a low-rank form
parameterized by ``cov_factor`` and ``cov_diag``.
"""
MixtureSameFamily = WRAPPED["MixtureSameFamily"]
"""``torch.distributions.MixtureSameFamily`` with Pyro's methods.

The `MixtureSameFamily` distribution implements a (batch of) mixture distribution where
all components are from different parameterizations of the same distribution type.
"""
Multinomial = WRAPPED["Multinomial"]
"""``torch.distributions.Multinomial`` with Pyro's methods.

Creates a Multinomial distribution parameterized by ``total_count`` and either ``probs``
or ``logits`` (but not both).
"""
MultivariateNormal = WRAPPED["MultivariateNormal"]
"""``torch.distributions.MultivariateNormal`` with Pyro's methods.

Creates a multivariate normal (also called Gaussian) distribution parameterized by a
mean vector and a covariance matrix.
"""
NegativeBinomial = WRAPPED["NegativeBinomial"]
"""``torch.distributions.NegativeBinomial`` with Pyro's methods.

Creates a Negative Binomial distribution, i.e.
"""
Normal = WRAPPED["Normal"]
"""``torch.distributions.Normal`` with Pyro's methods.

Creates a normal (also called Gaussian) distribution parameterized by ``loc`` and
``scale``.
"""
OneHotCategorical = WRAPPED["OneHotCategorical"]
"""``torch.distributions.OneHotCategorical`` with Pyro's methods.

Creates a one-hot categorical distribution parameterized by ``probs`` or ``logits``.
"""
OneHotCategoricalStraightThrough = WRAPPED["OneHotCategoricalStraightThrough"]
"""``torch.distributions.OneHotCategoricalStraightThrough`` with Pyro's methods.

Creates a reparameterizable ``OneHotCategorical`` distribution based on the straight-
through gradient estimator from [1].
"""
Pareto = WRAPPED["Pareto"]
"""``torch.distributions.Pareto`` with Pyro's methods.

Samples from a Pareto Type 1 distribution.
"""
Poisson = WRAPPED["Poisson"]
"""``torch.distributions.Poisson`` with Pyro's methods.

Creates a Poisson distribution parameterized by ``rate``, the rate parameter.
"""
RelaxedBernoulli = WRAPPED["RelaxedBernoulli"]
"""``torch.distributions.RelaxedBernoulli`` with Pyro's methods.

Creates a RelaxedBernoulli distribution, parametrized by ``temperature``, and either
``probs`` or ``logits`` (but not both).
"""
RelaxedOneHotCategorical = WRAPPED["RelaxedOneHotCategorical"]
"""``torch.distributions.RelaxedOneHotCategorical`` with Pyro's methods.

Creates a RelaxedOneHotCategorical distribution parametrized by ``temperature``, and
either ``probs`` or ``logits``.
"""
StudentT = WRAPPED["StudentT"]
"""``torch.distributions.StudentT`` with Pyro's methods.

Creates a Student's t-distribution parameterized by degree of freedom ``df``, mean
``loc`` and scale ``scale``.
"""
TransformedDistribution = WRAPPED["TransformedDistribution"]
"""``torch.distributions.TransformedDistribution`` with Pyro's methods.

Extension of the Distribution class, which applies a sequence of Transforms to a base
distribution.
"""
Uniform = WRAPPED["Uniform"]
"""``torch.distributions.Uniform`` with Pyro's methods.

Generates uniformly distributed random samples from the half-open interval ``[low,
high)``.
"""
VonMises = WRAPPED["VonMises"]
"""``torch.distributions.VonMises`` with Pyro's methods.

A circular von Mises distribution.
"""
Weibull = WRAPPED["Weibull"]
"""``torch.distributions.Weibull`` with Pyro's methods.

Samples from a two-parameter Weibull distribution.
"""
Wishart = WRAPPED["Wishart"]
r"""``torch.distributions.Wishart`` with Pyro's methods.

Creates a Wishart distribution parameterized by a symmetric positive definite matrix
``\Sigma``, or its Cholesky decomposition ``\mathbf{\Sigma} =
\mathbf{L}\mathbf{L}^\top``.
"""

__all__ = [
    "Delta",
    "Distribution",
    "MaskedDistribution",
    "TorchDistribution",
    "TorchDistributionMixin",
    "constraints",
    "transforms",
    "kl_divergence",
    "register_kl",
    "transform_to",
    "biject_to",
    "enable_validation",
    "is_validation_enabled",
    "validation_enabled",
    "Bernoulli",
    "Beta",
    "Binomial",
    "Categorical",
    "Cauchy",
    "Chi2",
    "ContinuousBernoulli",
    "Dirichlet",
    "Exponential",
    "ExponentialFamily",
    "FisherSnedecor",
    "Gamma",
    "GeneralizedPareto",
    "Geometric",
    "Gumbel",
    "HalfCauchy",
    "HalfNormal",
    "Independent",
    "InverseGamma",
    "Kumaraswamy",
    "LKJCholesky",
    "Laplace",
    "LogNormal",
    "LogisticNormal",
    "LowRankMultivariateNormal",
    "MixtureSameFamily",
    "Multinomial",
    "MultivariateNormal",
    "NegativeBinomial",
    "Normal",
    "OneHotCategorical",
    "OneHotCategoricalStraightThrough",
    "Pareto",
    "Poisson",
    "RelaxedBernoulli",
    "RelaxedOneHotCategorical",
    "StudentT",
    "TransformedDistribution",
    "Uniform",
    "VonMises",
    "Weibull",
    "Wishart",
]
