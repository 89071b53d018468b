"""ppl.exact.Factor (chapter 1): hand-computed values, the laws of probability, sampling, errors.

The laws are property tests over random factors (2-4 variables, 2-4 states, positive entries);
the hand-computed tests pin the numbers, so a law that holds vacuously cannot hide a wrong answer.
"""

import functools
import itertools
import operator

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ppl.exact import Factor

NAMES = ("a", "b", "c", "d")
LAWS = settings(deadline=None, max_examples=50, derandomize=True)


@st.composite
def factors(draw, sizes=None):
    """A random factor with positive entries (float64): over ``sizes`` (a dict name -> number of
    states) when given, else over 2-4 variables named from NAMES with 2-4 states each."""
    if sizes is None:
        sizes = dict(
            zip(NAMES, draw(st.lists(st.integers(2, 4), min_size=2, max_size=4)))
        )
    numel = functools.reduce(operator.mul, sizes.values(), 1)
    entries = draw(st.lists(st.floats(0.01, 1.0), min_size=numel, max_size=numel))
    table = torch.tensor(entries, dtype=torch.float64).reshape(tuple(sizes.values()))
    return Factor(table, tuple(sizes))


def subsets(names):
    """Non-empty subsets of ``names``, in a random order."""
    return st.lists(st.sampled_from(names), min_size=1, unique=True)


def product(factors_):
    return functools.reduce(operator.mul, factors_)


# A small table, by hand: rain in {no, yes}, grass in {dry, wet}.
#            dry   wet
#   no      0.45  0.15     p(no)  = 0.6
#   yes     0.04  0.36     p(yes) = 0.4
#   p(wet) = 0.51
RAIN = {"rain": ("no", "yes"), "grass": ("dry", "wet")}


@pytest.fixture
def rain():
    return Factor([[0.45, 0.15], [0.04, 0.36]], ("rain", "grass"), RAIN)


# --- hand-computed values ---------------------------------------------------------------------


def test_attributes(rain):
    assert rain.names == ("rain", "grass")
    assert rain.values == {"rain": ("no", "yes"), "grass": ("dry", "wet")}
    assert tuple(rain.shape) == (2, 2)
    assert isinstance(rain.table, torch.Tensor)
    assert rain.total() == pytest.approx(1.0)
    assert Factor([1, 2], ["x"]).values == {"x": (0, 1)}


def test_marginal_by_hand(rain):
    assert rain.marginal("rain").table.tolist() == pytest.approx([0.6, 0.4])
    assert rain.marginal("grass").prob(grass="wet") == pytest.approx(0.51)
    swapped = rain.marginal("grass", "rain")
    assert swapped.names == ("grass", "rain")
    assert swapped.table.flatten().tolist() == pytest.approx([0.45, 0.04, 0.15, 0.36])


def test_condition_by_hand(rain):
    posterior = rain.condition(grass="wet")
    assert posterior.names == ("rain",)
    assert posterior.prob(rain="yes") == pytest.approx(0.36 / 0.51)
    # an index works like a label
    assert rain.condition(grass=1).allclose(posterior)
    assert rain.condition(grass=torch.tensor(1)).allclose(posterior)
    assert rain.condition(rain="no", grass="dry").total() == pytest.approx(1.0)


def test_conditional_by_hand(rain):
    cond = rain.conditional("grass", given="rain")
    assert cond.names == ("rain", "grass")
    assert cond.table.flatten().tolist() == pytest.approx([0.75, 0.25, 0.1, 0.9])
    reverse = rain.conditional("rain", given=("grass",))
    assert reverse.prob(grass="wet", rain="yes") == pytest.approx(0.36 / 0.51)
    # nothing given: the joint
    assert rain.conditional("rain", "grass").allclose(rain)


def test_conditional_undefined_slices_are_uniform():
    f = Factor([[0.5, 0.5, 0.0], [0.0, 0.0, 0.0]], ("x", "y"))
    cond = f.conditional("y", given="x")
    assert cond.table[1].tolist() == pytest.approx([1 / 3] * 3)
    assert (f.marginal("x") * cond).allclose(f)


def test_product_by_hand():
    f = Factor([[1.0, 2.0], [3.0, 4.0]], ("a", "b"))
    g = Factor([[10.0, 20.0, 30.0], [40.0, 50.0, 60.0]], ("b", "c"))
    h = f * g
    assert h.names == ("a", "b", "c")
    assert tuple(h.shape) == (2, 2, 3)
    for a, b, c in itertools.product(range(2), range(2), range(3)):
        assert h.prob(a=a, b=b, c=c) == pytest.approx(
            f.table[a, b].item() * g.table[b, c].item()
        )
    assert (f * Factor([2.0], ["z"])).prob(a=1, b=0, z=0) == pytest.approx(6.0)


def test_permute_prob_normalize(rain):
    p = rain.permute("grass", "rain")
    assert p.names == ("grass", "rain")
    assert p.prob(rain="yes", grass="dry") == pytest.approx(0.04)
    assert p.allclose(rain) and rain.allclose(p)
    doubled = Factor(rain.table * 2, rain.names, rain.values)
    assert doubled.total() == pytest.approx(2.0)
    assert doubled.normalize().allclose(rain)
    assert not doubled.allclose(rain)
    assert not rain.allclose(rain.marginal("rain"))
    # same numbers, other labels
    assert not rain.allclose(Factor(rain.table, rain.names))


def test_repr_is_a_table(rain):
    lines = repr(rain).splitlines()
    assert lines[0].split() == ["rain", "grass", "p"]
    assert [line.split() for line in lines[1:]] == [
        ["no", "dry", "0.4500"],
        ["no", "wet", "0.1500"],
        ["yes", "dry", "0.0400"],
        ["yes", "wet", "0.3600"],
    ]
    assert "more rows" in repr(Factor(torch.ones(100), ["x"]))


def test_values_accepts_tensors_and_ignores_other_variables():
    grid = torch.arange(5, dtype=torch.float64) / 4
    f = Factor(torch.ones(5), ["theta"], {"theta": grid, "other": ("u", "v")})
    assert f.values == {"theta": (0.0, 0.25, 0.5, 0.75, 1.0)}
    assert f.condition().prob(theta=0.25) == pytest.approx(0.2)


# --- the laws ------------------------------------------------------------------------------------


@LAWS
@given(st.data())
def test_marginal_of_joint_sums_to_one(data):
    joint = data.draw(factors()).normalize()
    keep = data.draw(subsets(joint.names))
    marginal = joint.marginal(*keep)
    assert marginal.names == tuple(keep)
    assert marginal.total() == pytest.approx(1.0, abs=1e-9)


@LAWS
@given(st.data())
def test_condition_then_marginal_equals_marginal_then_condition(data):
    joint = data.draw(factors()).normalize()
    observed = data.draw(st.sampled_from(joint.names))
    index = data.draw(st.integers(0, joint.values[observed][-1]))
    others = [name for name in joint.names if name != observed]
    keep = data.draw(subsets(others))
    left = joint.condition(**{observed: index}).marginal(*keep)
    right = joint.marginal(*keep, observed).condition(**{observed: index})
    assert left.allclose(right, atol=1e-9)
    assert left.total() == pytest.approx(1.0, abs=1e-9)


@LAWS
@given(st.data())
def test_chain_rule_in_any_order_reproduces_the_joint(data):
    joint = data.draw(factors()).normalize()
    for order in (
        joint.names,
        joint.names[::-1],
        tuple(data.draw(st.permutations(joint.names))),
    ):
        conditionals = [
            joint.conditional(name, given=order[:i]) for i, name in enumerate(order)
        ]
        # each slice of a conditional sums to one
        for i, cond in enumerate(conditionals):
            sums = cond.table.sum(dim=-1)
            assert torch.allclose(sums, torch.ones_like(sums))
        assert product(conditionals).allclose(joint, atol=1e-9)


@LAWS
@given(st.data())
def test_product_rule_given_a_third_variable(data):
    """p(a, b | c) = p(a | b, c) p(b | c): the product rule inside a conditional (chapter 1)."""
    sizes = data.draw(st.lists(st.integers(2, 4), min_size=3, max_size=4))
    joint = data.draw(factors(dict(zip(NAMES, sizes)))).normalize()
    a, b, c = data.draw(st.permutations(joint.names))[:3]
    left = joint.conditional(a, b, given=c)
    right = joint.conditional(a, given=(b, c)) * joint.conditional(b, given=c)
    assert left.allclose(right, atol=1e-9)
    # left is a conditional: for each value of c, its entries over (a, b) sum to one
    sums = left.table.sum(dim=(1, 2))
    assert torch.allclose(sums, torch.ones_like(sums))


@LAWS
@given(st.data())
def test_product_commutes_up_to_permutation(data):
    f = data.draw(factors())
    # some shared variables, maybe a new one
    names = data.draw(subsets(f.names + ("e",)))
    g = data.draw(
        factors({n: f.shape[f.names.index(n)] if n in f.names else 3 for n in names})
    )
    fg, gf = f * g, g * f
    assert set(fg.names) == set(f.names) | set(names)
    assert fg.allclose(gf, atol=1e-12)
    assignment = {name: 1 for name in fg.names}
    expected = f.prob(**{n: 1 for n in f.names}) * g.prob(**{n: 1 for n in g.names})
    assert fg.prob(**assignment) == pytest.approx(expected)


@LAWS
@given(st.data())
def test_marginal_of_product_with_normalised_conditional(data):
    """Summing out b from p(a) p(b | a) gives back p(a): a conditional's slices sum to one."""
    joint = data.draw(factors()).normalize()
    first, second = joint.names[:2]
    pair = joint.marginal(first) * joint.conditional(second, given=first)
    assert pair.marginal(first).allclose(joint.marginal(first), atol=1e-9)


# --- ancestral sampling --------------------------------------------------------------------------


def frequencies(f, draws, n):
    index = tuple(draws[name] for name in f.names)
    return (
        torch.zeros(f.shape, dtype=torch.float64).index_put_(
            index, torch.ones(n, dtype=torch.float64), accumulate=True
        )
        / n
    )


def assert_within_five_standard_errors(f, draws, n):
    p = f.normalize().table.to(torch.float64)
    se = (p * (1 - p) / n).sqrt()
    z = (frequencies(f, draws, n) - p).abs() / se
    assert z.max() < 5, f"frequency {z.max():.1f} standard errors from the table"


@pytest.mark.parametrize("order", [None, ("grass", "rain"), ("rain", "grass")])
def test_sample_by_hand(rain, order):
    n = 40_000
    draws = rain.sample(n, order=order, generator=torch.Generator().manual_seed(0))
    assert set(draws) == {"rain", "grass"}
    for name, value in draws.items():
        assert value.shape == (n,) and value.dtype == torch.int64
    assert_within_five_standard_errors(rain, draws, n)
    assert frequencies(rain, draws, n)[1, 1] == pytest.approx(0.36, abs=0.01)


@settings(deadline=None, max_examples=15, derandomize=True)
@given(st.data())
def test_sample_matches_the_joint(data):
    f = data.draw(factors())  # unnormalised: sample normalises
    order = tuple(data.draw(st.permutations(f.names)))
    n = 20_000
    draws = f.sample(n, order=order, generator=torch.Generator().manual_seed(1))
    assert_within_five_standard_errors(f, draws, n)


def test_sample_is_reproducible_with_a_generator(rain):
    a = rain.sample(100, generator=torch.Generator().manual_seed(3))
    b = rain.sample(100, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(a[name], b[name]) for name in rain.names)


def test_sample_never_draws_impossible_values():
    f = Factor([[0.5, 0.0], [0.0, 0.5]], ("x", "y"))
    draws = f.sample(1000, order=("y", "x"), generator=torch.Generator().manual_seed(0))
    assert torch.equal(draws["x"], draws["y"])


# --- errors name the variable and say what to do -------------------------------------------------


def test_unknown_name(rain):
    for call in (
        lambda: rain.marginal("snow"),
        lambda: rain.condition(snow="yes"),
        lambda: rain.conditional("snow", given="rain"),
        lambda: rain.prob(snow=0, rain=0),
    ):
        with pytest.raises(ValueError, match="snow"):
            call()
    with pytest.raises(ValueError, match="snow"):
        rain.permute("rain", "snow")
    # prob needs every variable
    with pytest.raises(ValueError, match="grass"):
        rain.prob(rain="yes")


def test_bad_label(rain):
    with pytest.raises(ValueError, match="grass.*dry"):
        rain.condition(grass="soggy")
    with pytest.raises(ValueError, match="rain"):
        # index out of range
        rain.prob(rain=2, grass=0)


def test_negative_entry():
    with pytest.raises(ValueError, match="rain=yes.*non-negative"):
        Factor([[0.5, 0.1], [-0.2, 0.6]], ("rain", "grass"), RAIN)


def test_non_finite_entry():
    with pytest.raises(ValueError, match="grass=wet.*finite"):
        Factor([[0.5, float("nan")], [0.2, 0.3]], ("rain", "grass"), RAIN)


def test_shape_mismatch():
    with pytest.raises(ValueError, match="grass"):
        # one dimension, two names
        Factor([0.5, 0.5], ("rain", "grass"))
    with pytest.raises(ValueError, match="rain.*3 states"):
        Factor([[0.1, 0.2], [0.3, 0.1], [0.2, 0.1]], ("rain", "grass"), RAIN)
    with pytest.raises(ValueError, match="rain.*twice"):
        Factor([[0.5, 0.5], [0.5, 0.5]], ("rain", "rain"))


def test_product_with_disagreeing_labels(rain):
    with pytest.raises(ValueError, match="grass"):
        rain * Factor([0.3, 0.7], ["grass"], {"grass": ("wet", "dry")})


def test_zero_probability_evidence():
    f = Factor([[0.5, 0.5], [0.0, 0.0]], ("rain", "grass"), RAIN)
    with pytest.raises(ValueError, match="rain='yes'.*probability zero"):
        f.condition(rain="yes")
    with pytest.raises(ValueError, match="zero"):
        Factor(torch.zeros(2), ["x"]).normalize()
