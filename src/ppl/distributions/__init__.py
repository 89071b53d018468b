"""Distributions (chapter 4): torch's classes with Pyro's conveniences.

Hand-written: it states the subpackage's public API. The modules beside it are generated
from ``book/04_distributions.ipynb`` by ``tools/export.py``.

- ``ppl.distributions.core``: ``TorchDistributionMixin`` (``.to_event``, ``.mask``,
  ``.expand_by``, calling a distribution to sample), ``TorchDistribution``,
  ``MaskedDistribution``, and every public ``torch.distributions`` class re-exported
  under its own name as a subclass with the mixin (``Normal``, ``Independent``,
  ``Dirichlet``, ...; the mapping ``WRAPPED`` lists them).
- ``ppl.distributions.delta``: ``Delta``, a point mass.
- ``ppl.distributions.constraints``: ``torch.distributions.constraints``, under Pyro's
  name.

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

# Every torch distribution class, wrapped, under its own name. tests/test_distributions.py
# checks that this list is complete for the installed torch.
Bernoulli = WRAPPED["Bernoulli"]
Beta = WRAPPED["Beta"]
Binomial = WRAPPED["Binomial"]
Categorical = WRAPPED["Categorical"]
Cauchy = WRAPPED["Cauchy"]
Chi2 = WRAPPED["Chi2"]
ContinuousBernoulli = WRAPPED["ContinuousBernoulli"]
Dirichlet = WRAPPED["Dirichlet"]
Exponential = WRAPPED["Exponential"]
ExponentialFamily = WRAPPED["ExponentialFamily"]
FisherSnedecor = WRAPPED["FisherSnedecor"]
Gamma = WRAPPED["Gamma"]
GeneralizedPareto = WRAPPED["GeneralizedPareto"]
Geometric = WRAPPED["Geometric"]
Gumbel = WRAPPED["Gumbel"]
HalfCauchy = WRAPPED["HalfCauchy"]
HalfNormal = WRAPPED["HalfNormal"]
Independent = WRAPPED["Independent"]
InverseGamma = WRAPPED["InverseGamma"]
Kumaraswamy = WRAPPED["Kumaraswamy"]
LKJCholesky = WRAPPED["LKJCholesky"]
Laplace = WRAPPED["Laplace"]
LogNormal = WRAPPED["LogNormal"]
LogisticNormal = WRAPPED["LogisticNormal"]
LowRankMultivariateNormal = WRAPPED["LowRankMultivariateNormal"]
MixtureSameFamily = WRAPPED["MixtureSameFamily"]
Multinomial = WRAPPED["Multinomial"]
MultivariateNormal = WRAPPED["MultivariateNormal"]
NegativeBinomial = WRAPPED["NegativeBinomial"]
Normal = WRAPPED["Normal"]
OneHotCategorical = WRAPPED["OneHotCategorical"]
OneHotCategoricalStraightThrough = WRAPPED["OneHotCategoricalStraightThrough"]
Pareto = WRAPPED["Pareto"]
Poisson = WRAPPED["Poisson"]
RelaxedBernoulli = WRAPPED["RelaxedBernoulli"]
RelaxedOneHotCategorical = WRAPPED["RelaxedOneHotCategorical"]
StudentT = WRAPPED["StudentT"]
TransformedDistribution = WRAPPED["TransformedDistribution"]
Uniform = WRAPPED["Uniform"]
VonMises = WRAPPED["VonMises"]
Weibull = WRAPPED["Weibull"]
Wishart = WRAPPED["Wishart"]

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
    *sorted(WRAPPED),
]
