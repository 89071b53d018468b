"""ppl.distributions (chapter 4): wrapped torch classes, to_event/expand/mask, Delta, constraints.

The independent answers are torch itself (its own ``expand`` and ``Independent``, the same draws
under the same seed), hand-computed masks and point masses, and Pyro's ``pyro.distributions``.
"""

import math
import warnings

import pytest
import torch
import torch.distributions as D
from hypothesis import given
from hypothesis import strategies as st

import ppl.distributions as dist
import ppl.distributions.constraints as constraints_module
from ppl.distributions import constraints

# tqdm (imported by Pyro) warns when ipywidgets is missing
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import pyro.distributions as pdist

t = torch.tensor
TORCH_CLASSES = [
    getattr(D, name)
    for name in D.__all__
    if isinstance(getattr(D, name), type)
    and issubclass(getattr(D, name), D.Distribution)
    and getattr(D, name) is not D.Distribution
]
ABSTRACT = {"ExponentialFamily"}


def cases() -> dict:
    """Constructor arguments for every concrete torch distribution, each with batch shape (2,) or ()."""
    loc, scale = t([0.0, 1.0]), t([1.0, 2.0])
    probs = t([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    cov = t([[2.0, 0.3], [0.3, 1.0]])
    return {
        "Bernoulli": ([t([0.2, 0.7])], {}),
        "Beta": ([t([1.0, 2.0]), t([3.0, 0.5])], {}),
        "Binomial": ([], {"total_count": 5, "probs": t([0.2, 0.7])}),
        "Categorical": ([probs], {}),
        "Cauchy": ([loc, scale], {}),
        "Chi2": ([t([1.0, 3.0])], {}),
        "ContinuousBernoulli": ([t([0.2, 0.7])], {}),
        "Dirichlet": ([t([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5]])], {}),
        "Exponential": ([t([1.0, 3.0])], {}),
        "FisherSnedecor": ([t([2.0, 5.0]), t([3.0, 7.0])], {}),
        "Gamma": ([t([2.0, 0.5]), t([1.0, 3.0])], {}),
        "GeneralizedPareto": ([loc, scale, t([0.1, 0.3])], {}),
        "Geometric": ([t([0.2, 0.7])], {}),
        "Gumbel": ([loc, scale], {}),
        "HalfCauchy": ([scale], {}),
        "HalfNormal": ([scale], {}),
        "Independent": ([D.Normal(t([[0.0, 1.0], [2.0, 3.0]]), 1.0), 1], {}),
        "InverseGamma": ([t([2.0, 3.0]), t([1.0, 2.0])], {}),
        "Kumaraswamy": ([t([2.0, 0.5]), t([1.0, 3.0])], {}),
        "LKJCholesky": ([3, t([0.5, 2.0])], {}),
        "Laplace": ([loc, scale], {}),
        "LogNormal": ([loc, scale], {}),
        "LogisticNormal": (
            [t([[0.0, 1.0], [1.0, -1.0]]), t([[1.0, 0.5], [2.0, 1.0]])],
            {},
        ),
        "LowRankMultivariateNormal": (
            [t([[0.0, 1.0], [2.0, 3.0]]), t([[1.0], [0.5]]), t([1.0, 2.0])],
            {},
        ),
        "MixtureSameFamily": ([D.Categorical(t([0.3, 0.7])), D.Normal(loc, scale)], {}),
        "Multinomial": ([6, probs], {}),
        "MultivariateNormal": ([t([[0.0, 1.0], [2.0, 3.0]]), cov], {}),
        "NegativeBinomial": ([t([3.0, 5.0]), t([0.2, 0.7])], {}),
        "Normal": ([loc, scale], {}),
        "OneHotCategorical": ([probs], {}),
        "OneHotCategoricalStraightThrough": ([probs], {}),
        "Pareto": ([t([1.0, 2.0]), t([3.0, 4.0])], {}),
        "Poisson": ([t([1.0, 4.0])], {}),
        "RelaxedBernoulli": ([t(0.5), t([0.2, 0.7])], {}),
        "RelaxedOneHotCategorical": ([t(0.5), probs], {}),
        "StudentT": ([t([3.0, 5.0]), loc, scale], {}),
        "TransformedDistribution": (
            [D.Normal(loc, scale), [D.transforms.ExpTransform()]],
            {},
        ),
        "Uniform": ([t([0.0, 1.0]), t([1.0, 3.0])], {}),
        "VonMises": ([loc, t([1.0, 4.0])], {}),
        "Weibull": ([t([1.0, 2.0]), t([0.5, 3.0])], {}),
        "Wishart": ([t(4.0)], {"covariance_matrix": cov}),
    }


CASES = cases()


# ---------------------------------------------------------------------------------------------
# Every torch class is wrapped, and the wrapped class is torch's class


@pytest.mark.parametrize("torch_class", TORCH_CLASSES, ids=lambda c: c.__name__)
def test_every_torch_distribution_is_wrapped(torch_class):
    ours = getattr(dist, torch_class.__name__)
    assert ours is not torch_class
    assert issubclass(ours, torch_class) and issubclass(
        ours, dist.TorchDistributionMixin
    )
    assert ours.__name__ == torch_class.__name__
    assert torch_class.__name__ in dist.__all__
    # one class per name: the mapping, the module that makes them, the public module
    assert ours is dist.WRAPPED[ours.__name__] is getattr(dist.core, ours.__name__)


def test_the_cases_cover_every_concrete_class():
    assert set(CASES) == {c.__name__ for c in TORCH_CLASSES} - ABSTRACT


# torch's Wishart sampler
@pytest.mark.filterwarnings("ignore:Singular sample detected")
@pytest.mark.parametrize("name", sorted(CASES))
def test_wrapped_class_constructs_samples_and_scores_like_torch(name):
    args, kwargs = CASES[name]
    ours, theirs = (
        getattr(dist, name)(*args, **kwargs),
        getattr(D, name)(*args, **kwargs),
    )
    assert isinstance(ours, getattr(D, name))
    assert (ours.batch_shape, ours.event_shape) == (
        theirs.batch_shape,
        theirs.event_shape,
    )
    torch.manual_seed(0)
    x_ours = ours.sample((3,))
    torch.manual_seed(0)
    x_theirs = theirs.sample((3,))
    assert torch.equal(x_ours, x_theirs)
    assert torch.allclose(
        ours.log_prob(x_theirs), theirs.log_prob(x_theirs), equal_nan=True
    )


# torch's Wishart sampler
@pytest.mark.filterwarnings("ignore:Singular sample detected")
@pytest.mark.parametrize("name", sorted(CASES))
def test_expand_to_event_and_mask_keep_the_mixin(name):
    args, kwargs = CASES[name]
    d = getattr(dist, name)(*args, **kwargs)
    wide = d.expand(torch.Size([3]) + d.batch_shape)
    assert type(wide) is type(d)
    assert wide.batch_shape == (3, *d.batch_shape) and wide.event_shape == d.event_shape
    vector = wide.to_event(1)
    assert isinstance(vector, dist.Independent) and isinstance(
        vector, dist.TorchDistributionMixin
    )
    assert vector.event_shape == wide.batch_shape[-1:] + d.event_shape
    masked = wide.mask(torch.zeros(wide.batch_shape, dtype=torch.bool))
    assert isinstance(masked, dist.MaskedDistribution)
    assert torch.equal(masked.log_prob(wide.sample()), torch.zeros(wide.batch_shape))


def test_isinstance_and_the_idiom_from_the_brief():
    d = dist.Normal(0.0, 1.0).expand([3]).to_event(1)
    assert isinstance(dist.Normal(0.0, 1.0), D.Normal)
    assert d.batch_shape == () and d.event_shape == (3,)
    assert isinstance(d, dist.Independent) and isinstance(d.base_dist, dist.Normal)


def test_calling_a_distribution_samples_reparameterised_when_it_can():
    loc = t(0.5, requires_grad=True)
    assert dist.Normal(loc, 1.0)((2,)).requires_grad
    draw = dist.Bernoulli(t([0.3, 0.9]))()
    assert draw.shape == (2,) and not draw.requires_grad


def test_shape_event_dim_and_expand_by():
    d = dist.Dirichlet(torch.ones(2, 3))
    assert d.event_dim == 1 and d.shape((4,)) == (4, 2, 3)
    assert d.expand_by((5,)).batch_shape == (5, 2)


# ---------------------------------------------------------------------------------------------
# Shape algebra, against torch's own expand and Independent

small = st.integers(1, 3)


@st.composite
def expand_cases(draw):
    """A parameter batch shape, a shape it expands to, an n for to_event, and a sample shape."""
    base = tuple(draw(st.lists(small, max_size=3)))
    new = tuple(draw(st.lists(small, max_size=2))) + tuple(
        draw(small) if s == 1 else s for s in base
    )
    n = draw(st.integers(0, len(new)))
    sample_shape = tuple(draw(st.lists(small, max_size=2)))
    family = draw(st.sampled_from(["Normal", "Dirichlet", "MultivariateNormal"]))
    return family, base, new, n, sample_shape


def build(module, family: str, base: tuple):
    gen = torch.Generator().manual_seed(len(base) * 7 + sum(base))
    if family == "Normal":
        return module.Normal(
            torch.randn(base, generator=gen), torch.rand(base, generator=gen) + 0.5
        )
    if family == "Dirichlet":
        return module.Dirichlet(torch.rand(base + (3,), generator=gen) + 0.5)
    return module.MultivariateNormal(
        torch.randn(base + (2,), generator=gen), torch.eye(2) * 1.5
    )


@given(expand_cases())
def test_expand_to_event_matches_torch(case):
    family, base, new, n, sample_shape = case
    ours = build(dist, family, base).expand(new).to_event(n)
    theirs = build(D, family, base).expand(new)
    if n:
        theirs = D.Independent(theirs, n)
    assert ours.batch_shape == theirs.batch_shape == new[: len(new) - n]
    assert ours.event_shape == theirs.event_shape
    torch.manual_seed(1)
    x = ours.sample(sample_shape)
    torch.manual_seed(1)
    assert torch.equal(x, theirs.sample(sample_shape))
    assert x.shape == torch.Size(sample_shape) + ours.batch_shape + ours.event_shape
    log_prob = ours.log_prob(x)
    assert log_prob.shape == torch.Size(sample_shape) + ours.batch_shape
    assert torch.allclose(log_prob, theirs.log_prob(x))


@given(expand_cases())
def test_expand_to_event_log_prob_matches_pyro(case):
    family, base, new, n, sample_shape = case
    ours = build(dist, family, base).expand(new).to_event(n)
    theirs = build(pdist, family, base).expand(new).to_event(n)
    x = theirs.sample(sample_shape)
    assert (ours.batch_shape, ours.event_shape) == (
        theirs.batch_shape,
        theirs.event_shape,
    )
    assert torch.allclose(ours.log_prob(x), theirs.log_prob(x))


@given(st.lists(small, min_size=1, max_size=4), st.data())
def test_nested_to_event_folds_into_one_independent(batch, data):
    d = dist.Normal(torch.zeros(batch), 1.0)
    first = data.draw(st.integers(0, len(batch)))
    second = data.draw(st.integers(0, len(batch) - first))
    nested, single = d.to_event(first).to_event(second), d.to_event(first + second)
    assert (nested.batch_shape, nested.event_shape) == (
        single.batch_shape,
        single.event_shape,
    )
    if first + second:
        assert (
            nested.reinterpreted_batch_ndims == first + second and nested.base_dist is d
        )
    x = torch.randn(batch)
    expected = d.log_prob(x)
    # sum over the reinterpreted dims (an empty dim list would sum over all)
    if first + second:
        expected = expected.sum(list(range(-first - second, 0)))
    assert torch.allclose(nested.log_prob(x), expected)


def test_to_event_zero_none_and_errors():
    d = dist.Normal(torch.zeros(2, 3), 1.0)
    assert d.to_event(0) is d
    assert d.to_event().batch_shape == () and d.to_event().event_shape == (2, 3)
    with pytest.raises(ValueError, match="between 0 and 2"):
        d.to_event(3)
    with pytest.raises(ValueError, match="between 0 and 2"):
        d.to_event(-1)
    with pytest.raises(ValueError):
        d.to_event(1).to_event(2)


# ---------------------------------------------------------------------------------------------
# Masks


@st.composite
def mask_cases(draw):
    """A batch shape and a bool mask that broadcasts against it (maybe with extra leading dims)."""
    batch = tuple(draw(st.lists(small, max_size=3)))
    mask_shape = tuple(draw(st.lists(small, max_size=1))) + tuple(
        draw(st.sampled_from([1, s])) for s in batch
    )
    size = math.prod(mask_shape)
    values = draw(st.lists(st.booleans(), min_size=size, max_size=size))
    return batch, torch.tensor(values, dtype=torch.bool).reshape(mask_shape)


@given(mask_cases())
def test_mask_zeroes_masked_entries_and_keeps_the_rest(case):
    batch, mask = case
    d = dist.Normal(torch.linspace(-1, 1, math.prod(batch)).reshape(batch), 1.0)
    x = torch.randn(batch)
    masked = d.mask(mask)
    expected_batch = torch.broadcast_shapes(mask.shape, batch)
    assert masked.batch_shape == expected_batch and masked.event_shape == ()
    full = D.Normal(d.loc, d.scale).log_prob(x).expand(expected_batch)
    assert torch.equal(masked.log_prob(x), torch.where(mask, full, torch.zeros(())))


@given(mask_cases())
def test_masked_log_prob_matches_pyro(case):
    batch, mask = case
    loc = torch.linspace(-1, 1, math.prod(batch)).reshape(batch)
    x = torch.randn((2,) + torch.broadcast_shapes(mask.shape, batch))
    ours, theirs = dist.Normal(loc, 1.0).mask(mask), pdist.Normal(loc, 1.0).mask(mask)
    assert ours.batch_shape == theirs.batch_shape
    assert torch.allclose(ours.log_prob(x), theirs.log_prob(x))
    if ours.batch_shape:
        assert torch.allclose(
            ours.to_event(1).log_prob(x), theirs.to_event(1).log_prob(x)
        )


def test_mask_true_false_and_bad_masks():
    d = dist.Normal(torch.zeros(3), 1.0)
    x = t([0.0, 1.0, 2.0])
    assert torch.equal(d.mask(True).log_prob(x), d.log_prob(x))
    assert torch.equal(d.mask(False).log_prob(x), torch.zeros(3))
    assert d.mask(False).log_prob(torch.zeros(4, 3)).shape == (4, 3)
    with pytest.raises(TypeError, match="bool"):
        d.mask(torch.ones(3))
    with pytest.raises(ValueError, match="broadcast"):
        d.mask(torch.ones(2, dtype=torch.bool))


def test_mask_gives_zero_not_nan_outside_the_support():
    d = dist.Uniform(torch.zeros(2), torch.ones(2), validate_args=False)
    y = t([0.5, 2.0])
    assert torch.isinf(d.log_prob(y)[1])
    assert d.mask(t([True, False])).log_prob(y).tolist() == [0.0, 0.0]


def test_mask_does_not_change_sampling_and_expands():
    loc = t([0.0, 1.0], requires_grad=True)
    d = dist.Normal(loc, 1.0)
    masked = d.mask(t([True, False]))
    torch.manual_seed(2)
    a = masked.rsample((3,))
    torch.manual_seed(2)
    assert torch.equal(a, d.rsample((3,))) and a.requires_grad and masked.has_rsample
    wide = masked.expand([4, 2])
    assert isinstance(wide, dist.MaskedDistribution) and wide.batch_shape == (4, 2)
    assert torch.equal(wide.log_prob(torch.zeros(4, 2))[:, 1], torch.zeros(4))


# ---------------------------------------------------------------------------------------------
# Delta


def test_delta_log_density_is_finite_at_v_and_minus_inf_elsewhere():
    d = dist.Delta(t(2.0), log_density=-0.5)
    assert d.log_prob(t([2.0, 2.5, -3.0])).tolist() == [-0.5, -math.inf, -math.inf]
    assert dist.Delta(t([1.0, 3.0])).log_prob(t([1.0, 1.0])).tolist() == [
        0.0,
        -math.inf,
    ]
    assert d.has_rsample and d.batch_shape == () and d.event_shape == ()


def test_delta_event_dim_needs_every_entry_to_match():
    v = t([[1.0, 2.0], [3.0, 4.0]])
    d = dist.Delta(v, log_density=t([0.5, 1.5]), event_dim=1)
    assert d.batch_shape == (2,) and d.event_shape == (2,)
    probe = t([[1.0, 2.0], [3.0, 0.0]])
    assert d.log_prob(probe).tolist() == [0.5, -math.inf]
    assert d.log_prob(v).tolist() == [0.5, 1.5]
    whole = dist.Delta(v, event_dim=2)
    assert whole.log_prob(v).item() == 0.0 and whole.log_prob(probe).item() == -math.inf
    assert whole.log_prob(torch.stack([v, probe])).tolist() == [0.0, -math.inf]


@given(st.lists(small, max_size=3), st.lists(small, max_size=2), st.data())
def test_delta_sample_and_log_prob_shapes(v_shape, sample_shape, data):
    event_dim = data.draw(st.integers(0, len(v_shape)))
    v = torch.randn(v_shape)
    d = dist.Delta(v, event_dim=event_dim)
    batch = tuple(v_shape[: len(v_shape) - event_dim])
    assert d.batch_shape == batch and d.event_shape == tuple(
        v_shape[len(v_shape) - event_dim :]
    )
    x = d.rsample(sample_shape)
    assert x.shape == tuple(sample_shape) + tuple(v_shape) and torch.equal(
        x, v.expand(x.shape)
    )
    assert torch.equal(d.log_prob(x), torch.zeros(tuple(sample_shape) + batch))
    assert torch.all(d.log_prob(x + 1.0) == -math.inf)


def test_delta_gradient_flows_through_rsample_not_sample():
    v = t([1.5, -0.5], requires_grad=True)
    z = dist.Delta(v).rsample((5,))
    ((z - 3.0) ** 2).sum().backward()
    assert torch.allclose(v.grad, 10 * (v.detach() - 3.0))
    assert not dist.Delta(v).sample().requires_grad


def test_delta_gradient_flows_to_log_density():
    log_density = t(0.3, requires_grad=True)
    dist.Delta(t(1.0), log_density=log_density).log_prob(t(1.0)).backward()
    assert log_density.grad.item() == 1.0


def test_delta_expand_support_mean_and_errors():
    d = dist.Delta(t([1.0, 2.0]), event_dim=1)
    wide = d.expand([3])
    assert (
        isinstance(wide, dist.Delta)
        and wide.batch_shape == (3,)
        and wide.event_shape == (2,)
    )
    assert wide.log_prob(t([1.0, 2.0])).tolist() == [0.0, 0.0, 0.0]
    assert d.support.event_dim == 1 and bool(d.support.check(t([5.0, -7.0])))
    assert torch.equal(d.mean, t([1.0, 2.0])) and torch.equal(
        d.variance, torch.zeros(2)
    )
    with pytest.raises(ValueError, match="event_dim"):
        dist.Delta(t([1.0]), event_dim=2)


def test_delta_matches_pyro():
    v = torch.randn(4, 3)
    x = torch.stack([v, v + torch.eye(4, 3)])
    for event_dim in (0, 1, 2):
        ours, theirs = (
            dist.Delta(v, event_dim=event_dim),
            pdist.Delta(v, event_dim=event_dim),
        )
        assert (ours.batch_shape, ours.event_shape) == (
            theirs.batch_shape,
            theirs.event_shape,
        )
        assert torch.equal(ours.log_prob(x), theirs.log_prob(x))


# ---------------------------------------------------------------------------------------------
# constraints


def test_constraints_are_torchs_under_both_import_styles():
    assert constraints is constraints_module
    assert dist.constraints is constraints_module
    for name in D.constraints.__all__:
        assert getattr(constraints, name) is getattr(D.constraints, name)
    assert set(constraints.__all__) == set(D.constraints.__all__)
