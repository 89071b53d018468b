"""Tests of ppl.plate (chapter 9) and of the ELBO's use of plates.

Oracles: Pyro (the same programs, written once against a module argument, run with the same
seed or conditioned on the same values); closed forms (the conjugate posterior of Bayesian linear
regression, the coin's ELBO with a Beta guide, a Normal model's mean-field ELBO); exact gradients
by enumeration. Monte Carlo checks use five standard errors, and each one is shown to reject a
wrong answer of the kind it guards against.
"""

from __future__ import annotations

import math
import threading

import pyro  # first imported, with its warning silenced, in conftest.py
import pyro.distributions as pdist
import pyro.infer
import pytest
import torch
from programs import FLIPS
from pyro import poutine as pyro_poutine

import ppl
import ppl.distributions as dist
import ppl.optim
from ppl import handlers as poutine
from ppl.distributions import constraints
from ppl.infer import SVI, Trace_ELBO, TraceMeanField_ELBO
from ppl.infer.trace_elbo import check_model_guide_match
from ppl.plates import DIM_ALLOCATOR, DimAllocator
from ppl.runtime import get_stack

pytestmark = pytest.mark.usefixtures("clean_state")

LIBS = {"ppl": (ppl, dist, poutine), "pyro": (pyro, pdist, pyro_poutine)}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # The tensors here are tiny: a second torch thread only adds contention on a shared machine
    # (tenfold slowdowns were measured), and the results do not depend on it.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def assert_clean():
    assert get_stack() == []
    assert DIM_ALLOCATOR.active == {}


def z_scores(samples: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    return (samples.mean(0) - exact) / (samples.std(0) / math.sqrt(len(samples)))


# --- programs written once, run on either library ------------------------------------------------

DATA5 = torch.tensor([0.3, -1.2, 2.2, 0.7, 1.9])
GRID = torch.tensor([[0.5, -0.3, 1.1], [2.0, 0.1, -0.8]])
PAIRS = torch.tensor([[0.1, 0.4], [-1.0, 0.3], [0.9, 2.1], [0.0, -0.5]])


def single(P, D):
    def model():
        loc = P.sample("loc", D.Normal(0.0, 2.0))
        with P.plate("data", len(DATA5)) as idx:
            P.sample("obs", D.Normal(loc, 1.0), obs=DATA5)
        return idx

    return model


def nested_auto(P, D):
    # automatic dims: the plate entered first gets -1; event dims sit right of every plate
    def model():
        g = P.sample("g", D.Normal(0.0, 1.0))
        with P.plate("cols", 3):
            day = P.sample("day", D.Normal(g, 1.0))
            with P.plate("rows", 2):
                P.sample("cell", D.Normal(day, 1.0), obs=GRID)
                P.sample("vec", D.Normal(0.0, 1.0).expand([4]).to_event(1))
                P.sample("k", D.Bernoulli(0.3))
        with P.plate("pairs", len(PAIRS)):
            P.sample("pair", D.Normal(g, 1.0).expand([2]).to_event(1), obs=PAIRS)
        P.sample("after", D.Normal(g, 1.0))

    return model


def explicit_dims(P, D):
    def model():
        with P.plate("a", 2, dim=-3):
            with P.plate("b", 5):
                P.sample("x", D.Normal(0.0, 1.0))
                P.sample("y", D.Normal(0.0, 1.0).expand([4]).to_event(1))
            # its own batch dim -1, free outside b
            P.sample("z", D.Normal(torch.zeros(3), 1.0))
            with P.plate("c", 3, dim=-2):
                P.sample("w", D.Gamma(2.0, 1.0))
        P.sample("outside", D.Normal(0.0, 1.0).expand([3]).to_event(1))

    return model


def sequential(P, D):
    def model():
        with P.plate("groups", 2):
            for i in P.plate("steps", 3):
                P.sample(f"s_{i}", D.Normal(float(i), 1.0))
        for j in P.plate("loop", 2):
            with P.plate(f"inner_{j}", 4):
                P.sample(f"t_{j}", D.Normal(0.0, 1.0))
            P.sample(f"u_{j}", D.Normal(0.0, 1.0).expand([2]).to_event(1))

    return model


def subsampled(P, D):
    x = torch.arange(10.0) / 3

    def model():
        loc = P.sample("loc", D.Normal(0.0, 1.0))
        with P.plate("given", 10, subsample=torch.tensor([7, 2, 5])) as idx:
            P.sample("obs_given", D.Normal(loc, 1.0), obs=x[idx])
        with P.plate("drawn", 10, subsample_size=4) as idx:
            P.sample("obs_drawn", D.Normal(loc, 1.0), obs=x[idx])
            with P.plate("inner", 6, subsample_size=2):
                P.sample("both", D.Normal(loc, 1.0))

    return model


PROGRAMS = {
    "single": single,
    "nested_auto": nested_auto,
    "explicit_dims": explicit_dims,
    "sequential": sequential,
    "subsampled": subsampled,
}


def frames(site):
    return tuple(
        (f.name, f.dim, f.size, f.counter, f.full_size)
        for f in site["cond_indep_stack"]
    )


def summary(tr):
    """Everything about a trace's sites that ppl and Pyro should agree on, values aside."""
    out = {}
    for name, site in tr.nodes.items():
        if site["type"] != "sample":
            out[name] = site["type"]
            continue
        fn = site["fn"]
        out[name] = {
            "fn": type(fn).__name__,
            "value_shape": tuple(site["value"].shape),
            "batch_shape": tuple(getattr(fn, "batch_shape", ())),
            "event_shape": tuple(getattr(fn, "event_shape", ())),
            "frames": frames(site),
            "scale": float(site["scale"]),
            "is_observed": site["is_observed"],
        }
    return list(tr.nodes), out


def traces_of(name, seed=0):
    out = []
    for P, D, H in LIBS.values():
        P.set_rng_seed(seed)
        out.append(H.trace(PROGRAMS[name](P, D)).get_trace())
    return out


# --- shapes and frames: the same as Pyro's -------------------------------------------------------


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_sites_shapes_and_frames_equal_pyros(name):
    ours, theirs = traces_of(name)
    names, summary_ours = summary(ours)
    assert names == summary(theirs)[0]
    assert summary_ours == summary(theirs)[1]
    assert_clean()


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_same_seed_draws_the_same_values_as_pyro(name):
    ours, theirs = traces_of(name, seed=3)
    for site_name, site in ours.nodes.items():
        if site["type"] == "sample":
            torch.testing.assert_close(
                site["value"], theirs.nodes[site_name]["value"], rtol=0, atol=0
            )


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_log_densities_equal_pyros_for_the_same_values(name):
    ours, _ = traces_of(name, seed=1)
    latents = {
        n: s["value"]
        for n, s in ours.nodes.items()
        # plates' indices included
        if s["type"] == "sample" and not s["is_observed"]
    }
    tr = {}
    for key, (P, D, H) in LIBS.items():
        P.set_rng_seed(2)  # a different seed: the values come from the condition
        tr[key] = H.trace(H.condition(PROGRAMS[name](P, D), data=latents)).get_trace()
        tr[key].compute_log_prob()
    torch.testing.assert_close(tr["ppl"].log_prob_sum(), tr["pyro"].log_prob_sum())
    for site_name, site in tr["ppl"].nodes.items():
        if site["type"] == "sample":
            torch.testing.assert_close(
                site["log_prob"], tr["pyro"].nodes[site_name]["log_prob"]
            )


def test_shapes_read_off_the_plates():
    # the chapter's rules, spelled out once, independently of Pyro
    tr = poutine.trace(explicit_dims(ppl, dist)).get_trace()
    shapes = {
        n: tuple(s["value"].shape) for n, s in tr.nodes.items() if s["type"] == "sample"
    }
    assert shapes == {
        "a": (2,),
        "b": (5,),
        "x": (2, 1, 5),
        "y": (2, 1, 5, 4),
        "z": (2, 1, 3),
        "c": (3,),
        "w": (2, 3, 1),
        "outside": (3,),
    }
    tr = poutine.trace(nested_auto(ppl, dist)).get_trace()
    assert frames(tr.nodes["vec"]) == (("cols", -1, 3, 0, 3), ("rows", -2, 2, 0, 2))
    assert tr.nodes["vec"]["fn"].batch_shape == (2, 3) and tr.nodes["vec"][
        "fn"
    ].event_shape == (4,)
    assert frames(tr.nodes["after"]) == () and frames(tr.nodes["g"]) == ()


def test_sequential_plate_frames_have_no_dim_and_count_iterations():
    tr = poutine.trace(sequential(ppl, dist)).get_trace()
    assert [frames(tr.nodes[f"s_{i}"]) for i in range(3)] == [
        (("groups", -1, 2, 0, 2), ("steps", None, 3, i + 1, 3)) for i in range(3)
    ]
    assert tr.nodes["s_2"]["value"].shape == (2,)
    assert frames(tr.nodes["t_1"]) == (
        ("loop", None, 2, 2, 2),
        ("inner_1", -1, 4, 0, 4),
    )
    assert [f.vectorized for f in tr.nodes["t_1"]["cond_indep_stack"]] == [False, True]


# --- indices, subsampling, scale, replay ---------------------------------------------------------


def test_plate_yields_its_indices_and_expands_sites_inside():
    with ppl.plate("data", 4) as idx:
        x = ppl.sample("x", dist.Normal(0.0, 1.0))
    assert idx.dtype == torch.long and torch.equal(idx, torch.arange(4))
    assert x.shape == (4,)
    assert list(ppl.plate("loop", 3)) == [0, 1, 2]
    assert list(ppl.plate("picked", 10, subsample=torch.tensor([4, 1]))) == [4, 1]
    assert_clean()


def test_subsample_size_draws_a_uniform_subset_without_replacement():
    ppl.set_rng_seed(0)
    n, b, draws = 10, 3, 4000
    counts = torch.zeros(n)
    for _ in range(draws):
        with ppl.plate("data", n, subsample_size=b) as idx:
            pass
        assert idx.dtype == torch.long and idx.shape == (b,)
        assert len(set(idx.tolist())) == b and 0 <= idx.min() and idx.max() < n
        counts[idx] += 1
    # each index is in the minibatch with probability b / n
    p = b / n
    se = math.sqrt(p * (1 - p) / draws)
    assert ((counts / draws - p).abs() / se).max() < 5
    ppl.set_rng_seed(0)
    first = list(ppl.plate("data", n, subsample_size=b))
    ppl.set_rng_seed(1)
    assert first != list(ppl.plate("data", n, subsample_size=b))


def test_scale_is_size_over_subsample_size_and_multiplies_when_nested():
    ppl.set_rng_seed(0)
    tr = poutine.trace(subsampled(ppl, dist)).get_trace()
    scales = {n: s["scale"] for n, s in tr.nodes.items() if s["type"] == "sample"}
    assert scales == {
        "loc": 1.0,
        "given": 1.0,
        "obs_given": pytest.approx(10 / 3),
        "drawn": 1.0,
        "obs_drawn": 2.5,
        "inner": 2.5,
        "both": pytest.approx(2.5 * 3),
    }
    # and the log joint uses them: each site's log-density sum is scaled
    tr.compute_log_prob()
    for name in ("obs_given", "obs_drawn", "both"):
        site = tr.nodes[name]
        torch.testing.assert_close(
            site["log_prob_sum"],
            site["scale"] * site["fn"].log_prob(site["value"]).sum(),
        )


def test_explicit_subsample_indices_are_used_and_recorded():
    idx = torch.tensor([8, 0, 3])

    def model():
        with ppl.plate("data", 10, subsample=idx) as got:
            ppl.sample("x", dist.Normal(0.0, 1.0))
        return got

    tr = poutine.trace(model).get_trace()
    assert torch.equal(tr.nodes["_RETURN"]["value"], idx)
    site = tr.nodes["data"]
    assert (
        site["type"] == "sample"
        and torch.equal(site["value"], idx)
        and not site["is_observed"]
    )
    assert type(site["fn"]).__name__ == "_Subsample"
    assert tr.nodes["x"]["value"].shape == (3,)
    assert tr.nodes["x"]["scale"] == pytest.approx(10 / 3)
    assert frames(tr.nodes["x"]) == (("data", -1, 3, 0, 10),)


def test_the_plate_site_adds_nothing_to_the_log_joint():
    ppl.set_rng_seed(0)
    tr = poutine.trace(single(ppl, dist)).get_trace()
    site = tr.nodes["data"]
    assert torch.equal(site["value"], torch.arange(5))
    assert float(site["fn"].log_prob(site["value"])) == 0.0
    loc = tr.nodes["loc"]["value"]
    expected = (
        dist.Normal(0.0, 2.0).log_prob(loc)
        + dist.Normal(loc, 1.0).log_prob(DATA5).sum()
    )
    torch.testing.assert_close(tr.log_prob_sum(), expected)


def minibatch_pair(P, D, model_b=3, guide_b=3):
    x = torch.arange(8.0)

    def model():
        with P.plate("data", 8, subsample_size=model_b) as idx:
            P.sample("z", D.Normal(0.0, 1.0))
            P.sample("obs", D.Normal(0.0, 1.0), obs=x[idx])
        return idx

    def guide():
        with P.plate("data", 8, subsample_size=guide_b) as idx:
            P.sample("z", D.Normal(x[idx], 1.0))
        return idx

    return model, guide


def test_replay_gives_the_model_the_guides_minibatch():
    for P, D, H in LIBS.values():
        model, guide = minibatch_pair(P, D)
        P.set_rng_seed(0)
        guide_trace = H.trace(guide).get_trace()
        guide_idx = guide_trace.nodes["data"]["value"]
        model_trace = H.trace(H.replay(model, trace=guide_trace)).get_trace()
        assert torch.equal(model_trace.nodes["_RETURN"]["value"], guide_idx)
        assert torch.equal(model_trace.nodes["obs"]["value"], guide_idx.float())
        assert torch.equal(
            model_trace.nodes["z"]["value"], guide_trace.nodes["z"]["value"]
        )
        # without replay, the model draws a minibatch of its own
        assert not torch.equal(
            H.trace(model).get_trace().nodes["data"]["value"], guide_idx
        )
    model, guide = minibatch_pair(ppl, dist, model_b=4)
    with pytest.raises(ValueError, match="plate 'data'.*subsample_size=4"):
        poutine.trace(
            poutine.replay(model, trace=poutine.trace(guide).get_trace())
        ).get_trace()
    assert_clean()


def test_subsampled_log_likelihood_is_unbiased():
    gen = torch.Generator().manual_seed(0)
    n, b, loc = 50, 5, 0.7
    x = 2.0 + 1.5 * torch.randn(n, generator=gen)
    full = dist.Normal(loc, 1.0).log_prob(x).sum().item()

    def model():
        with ppl.plate("data", n, subsample_size=b) as idx:
            ppl.sample("obs", dist.Normal(loc, 1.0), obs=x[idx])

    ppl.set_rng_seed(1)
    estimates = []
    unscaled = []
    for _ in range(3000):
        tr = poutine.trace(model).get_trace()
        estimates.append(tr.log_prob_sum().item())
        unscaled.append(estimates[-1] / tr.nodes["obs"]["scale"])
    estimates, unscaled = torch.tensor(estimates), torch.tensor(unscaled)
    se = estimates.std().item() / math.sqrt(len(estimates))
    assert abs(estimates.mean().item() - full) < 5 * se
    # the check has the power to see a missing N / B scale
    assert abs(unscaled.mean().item() - full) > 5 * se
    # and the spread is that of sampling without replacement: N^2 (1 - B/N) s^2 / B
    s2 = dist.Normal(loc, 1.0).log_prob(x).var().item()
    assert estimates.var().item() == pytest.approx(n**2 * (1 - b / n) * s2 / b, rel=0.2)


# --- local params -------------------------------------------------------------------------------


def local_params(P, D):
    def model():
        with P.plate("data", 6, subsample_size=3) as idx:
            a = P.param("a", torch.arange(6.0), event_dim=0)
            v = P.param("v", torch.arange(12.0).reshape(6, 2), event_dim=1)
            # size 1: broadcast
            shared = P.param("shared", torch.tensor([0.5]), event_dim=0)
            with P.plate("inner", 4, subsample_size=2, dim=-2) as jdx:
                m = P.param("m", torch.arange(24.0).reshape(4, 6), event_dim=0)
        return idx, jdx, a, v, shared, m

    return model


def test_local_params_return_the_minibatch_rows_as_pyro_does():
    results = {}
    for key, (P, D, H) in LIBS.items():
        P.set_rng_seed(4)
        tr = H.trace(local_params(P, D)).get_trace()
        results[key] = (
            tr.nodes["_RETURN"]["value"],
            {n: tuple(tr.nodes[n]["value"].shape) for n in ("a", "v", "shared", "m")},
        )
    (idx, jdx, a, v, shared, m), recorded = results["ppl"]
    torch.testing.assert_close(a, torch.arange(6.0)[idx])
    torch.testing.assert_close(v, torch.arange(12.0).reshape(6, 2)[idx])
    torch.testing.assert_close(shared, torch.tensor([0.5]))
    torch.testing.assert_close(m, torch.arange(24.0).reshape(4, 6)[jdx][:, idx])
    for ours, theirs in zip(results["ppl"][0], results["pyro"][0]):
        torch.testing.assert_close(ours, theirs)
    # the trace records the whole param, as Pyro's does
    assert recorded == results["pyro"][1]


def test_local_param_gradient_reaches_only_the_minibatch_rows():
    ppl.set_rng_seed(0)
    with ppl.plate("data", 6, subsample_size=2) as idx:
        a = ppl.param("a", torch.zeros(6), event_dim=0)
    (a * torch.tensor([1.0, 2.0])).sum().backward()
    grad = ppl.param("a").unconstrained().grad
    expected = torch.zeros(6)
    expected[idx] = torch.tensor([1.0, 2.0])
    torch.testing.assert_close(grad, expected)


@pytest.mark.parametrize("shape, event_dim", [((5,), 0), ((5, 2), 1), ((6, 3), 0)])
def test_local_param_of_the_wrong_size_names_the_param(shape, event_dim):
    def model():
        with ppl.plate("data", 6, subsample_size=3):
            ppl.param("loc", torch.zeros(shape), event_dim=event_dim)

    with pytest.raises(ValueError, match="param 'loc' in plate 'data'"):
        poutine.trace(model).get_trace()
    assert_clean()
    with pytest.raises(ValueError):  # Pyro refuses it too
        with pyro.plate("data", 6, subsample_size=3):
            pyro.param("loc", torch.zeros(shape), event_dim=event_dim)


@pytest.mark.parametrize("subsample_size", [None, 2])
@pytest.mark.parametrize(
    "make_init",
    [lambda shape: torch.zeros(shape), lambda shape: lambda: torch.zeros(shape)],
    ids=["tensor", "callable"],
)
def test_a_local_param_of_the_wrong_shape_is_not_stored(make_init, subsample_size):
    # The error comes before the store keeps the value: the corrected program then just runs.
    def model(shape):
        with ppl.plate("p", 3, subsample_size=subsample_size):
            return ppl.param("loc", make_init(shape), event_dim=0)

    with pytest.raises(ValueError, match=r"param 'loc' in plate 'p' \(size 3"):
        poutine.trace(model).get_trace((4,))
    with pytest.raises(ValueError, match=r"param 'loc' in plate 'p' \(size 3"):
        model((4,))  # no handler but the plate
    assert "loc" not in ppl.get_param_store()
    assert_clean()
    value = model((3,))
    assert value.shape == (subsample_size or 3,)
    assert ppl.get_param_store()["loc"].shape == (3,)


@pytest.mark.parametrize("event_dim", [-1, 0.5, True])
def test_a_local_param_with_a_bad_event_dim_names_the_param(event_dim):
    with pytest.raises(
        ValueError, match=r"param 'loc': event_dim must be a non-negative int"
    ):
        with ppl.plate("p", 3):
            ppl.param("loc", torch.zeros(3, 3), event_dim=event_dim)
    assert "loc" not in ppl.get_param_store()
    assert_clean()


# --- errors ---------------------------------------------------------------------------------------


def test_size_disagreeing_with_the_batch_dim_names_site_and_plate():
    def model():
        with ppl.plate("data", 3):
            ppl.sample("x", dist.Normal(torch.zeros(4), 1.0))

    with pytest.raises(
        ValueError, match=r"site 'x'.*plate 'data' of size 3.*batch_shape \(4,\)"
    ):
        poutine.trace(model).get_trace()
    assert_clean()

    def nested():  # the mismatch at the outer plate's dim
        with ppl.plate("outer", 2):
            with ppl.plate("inner", 3):
                ppl.sample("y", dist.Normal(torch.zeros(5, 1), 1.0))

    with pytest.raises(
        ValueError, match=r"site 'y'.*plate 'inner' of size 3 at dim -2"
    ):
        nested()
    assert_clean()
    with pytest.raises(ValueError):  # Pyro refuses it too
        with pyro.plate("data", 3):
            pyro.sample("x", pdist.Normal(torch.zeros(4), 1.0))


def test_two_plates_claiming_the_same_dim():
    def model():
        with ppl.plate("rows", 3, dim=-2):
            with ppl.plate("cols", 4, dim=-2):
                pass

    with pytest.raises(ValueError, match="plates 'cols' and 'rows' both want dim=-2"):
        poutine.trace(model).get_trace()
    assert_clean()
    # an automatic dim skips the taken one
    with ppl.plate("rows", 3, dim=-1):
        with ppl.plate("cols", 4) as _:
            assert DIM_ALLOCATOR.active == {-1: "rows", -2: "cols"}
    assert_clean()


def test_duplicate_plate_name_when_nested():
    def model():
        with ppl.plate("data", 3):
            with ppl.plate("data", 3):
                pass

    with pytest.raises(ValueError, match="plate 'data' is already active"):
        model()
    assert_clean()
    # under trace, the plates' sites collide first
    with pytest.raises(RuntimeError, match="sample site named 'data'"):
        poutine.trace(model).get_trace()
    assert_clean()


@pytest.mark.parametrize("dim", [0, 1, 2])
def test_nonnegative_dim_is_refused(dim):
    with pytest.raises(ValueError, match="plate 'data': dim must be a negative int"):
        with ppl.plate("data", 3, dim=dim):
            pass
    assert_clean()


@pytest.mark.parametrize("size", [0, -1, -5])
def test_size_zero_or_negative_is_refused(size):
    with pytest.raises(ValueError, match="plate 'data': size must be a positive int"):
        ppl.plate("data", size)
    with pytest.raises(ValueError, match="plate 'data'"):
        ppl.plate("data", 4, subsample_size=size)
    assert_clean()


def test_observed_value_of_the_wrong_shape_inside_a_plate_names_the_site():
    def model(obs):
        with ppl.plate("data", 3):
            ppl.sample("x", dist.Normal(0.0, 1.0), obs=obs)

    with pytest.raises(ValueError, match=r"sample site 'x'.*shape \(4,\).*\(3,\)"):
        poutine.trace(model).get_trace(torch.zeros(4))
    with pytest.raises(ValueError, match=r"sample site 'x'.*shape \(2,\)"):
        poutine.trace(model).get_trace(torch.zeros(2))
    assert_clean()
    poutine.trace(model).get_trace(torch.zeros(3))  # the right shape is fine


# --- exception safety ------------------------------------------------------------------------------


def test_an_exception_inside_nested_plates_leaves_nothing_behind():
    def model():
        with ppl.plate("outer", 2):
            with ppl.plate("middle", 3, dim=-3):
                with ppl.plate("inner", 4):
                    assert DIM_ALLOCATOR.active == {
                        -1: "outer",
                        -2: "inner",
                        -3: "middle",
                    }
                    raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        poutine.trace(model).get_trace()
    assert_clean()
    with pytest.raises(KeyError, match="boom"):
        model()
    assert_clean()
    with pytest.raises(KeyError, match="boom"):
        Trace_ELBO().loss(model, model)
    assert_clean()
    # the dims are free again
    with ppl.plate("outer", 2):
        with ppl.plate("next", 5):
            assert DIM_ALLOCATOR.active == {-1: "outer", -2: "next"}
    assert_clean()


def test_an_exception_in_a_sequential_plate_body_leaves_nothing_behind():
    def model():
        with ppl.plate("batch", 2):
            for i in ppl.plate("loop", 3):
                with ppl.plate(f"inner_{i}", 4):
                    if i == 1:
                        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        poutine.trace(model).get_trace()
    assert_clean()
    with pytest.raises(KeyError, match="boom") as info:
        model()
    # the traceback, and the loop's frame, are still alive here
    assert info.tb is not None
    assert_clean()

    def mismatch_in_loop():  # an error raised by ppl itself, in the third iteration
        with ppl.plate("batch", 2):
            for i in ppl.plate("loop", 3):
                ppl.sample(f"x_{i}", dist.Normal(torch.zeros(i + 1), 1.0))

    with pytest.raises(ValueError, match="site 'x_2' sits in plate 'batch'"):
        poutine.trace(mismatch_in_loop).get_trace()
    assert_clean()


def test_breaking_out_of_a_sequential_plate_leaves_nothing_behind():
    with ppl.plate("batch", 2):
        for i in ppl.plate("loop", 5):
            if i == 2:
                break
        assert DIM_ALLOCATOR.active == {-1: "batch"}
    assert_clean()


# --- Trace_ELBO with plates ----------------------------------------------------------------------


def hierarchical(P, D):
    def model(x):
        mu = P.sample("mu", D.Normal(0.0, 3.0))
        with P.plate("groups", x.shape[0], dim=-2):
            g = P.sample("g", D.Normal(mu, 1.0))
            with P.plate("obs", x.shape[1]):
                P.sample("x", D.Normal(g, 0.5), obs=x)

    def guide(x):
        m = P.param("m", torch.tensor(0.3))
        s = P.param("s", torch.tensor(0.8), constraint=D.constraints.positive)
        P.sample("mu", D.Normal(m, s))
        with P.plate("groups", x.shape[0], dim=-2):
            loc = P.param("g_loc", torch.zeros(x.shape[0], 1), event_dim=0)
            P.sample("g", D.Normal(loc, 1.0))

    return model, guide


def minibatched(P, D):
    # explicit indices, so that both libraries look at the same minibatch
    def model(x, idx):
        mu = P.sample("mu", D.Normal(0.0, 3.0))
        with P.plate("data", len(x), subsample=idx):
            z = P.sample("z", D.Normal(mu, 1.0))
            P.sample("x", D.Normal(z, 0.5), obs=x[idx])

    def guide(x, idx):
        P.sample("mu", D.Normal(P.param("m", torch.tensor(0.3)), 0.7))
        with P.plate("data", len(x), subsample=idx):
            loc = P.param("z_loc", torch.linspace(-1, 1, len(x)), event_dim=0)
            P.sample("z", D.Normal(loc, 0.6))

    return model, guide


def mixture(P, D, subsample_size=None):
    # one discrete latent per point: the case the plate-aware score costs are for
    def model(x):
        with P.plate("data", len(x), subsample_size=subsample_size) as idx:
            z = P.sample("z", D.Bernoulli(0.5))
            P.sample("x", D.Normal(4.0 * z - 2.0, 1.0), obs=x[idx])

    def guide(x):
        with P.plate("data", len(x), subsample_size=subsample_size):
            phi = P.param("phi", torch.linspace(-1.0, 1.0, len(x)), event_dim=0)
            P.sample("z", D.Bernoulli(logits=phi))

    return model, guide


def grid_mixture(P, D):
    # a global reparameterised latent, a global discrete one, and discrete latents in two plates
    def model(x):
        mu = P.sample("mu", D.Normal(0.0, 1.0))
        c = P.sample("c", D.Bernoulli(0.4))
        with P.plate("rows", x.shape[0], dim=-2):
            r = P.sample("r", D.Normal(mu + c, 1.0))
            with P.plate("cols", x.shape[1]):
                k = P.sample("k", D.Bernoulli(0.3))
                P.sample("x", D.Normal(r + 2.0 * k, 1.0), obs=x)

    def guide(x):
        P.sample("mu", D.Normal(P.param("m", torch.tensor(0.1)), 1.0))
        P.sample("c", D.Bernoulli(logits=P.param("c_logit", torch.tensor(-0.2))))
        with P.plate("rows", x.shape[0], dim=-2):
            P.sample(
                "r",
                D.Normal(
                    P.param("r_loc", torch.zeros(x.shape[0], 1), event_dim=0), 1.0
                ),
            )
            with P.plate("cols", x.shape[1]):
                P.sample(
                    "k",
                    D.Bernoulli(
                        logits=P.param("k_logit", torch.zeros(x.shape), event_dim=0)
                    ),
                )

    return model, guide


MIX_X = torch.tensor(
    [
        -2.3,
        1.7,
        0.2,
        -0.4,
        2.9,
        -1.1,
        0.8,
        -3.0,
        1.2,
        0.05,
        -0.9,
        2.2,
        -1.8,
        0.4,
        3.3,
        -0.2,
        -2.6,
        1.0,
        0.6,
        -1.4,
    ]
)
GRID_X = torch.tensor(
    [[0.3, 2.1, -0.5, 1.4], [1.9, -0.7, 0.8, 2.6], [-1.2, 0.4, 3.0, 0.1]]
)
IDX = torch.tensor([6, 1, 3])

ELBO_CASES = {
    "hierarchical": (
        hierarchical,
        (GRID_X,),
        {"mu": torch.tensor(0.4), "g": torch.tensor([[1.0], [0.2], [-0.5]])},
    ),
    "minibatched": (
        minibatched,
        (torch.linspace(-2, 3, 8), IDX),
        {"mu": torch.tensor(-0.3), "z": torch.tensor([0.5, -1.0, 0.25])},
    ),
    "mixture": (mixture, (MIX_X,), {"z": (torch.arange(20) % 3 == 0).float()}),
    "grid_mixture": (
        grid_mixture,
        (GRID_X,),
        {
            "mu": torch.tensor(0.2),
            "c": torch.tensor(1.0),
            "r": torch.tensor([[0.5], [1.5], [-0.2]]),
            "k": (torch.arange(12).reshape(3, 4) % 2).float(),
        },
    ),
}


@pytest.mark.parametrize("case", list(ELBO_CASES))
def test_loss_equals_pyros_for_the_same_substituted_latents(case, pyro_fix_latents):
    build, args, latents = ELBO_CASES[case]
    model, guide = build(ppl, dist)
    pmodel, pguide = build(pyro, pdist)
    ours = Trace_ELBO().loss(model, poutine.fix_latents(guide, data=latents), *args)
    theirs = pyro.infer.Trace_ELBO().loss(
        pmodel, pyro_fix_latents(pguide, latents), *args
    )
    assert ours == pytest.approx(theirs, rel=1e-6, abs=1e-5)


def test_minibatch_loss_is_the_hand_written_scaled_elbo():
    model, guide = minibatched(ppl, dist)
    x, idx = ELBO_CASES["minibatched"][1]
    mu, z = torch.tensor(-0.3), torch.tensor([0.5, -1.0, 0.25])
    loss = Trace_ELBO().loss(
        model, poutine.fix_latents(guide, data={"mu": mu, "z": z}), x, idx
    )
    z_loc = torch.linspace(-1, 1, len(x))[idx]
    local = (
        dist.Normal(mu, 1.0).log_prob(z)
        + dist.Normal(z, 0.5).log_prob(x[idx])
        - dist.Normal(z_loc, 0.6).log_prob(z)
    ).sum()
    elbo = (
        dist.Normal(0.0, 3.0).log_prob(mu)
        - dist.Normal(0.3, 0.7).log_prob(mu)
        + len(x) / len(idx) * local
    )
    assert loss == pytest.approx(-elbo.item(), rel=1e-6)


@pytest.mark.parametrize(
    "case, subsample_size", [("mixture", None), ("mixture", 5), ("grid", None)]
)
def test_loss_and_gradients_equal_pyros_for_the_same_seed(case, subsample_size):
    if case == "mixture":
        (model, guide), (pmodel, pguide), x = (
            mixture(ppl, dist, subsample_size),
            mixture(pyro, pdist, subsample_size),
            MIX_X,
        )
    else:
        (model, guide), (pmodel, pguide), x = (
            grid_mixture(ppl, dist),
            grid_mixture(pyro, pdist),
            GRID_X,
        )
    for seed in range(3):
        ppl.set_rng_seed(seed)
        ours = Trace_ELBO(num_particles=2).differentiable_loss(model, guide, x)
        pyro.set_rng_seed(seed)
        theirs = pyro.infer.Trace_ELBO(num_particles=2).differentiable_loss(
            pmodel, pguide, x
        )
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-4)
        names = sorted(ppl.get_param_store().keys())
        assert names == sorted(pyro.get_param_store().keys())
        grads = torch.autograd.grad(ours, [ppl.param(n).unconstrained() for n in names])
        pyro_grads = torch.autograd.grad(
            theirs, [pyro.param(n).unconstrained() for n in names]
        )
        for name, ga, gb in zip(names, grads, pyro_grads):
            torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-5, msg=name)


def exact_mixture_gradient(phi):
    # the ELBO is a sum of two-term expectations, one per point: differentiate it exactly
    phi = phi.detach().requires_grad_()
    q1 = torch.sigmoid(phi)

    def log_joint(z):
        return math.log(0.5) + dist.Normal(4.0 * z - 2.0, 1.0).log_prob(MIX_X)

    elbo = (
        q1 * (log_joint(1.0) - q1.log()) + (1 - q1) * (log_joint(0.0) - (1 - q1).log())
    ).sum()
    return torch.autograd.grad(elbo, phi)[0]


def mixture_gradient_draws(num_draws):
    model, guide = mixture(ppl, dist)
    guide(MIX_X)
    phi = ppl.param("phi").unconstrained()
    elbo = Trace_ELBO()
    plate_aware = torch.stack(
        [
            torch.autograd.grad(-elbo.differentiable_loss(model, guide, MIX_X), phi)[0]
            for _ in range(num_draws)
        ]
    )

    # chapter 8's estimator: every score costed with the whole particle
    def whole_particle():
        guide_trace = poutine.trace(guide).get_trace(MIX_X)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(
            MIX_X
        )
        particle = model_trace.log_prob_sum() - guide_trace.log_prob_sum()
        site = guide_trace.nodes["z"]
        return site["fn"].log_prob(site["value"]).sum() * particle.detach()

    whole = torch.stack(
        [torch.autograd.grad(whole_particle(), phi)[0] for _ in range(num_draws)]
    )
    return exact_mixture_gradient(phi), plate_aware, whole


def test_plate_aware_gradient_is_unbiased_and_much_less_noisy():
    ppl.set_rng_seed(0)
    exact, plate_aware, whole = mixture_gradient_draws(800)
    assert exact.abs().max() > 2  # a gradient worth estimating
    assert z_scores(plate_aware, exact).abs().max() < 5
    assert z_scores(whole, exact).abs().max() < 5
    # the whole-particle cost adds the other 19 points' noise to every coordinate
    assert whole.var(0).sum() / plate_aware.var(0).sum() > 50


def test_the_unbiasedness_check_rejects_a_gradient_without_score_terms():
    model, guide = mixture(ppl, dist)
    guide(MIX_X)
    phi = ppl.param("phi").unconstrained()

    def pathwise_only():
        guide_trace = poutine.trace(guide).get_trace(MIX_X)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(
            MIX_X
        )
        return model_trace.log_prob_sum() - guide_trace.log_prob_sum()

    ppl.set_rng_seed(0)
    draws = torch.stack(
        [torch.autograd.grad(pathwise_only(), phi)[0] for _ in range(300)]
    )
    assert z_scores(draws, exact_mixture_gradient(phi)).abs().max() > 5


def test_score_cost_includes_auxiliary_guide_sites_that_depend_on_the_draw():
    # A guide-only (auxiliary) site whose distribution depends on a discrete draw: its -log q is
    # part of that draw's cost. ppl keeps it, so the gradient is unbiased. Pyro 1.9's Trace_ELBO
    # builds its costs from the model's sites only and leaves it out (its mean here is about 0.01
    # against an exact 0.39), so this is one place where ppl deliberately differs from Pyro.
    def model():
        z = ppl.sample("z", dist.Bernoulli(0.3))
        ppl.sample("x", dist.Normal(2.0 * z, 1.0), obs=torch.tensor(1.5))

    def guide():
        z = ppl.sample(
            "z", dist.Bernoulli(logits=ppl.param("logit", torch.tensor(0.2)))
        )
        ppl.sample("a", dist.Normal(0.0, 1.0 + 4.0 * z), infer={"is_auxiliary": True})

    logit = torch.tensor(0.2, requires_grad=True)
    q1 = torch.sigmoid(logit)

    # E[log p(x, z) - log q(a | z) | z], the entropy of a given z included
    def value(z):
        return (
            math.log(0.3 if z else 0.7)
            + dist.Normal(2.0 * z, 1.0).log_prob(torch.tensor(1.5))
            + dist.Normal(0.0, 1.0 + 4.0 * z).entropy()
        )

    exact_elbo = q1 * (value(1.0) - q1.log()) + (1 - q1) * (value(0.0) - (1 - q1).log())
    exact = torch.autograd.grad(exact_elbo, logit)[0]
    ppl.set_rng_seed(0)
    guide()
    leaf = ppl.param("logit").unconstrained()
    elbo = Trace_ELBO()
    draws = torch.stack(
        [
            torch.autograd.grad(-elbo.differentiable_loss(model, guide), leaf)[0]
            for _ in range(1500)
        ]
    )
    assert abs(z_scores(draws, exact)) < 5
    # so it would see Pyro's bias
    assert abs(exact) / (draws.std() / math.sqrt(len(draws))) > 10


def test_a_batch_dim_outside_every_plate_is_summed_before_the_costs():
    # Chapter 9: the package sums each log-density down to its own plates before it builds the
    # score costs. A global site of batch shape (3,) owns dim -1 in no plate; unsummed, it would
    # meet the mixture's plate of size 20 at dim -1 (the chapter's core ELBO and its one-page
    # engine fail there). Oracle: the same site declared one event of 3, which draws the same
    # values and scores them as one number, so the gradients agree.
    grads = []
    for as_event in (False, True):
        model, guide = mixture(ppl, dist)

        def with_global(program, scale, as_event=as_event):
            def wrapped(x):
                g = dist.Normal(torch.zeros(3), scale)
                ppl.sample("g", g.to_event(1) if as_event else g)
                program(x)

            return wrapped

        ppl.clear_param_store()
        ppl.set_rng_seed(0)
        guide(MIX_X)
        phi = ppl.param("phi").unconstrained()
        loss = Trace_ELBO().differentiable_loss(
            with_global(model, 2.0), with_global(guide, 1.0), MIX_X
        )
        grads.append(torch.autograd.grad(loss, phi)[0])
    assert grads[1].abs().max() > 0.1  # the global site's terms are in every cost
    torch.testing.assert_close(grads[0], grads[1])


# --- vectorized particles ------------------------------------------------------------------------

SHAPES: list = []


def plated_coin(P, D):
    def model(x):
        z = P.sample("z", D.Beta(2.0, 2.0))
        SHAPES.append(tuple(z.shape))
        with P.plate("flips", len(x)):
            P.sample("x", D.Bernoulli(z), obs=x)

    def guide(x):
        a = P.param("a", torch.tensor(3.0), constraint=D.constraints.positive)
        b = P.param("b", torch.tensor(2.0), constraint=D.constraints.positive)
        P.sample("z", D.Beta(a, b))

    return model, guide


def exact_coin_elbo(a=3.0, b=2.0):
    heads, tails = FLIPS.sum(), (1 - FLIPS).sum()
    a, b = torch.tensor(a), torch.tensor(b)
    expected_log_lik = heads * (torch.digamma(a) - torch.digamma(a + b)) + tails * (
        torch.digamma(b) - torch.digamma(a + b)
    )
    kl = torch.distributions.kl_divergence(dist.Beta(a, b), dist.Beta(2.0, 2.0))
    return (expected_log_lik - kl).item()


def test_vectorized_and_sequential_particles_agree_in_expectation():
    model, guide = plated_coin(ppl, dist)
    ppl.set_rng_seed(0)
    draws = {}
    for vectorize in (True, False):
        elbo = Trace_ELBO(num_particles=10, vectorize_particles=vectorize)
        draws[vectorize] = torch.tensor(
            [-elbo.loss(model, guide, FLIPS) for _ in range(300)]
        )
    vec, seq = draws[True], draws[False]
    se = math.sqrt(vec.var() / len(vec) + seq.var() / len(seq))
    assert abs(vec.mean() - seq.mean()) < 5 * se
    exact = exact_coin_elbo()
    for values in (vec, seq):
        assert abs(values.mean() - exact) < 5 * values.std() / math.sqrt(len(values))
    # ten particles each: the same spread (one particle would have ten times the variance)
    assert 0.55 < vec.var() / seq.var() < 1.8


def test_ten_vectorized_particles_cut_the_loss_variance_tenfold():
    # Ten independent particles, averaged: a tenth of one particle's variance (chapter 9's
    # particles section). One particle's loss is heavy-tailed here (kurtosis about 15), so a
    # variance from 2000 draws has a relative standard error of about sqrt(14 / 2000) = 8%, and
    # the ratio one of about 9%: the bounds are five of them, on a log scale.
    model, guide = plated_coin(ppl, dist)
    ppl.set_rng_seed(0)
    variances = []
    for elbo in (Trace_ELBO(), Trace_ELBO(num_particles=10, vectorize_particles=True)):
        losses = torch.tensor([elbo.loss(model, guide, FLIPS) for _ in range(2000)])
        variances.append(losses.var())
    assert 5 < variances[0] / variances[1] < 20


def test_vectorized_loss_and_gradients_equal_pyros_for_the_same_seed():
    for build, x in ((plated_coin, FLIPS), (grid_mixture, GRID_X)):
        model, guide = build(ppl, dist)
        pmodel, pguide = build(pyro, pdist)
        for seed in range(2):
            ppl.set_rng_seed(seed)
            ours = Trace_ELBO(
                num_particles=10, vectorize_particles=True
            ).differentiable_loss(model, guide, x)
            pyro.set_rng_seed(seed)
            theirs = pyro.infer.Trace_ELBO(
                num_particles=10, vectorize_particles=True
            ).differentiable_loss(pmodel, pguide, x)
            torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-4)
            names = sorted(ppl.get_param_store().keys())
            grads = torch.autograd.grad(
                ours, [ppl.param(n).unconstrained() for n in names]
            )
            pyro_grads = torch.autograd.grad(
                theirs, [pyro.param(n).unconstrained() for n in names]
            )
            for name, ga, gb in zip(names, grads, pyro_grads):
                torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-5, msg=name)
        ppl.clear_param_store()
        pyro.clear_param_store()


_REG_GEN = torch.Generator().manual_seed(2)
REG_A = torch.cat([torch.randn(200, 3, generator=_REG_GEN), torch.ones(200, 1)], 1)
REG_Y = REG_A @ torch.tensor([1.5, -0.7, 0.3, 0.5]) + torch.randn(
    200, generator=_REG_GEN
)


def minibatch_regression(P, D, predict):
    # chapter 9's regression, stacked: beta = (w, b) and A = [X, 1]; predict(A[idx], beta)
    def model(A, y):
        beta = P.sample("beta", D.Normal(torch.zeros(4), 10.0).to_event(1))
        with P.plate("data", len(A), subsample_size=40) as idx:
            P.sample("y", D.Normal(predict(A[idx], beta), 1.0), obs=y[idx])

    def guide(A, y):
        loc = P.param("loc", torch.zeros(4))
        scale = P.param("scale", torch.ones(4), constraint=D.constraints.positive)
        P.sample("beta", D.Normal(loc, scale).to_event(1))

    return model, guide


def broadcast_predict(A, beta):
    return (A * beta).sum(-1)  # A @ beta, for any batch dims of beta on the left


def test_a_model_that_broadcasts_vectorizes_and_equals_pyros_for_the_same_seed():
    model, guide = minibatch_regression(ppl, dist, broadcast_predict)
    pmodel, pguide = minibatch_regression(pyro, pdist, broadcast_predict)
    elbo = Trace_ELBO(num_particles=6, vectorize_particles=True, max_plate_nesting=1)
    vec_model, vec_guide = elbo._vectorize(model, guide, (REG_A, REG_Y), {})
    model_trace = poutine.trace(vec_model).get_trace(REG_A, REG_Y)
    assert model_trace.nodes["y"]["fn"].batch_shape == (6, 40)  # particles by data
    for seed in range(2):
        ppl.set_rng_seed(seed)
        ours = elbo.differentiable_loss(model, guide, REG_A, REG_Y)
        pyro.set_rng_seed(seed)
        theirs = pyro.infer.Trace_ELBO(
            num_particles=6, vectorize_particles=True, max_plate_nesting=1
        ).differentiable_loss(pmodel, pguide, REG_A, REG_Y)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-3)
        for name in ("loc", "scale"):
            (grad,) = torch.autograd.grad(
                ours, ppl.param(name).unconstrained(), retain_graph=True
            )
            (pyro_grad,) = torch.autograd.grad(
                theirs, pyro.param(name).unconstrained(), retain_graph=True
            )
            torch.testing.assert_close(grad, pyro_grad, rtol=1e-5, atol=1e-3, msg=name)
    assert_clean()


def test_a_model_with_a_matmul_fails_with_vectorized_particles_and_leaves_nothing_behind():
    model, guide = minibatch_regression(ppl, dist, lambda A, beta: A @ beta)
    assert math.isfinite(Trace_ELBO().loss(model, guide, REG_A, REG_Y))  # one particle
    elbo = Trace_ELBO(num_particles=6, vectorize_particles=True, max_plate_nesting=1)
    with pytest.raises(RuntimeError):  # the particle dim of beta breaks the matmul
        elbo.loss(model, guide, REG_A, REG_Y)
    assert_clean()


def one_flip(P, D):
    def model(x):
        z = P.sample("z", D.Beta(2.0, 2.0))
        SHAPES.append(tuple(z.shape))
        P.sample("x", D.Bernoulli(z), obs=x)

    def guide(x):
        P.sample(
            "z",
            D.Beta(
                P.param("a", torch.tensor(3.0), constraint=D.constraints.positive), 2.0
            ),
        )

    return model, guide


def two_plates(P, D):
    def model(x):
        mu = P.sample("mu", D.Normal(0.0, 1.0))
        SHAPES.append(tuple(mu.shape))
        with P.plate("rows", x.shape[0], dim=-2):
            with P.plate("cols", x.shape[1]):
                P.sample("x", D.Normal(mu, 1.0), obs=x)

    def guide(x):
        P.sample("mu", D.Normal(P.param("m", torch.tensor(0.0)), 1.0))

    return model, guide


@pytest.mark.parametrize(
    "build, x, nesting",
    [
        (one_flip, torch.tensor(1.0), 0),
        (plated_coin, FLIPS, 1),
        (two_plates, GRID_X, 2),
    ],
)
def test_max_plate_nesting_is_guessed_and_the_particles_sit_left_of_the_plates(
    build, x, nesting
):
    model, guide = build(ppl, dist)
    elbo = Trace_ELBO(num_particles=7, vectorize_particles=True)
    SHAPES.clear()
    elbo.loss(model, guide, x)
    assert elbo.max_plate_nesting == nesting
    # the guess runs the programs once (one particle), then the particle plate is at -(nesting + 1)
    assert SHAPES == [(), (7,) + (1,) * nesting]
    SHAPES.clear()
    elbo.loss(model, guide, x)  # guessed once only
    assert SHAPES == [(7,) + (1,) * nesting]
    # given explicitly, it is used as given
    SHAPES.clear()
    Trace_ELBO(num_particles=7, vectorize_particles=True, max_plate_nesting=3).loss(
        model, guide, x
    )
    assert SHAPES == [(7, 1, 1, 1)]
    assert_clean()


# --- SVI with minibatches: Bayesian linear regression --------------------------------------------


def test_svi_with_minibatches_reaches_the_closed_form_posterior():
    gen = torch.Generator().manual_seed(0)
    n, b, sigma, prior_sd = 2000, 400, 1.0, 10.0
    x = torch.randn(n, 2, generator=gen)
    y = x @ torch.tensor([1.5, -0.7]) + 0.5 + sigma * torch.randn(n, generator=gen)
    design = torch.cat([x, torch.ones(n, 1)], 1)
    precision = torch.eye(3) / prior_sd**2 + design.T @ design / sigma**2
    post_mean = torch.linalg.solve(precision, design.T @ y / sigma**2)
    post_sd = torch.linalg.inv(precision).diag().sqrt()
    mean_field_sd = precision.diag().rsqrt()  # the optimum of a mean-field Normal guide

    def model(x, y):
        w = ppl.sample("w", dist.Normal(0.0, prior_sd).expand([2]).to_event(1))
        bias = ppl.sample("b", dist.Normal(0.0, prior_sd))
        with ppl.plate("data", n, subsample_size=b) as idx:
            ppl.sample("obs", dist.Normal(x[idx] @ w + bias, sigma), obs=y[idx])

    def guide(x, y):
        w_loc = ppl.param("w_loc", torch.zeros(2))
        w_scale = ppl.param(
            "w_scale", torch.full((2,), 0.1), constraint=constraints.positive
        )
        b_loc = ppl.param("b_loc", torch.tensor(0.0))
        b_scale = ppl.param(
            "b_scale", torch.tensor(0.1), constraint=constraints.positive
        )
        ppl.sample("w", dist.Normal(w_loc, w_scale).to_event(1))
        ppl.sample("b", dist.Normal(b_loc, b_scale))

    steps = 800
    ppl.set_rng_seed(0)
    svi = SVI(
        model,
        guide,
        ppl.optim.ClippedAdam({"lr": 0.05, "lrd": 0.1 ** (1 / steps)}),
        Trace_ELBO(),
    )
    iterates = []
    for step in range(steps):
        svi.step(x, y)
        if step >= steps // 2:
            iterates.append(
                torch.cat(
                    [
                        ppl.param("w_loc"),
                        ppl.param("b_loc")[None],
                        ppl.param("w_scale"),
                        ppl.param("b_scale")[None],
                    ]
                ).detach()
            )
    average = torch.stack(iterates).mean(0)
    assert ((average[:3] - post_mean).abs() / post_sd).max() < 0.5
    # (without the plate's N / B scale, the scales would come out sqrt(N / B) = 2.2 times too wide)
    ratio = average[3:] / mean_field_sd
    assert ((ratio > 0.8) & (ratio < 1.2)).all(), ratio


# --- TraceMeanField_ELBO and the model-guide check ----------------------------------------------

NORMAL_X = torch.tensor([0.9, 1.7, 1.2, 2.3, 0.4, -0.3])


def normal_mean(P, D, guide_has_plate, subsample_size=None):
    def model(x):
        mu = P.sample("mu", D.Normal(0.0, 1.0))
        with P.plate("data", len(x), subsample_size=subsample_size) as idx:
            P.sample("x", D.Normal(mu, 1.0), obs=x[idx])

    def guide(x):
        m = P.param("m", torch.tensor(0.2))
        s = P.param("s", torch.tensor(0.9), constraint=D.constraints.positive)
        P.sample("mu", D.Normal(m, s))
        if guide_has_plate:
            with P.plate("data", len(x), subsample_size=subsample_size):
                pass

    return model, guide


def closed_form_normal_elbo(m=0.2, s=0.9):
    expected_log_lik = (
        (-0.5 * math.log(2 * math.pi) - ((NORMAL_X - m) ** 2 + s**2) / 2).sum().item()
    )
    kl = torch.distributions.kl_divergence(
        dist.Normal(torch.tensor(m), torch.tensor(s)), dist.Normal(0.0, 1.0)
    ).item()
    return expected_log_lik - kl


@pytest.mark.parametrize("guide_has_plate", [True, False])
@pytest.mark.parametrize("subsample_size", [None, 3])
def test_mean_field_loss_with_or_without_the_plate_in_the_guide_equals_pyros(
    guide_has_plate, subsample_size
):
    model, guide = normal_mean(ppl, dist, guide_has_plate, subsample_size)
    pmodel, pguide = normal_mean(pyro, pdist, guide_has_plate, subsample_size)
    for seed in range(3):
        ppl.set_rng_seed(seed)
        ours = TraceMeanField_ELBO().loss(model, guide, NORMAL_X)
        pyro.set_rng_seed(seed)
        theirs = pyro.infer.TraceMeanField_ELBO().loss(pmodel, pguide, NORMAL_X)
        assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("guide_has_plate", [True, False])
@pytest.mark.parametrize("subsample_size", [None, 3])
def test_mean_field_elbo_with_or_without_the_plate_in_the_guide_is_unbiased(
    guide_has_plate, subsample_size
):
    model, guide = normal_mean(ppl, dist, guide_has_plate, subsample_size)
    ppl.set_rng_seed(0)
    values = torch.tensor(
        [-TraceMeanField_ELBO().loss(model, guide, NORMAL_X) for _ in range(1500)]
    )
    se = values.std() / math.sqrt(len(values))
    assert abs(values.mean() - closed_form_normal_elbo()) < 5 * se


def test_model_guide_check_ignores_the_plate_site_but_not_a_missing_latent():
    model, guide = normal_mean(ppl, dist, guide_has_plate=False, subsample_size=3)
    guide_trace = poutine.trace(guide).get_trace(NORMAL_X)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(
        NORMAL_X
    )
    assert "data" in model_trace.nodes and "data" not in guide_trace.nodes
    check_model_guide_match(model_trace, guide_trace)  # does not raise
    Trace_ELBO().loss(model, guide, NORMAL_X)  # nor does the ELBO, with validation on

    def guide_without_mu(x):
        with ppl.plate("data", len(x), subsample_size=3):
            pass

    with pytest.raises(ValueError, match="model site 'mu' is latent"):
        Trace_ELBO().loss(model, guide_without_mu, NORMAL_X)


def test_subsample_size_larger_than_size_names_the_plate():
    with pytest.raises(
        ValueError, match=r"plate 'data': subsample_size=5 is larger than size=3"
    ):
        ppl.plate("data", 3, subsample_size=5)
    assert_clean()


# --- user-given and replayed subsample indices ------------------------------------------------------


@pytest.mark.parametrize(
    "subsample, size, match",
    [
        (
            torch.tensor([0, 5]),
            3,
            r"plate 'p' of size 3: the subsample indices must lie in range\(3\), got 5",
        ),
        (torch.tensor([-1, 0]), 3, r"must lie in range\(3\), got -1"),
        # size defaults to len(subsample)
        ([0, 2, 3], None, r"must lie in range\(3\), got 3"),
        (
            torch.tensor([0.0, 1.0]),
            3,
            r"plate 'p': the subsample must be a 1-D tensor of integer indices \(int64 or int32\), got dtype torch.float32",
        ),
        (
            torch.tensor([True, False, True]),
            3,
            r"got dtype torch.bool.*mask.nonzero\(\).squeeze\(-1\)",
        ),
        (torch.tensor([[0, 1]]), 3, r"1-D tensor of integer indices .* shape \(1, 2\)"),
        (torch.tensor(1), 3, r"1-D tensor of integer indices .* shape \(\)"),
        (torch.tensor([], dtype=torch.long), 3, r"plate 'p': the subsample is empty"),
    ],
)
def test_bad_subsample_indices_name_the_plate(subsample, size, match):
    # Pyro accepts all of these but the empty one (ZeroDivisionError); index 5 would scale by 3 / 2.
    with pytest.raises(ValueError, match=match):
        ppl.plate("p", size, subsample=subsample)
    # under a handler: the indices are a sample site
    with pytest.raises(ValueError, match=match):
        poutine.trace(lambda: ppl.plate("p", size, subsample=subsample)).get_trace()
    assert_clean()


def test_good_subsample_indices_are_accepted_as_pyro_does():
    # Repeated indices (a minibatch drawn with replacement) and int32 indices are fine.
    for subsample in [
        torch.tensor([2, 2, 0]),
        torch.tensor([1, 0], dtype=torch.int32),
        [0, 2],
    ]:
        with ppl.plate("p", 3, subsample=subsample) as idx:
            x = ppl.sample("x", dist.Normal(torch.arange(3.0)[idx], 1.0))
        assert x.shape == (len(subsample),)
        assert idx.tolist() == list(subsample)


def test_replayed_indices_out_of_range_name_the_plate():
    # The guide's plate has 10 indices, the model's 3: the replayed minibatch does not fit the model.
    def guide():
        with ppl.plate("data", 10, subsample_size=3):
            pass

    def model():
        with ppl.plate("data", 3):
            pass

    ppl.set_rng_seed(0)
    guide_trace = poutine.trace(guide).get_trace()
    # seeded: an index the model's plate lacks
    assert guide_trace.nodes["data"]["value"].max() >= 3
    with pytest.raises(
        ValueError,
        match=r"plate 'data' of size 3: the subsample indices must lie in range\(3\)",
    ):
        poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace()
    assert_clean()


def test_the_range_check_is_skipped_when_validation_is_off():
    # It is the one check that reads the indices' values (a reduction); the others look at the
    # dtype and the shape only, and stay on.
    ppl.enable_validation(False)
    with ppl.plate("p", 3, subsample=torch.tensor([0, 5])) as idx:
        pass
    assert idx.tolist() == [0, 5]
    with pytest.raises(ValueError, match="integer indices"):
        ppl.plate("p", 3, subsample=torch.tensor([0.0, 1.0]))


# --- threads: each has its own plate dims ---------------------------------------------------------


def test_each_thread_has_its_own_dim_allocator(run_in_threads):
    barrier = threading.Barrier(2, timeout=5)

    def claim():
        dim = DIM_ALLOCATOR.allocate("data", None)
        barrier.wait()  # both threads hold a plate named "data" now
        active = DIM_ALLOCATOR.active
        barrier.wait()
        DIM_ALLOCATOR.free("data", dim)
        return dim, active, DIM_ALLOCATOR.active

    assert run_in_threads(claim, claim, barrier=barrier) == [(-1, {-1: "data"}, {})] * 2
    assert DIM_ALLOCATOR.active == {} and isinstance(DIM_ALLOCATOR, DimAllocator)


def test_two_threads_running_plated_programs_get_their_own_dims_and_frames(
    run_in_threads,
):
    # The same plate names in both threads, entered in lockstep; the sizes tell the threads apart.
    barrier = threading.Barrier(2, timeout=5)

    def program(n):
        def model():
            with ppl.plate("data", n):
                with ppl.plate("inner", n + 1, dim=-3):
                    barrier.wait()  # both threads are inside both plates
                    ppl.sample("x", dist.Normal(0.0, 1.0))
                    active = DIM_ALLOCATOR.active
                barrier.wait()
                ppl.sample("y", dist.Normal(0.0, 1.0))
            return active

        def run():
            traces = [poutine.trace(model).get_trace() for _ in range(5)]
            return (
                [
                    (
                        frames(tr.nodes["x"]),
                        frames(tr.nodes["y"]),
                        tr.nodes["x"]["value"].shape,
                        tr.nodes["_RETURN"]["value"],
                    )
                    for tr in traces
                ],
                DIM_ALLOCATOR.active,
                list(get_stack()),
            )

        return run

    results = run_in_threads(program(2), program(4), barrier=barrier)
    for n, (per_run, active_after, stack_after) in zip([2, 4], results):
        expected = (
            (("data", -1, n, 0, n), ("inner", -3, n + 1, 0, n + 1)),
            (("data", -1, n, 0, n),),
            (n + 1, 1, n),
            {-1: "data", -3: "inner"},
        )
        assert per_run == [expected] * 5
        assert active_after == {} and stack_after == []
    assert_clean()
