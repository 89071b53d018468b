"""Tests of ppl.handlers: Trace and every handler, as wrappers and as context managers,
their compositions, exception safety, and agreement with pyro.poutine."""

import math
import random
import threading

import pyro  # first imported, with its warning silenced, in conftest.py
import pyro.distributions as pdist
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from programs import FLIPS
from pyro import poutine as pyro_poutine

import ppl.distributions as dist
import ppl.primitives as primitives
from ppl import handlers as poutine
from ppl.distributions import constraints
from ppl.handlers import (
    BlockMessenger,
    Trace,
    TraceMessenger,
    block,
    condition,
    fix_latents,
    mask,
    replay,
    scale,
    scale_and_mask,
    seed,
    substitute,
    trace,
)
from ppl.params import get_param_store
from ppl.primitives import module, param, sample
from ppl.runtime import enable_validation, get_stack

pytestmark = pytest.mark.usefixtures("clean_state")


def coin(flips=FLIPS):
    z = sample("z", dist.Beta(2.0, 2.0))
    sample("x", dist.Bernoulli(z).expand([len(flips)]).to_event(1), obs=flips)
    return z


def coin_log_joint(z, flips=FLIPS):
    heads, tails = flips.sum(), (1 - flips).sum()
    return (
        dist.Beta(2.0, 2.0).log_prob(z) + heads * torch.log(z) + tails * torch.log1p(-z)
    )


def normal_model(x=torch.tensor(1.2)):
    theta = param("theta", torch.tensor(0.3))
    z = sample("z", dist.Normal(theta, 1.0))
    sample("x", dist.Normal(z, 0.5), obs=x)
    return z


def normal_log_joint(theta, z, x=torch.tensor(1.2)):
    return dist.Normal(theta, 1.0).log_prob(z) + dist.Normal(z, 0.5).log_prob(x)


def sample_names(tr):
    return [name for name, site in tr.nodes.items() if site["type"] == "sample"]


# --- trace and Trace ---------------------------------------------------------------------------


def test_trace_as_wrapper_records_sites_input_and_return():
    torch.manual_seed(0)
    tr = trace(coin).get_trace(FLIPS)
    assert list(tr.nodes) == ["_INPUT", "z", "x", "_RETURN"]
    assert tr.nodes["_INPUT"]["type"] == "args" and tr.nodes["_INPUT"]["args"] == (
        FLIPS,
    )
    assert (
        tr.nodes["_RETURN"]["type"] == "return"
        and tr.nodes["_RETURN"]["value"] is tr.nodes["z"]["value"]
    )
    z = tr.nodes["z"]
    for key in (
        "type",
        "name",
        "fn",
        "value",
        "is_observed",
        "infer",
        "scale",
        "mask",
        "cond_indep_stack",
        "args",
        "kwargs",
    ):
        assert key in z
    assert (
        not z["is_observed"]
        and tr.nodes["x"]["is_observed"]
        and tr.nodes["x"]["value"] is FLIPS
    )


def test_trace_as_context_manager_exposes_tr_trace():
    torch.manual_seed(0)
    with trace() as tr:
        z = coin()
    assert isinstance(tr, TraceMessenger) and list(tr.trace.nodes) == ["z", "x"]
    assert tr.trace.nodes["z"]["value"] is z
    with tr:  # a handler can be re-entered after it exited: a fresh trace each time
        sample("other", dist.Normal(0.0, 1.0))
    assert list(tr.trace.nodes) == ["other"]


def test_trace_handler_trace_property_and_fresh_trace_per_call():
    traced = trace(coin)
    torch.manual_seed(0)
    first = traced.get_trace()
    second = traced.get_trace()
    assert traced.trace.nodes["z"]["value"] is second.nodes["z"]["value"]
    assert first.nodes["z"]["value"] is not second.nodes["z"]["value"]
    assert traced() is traced.trace.nodes["_RETURN"]["value"]


def test_trace_log_prob_sum_equals_hand_written_density_coin():
    torch.manual_seed(1)
    for _ in range(5):
        tr = trace(coin).get_trace()
        assert torch.allclose(tr.log_prob_sum(), coin_log_joint(tr.nodes["z"]["value"]))


def test_trace_log_prob_sum_equals_hand_written_density_with_param():
    torch.manual_seed(2)
    tr = trace(normal_model).get_trace()
    expected = normal_log_joint(torch.tensor(0.3), tr.nodes["z"]["value"])
    assert torch.allclose(tr.log_prob_sum(), expected)
    assert (
        tr.param_nodes == ["theta"]
        and tr.stochastic_nodes == ["z"]
        and tr.observation_nodes == ["x"]
    )


def test_log_prob_sum_site_filter_and_memoization():
    torch.manual_seed(3)
    tr = trace(coin).get_trace()
    z = tr.nodes["z"]["value"]
    only_prior = tr.log_prob_sum(lambda name, site: not site["is_observed"])
    assert torch.allclose(only_prior, dist.Beta(2.0, 2.0).log_prob(z))
    assert (
        tr.nodes["z"]["log_prob_sum"] is not None
        and "log_prob_sum" not in tr.nodes["x"]
    )
    # memoized sums are reused, as in Pyro
    tr.nodes["z"]["log_prob_sum"] = torch.tensor(100.0)
    assert torch.allclose(tr.log_prob_sum(lambda n, s: n == "z"), torch.tensor(100.0))


def test_compute_log_prob_stores_batched_log_probs():
    data = torch.tensor([0.5, -1.0, 2.0])

    def model():
        sample("x", dist.Normal(0.0, 1.0).expand([3]), obs=data)

    with scale(scale=2.0):
        with trace() as tr:
            model()
    tr.trace.compute_log_prob()
    site = tr.trace.nodes["x"]
    assert torch.allclose(
        site["unscaled_log_prob"], dist.Normal(0.0, 1.0).log_prob(data)
    )
    assert torch.allclose(site["log_prob"], 2.0 * site["unscaled_log_prob"])
    assert torch.allclose(site["log_prob_sum"], site["log_prob"].sum())


def test_empty_trace_log_prob_sum_is_zero():
    tr = trace(lambda: param("p", torch.tensor(1.0))).get_trace()
    assert tr.log_prob_sum() == 0.0


def test_reparameterized_and_nonreparam_nodes():
    def model():
        sample("a", dist.Normal(0.0, 1.0))
        sample("b", dist.Bernoulli(0.5))
        sample("c", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))

    tr = trace(model).get_trace()
    assert tr.reparameterized_nodes == ["a"] and tr.nonreparam_stochastic_nodes == ["b"]
    assert [name for name, _ in tr.iter_stochastic_nodes()] == ["a", "b"]


def test_get_trace_returns_a_copy_of_nodes():
    traced = trace(coin)
    tr = traced.get_trace()
    tr.remove_node("z")
    assert (
        "z" in traced.trace
        and "z" not in tr
        and len(tr) == 3
        and list(tr) == ["_INPUT", "x", "_RETURN"]
    )
    assert tr.copy().nodes == tr.nodes and tr.copy().nodes is not tr.nodes


def test_trace_keeps_a_copy_of_each_message():
    class Mutate(poutine.Messenger):
        def postprocess_message(self, msg):
            msg["value"] = "changed later"

    # trace is outermost: it postprocesses first, then Mutate changes msg
    with trace() as tr:
        with Mutate():
            sample("z", dist.Normal(0.0, 1.0))
    assert isinstance(tr.trace.nodes["z"]["value"], torch.Tensor)


def test_duplicate_sample_site_raises_naming_the_site():
    def model():
        sample("theta_hat", dist.Normal(0.0, 1.0))
        sample("theta_hat", dist.Normal(0.0, 1.0))

    with pytest.raises(RuntimeError, match="'theta_hat'") as info:
        trace(model).get_trace()
    assert "its own name" in str(info.value)
    assert get_stack() == []


def test_sample_site_reusing_a_param_name_raises():
    def model():
        param("w", torch.tensor(1.0))
        sample("w", dist.Normal(0.0, 1.0))

    with pytest.raises(
        RuntimeError, match="'w' is already in the trace as a param site"
    ):
        trace(model).get_trace()


def test_trace_param_only_and_graph_type():
    tr = trace(normal_model, param_only=True).get_trace()
    assert [n for n in tr.nodes if n[0] != "_"] == ["theta"]
    assert trace(normal_model, graph_type="flat").get_trace().stochastic_nodes == ["z"]
    with pytest.raises(NotImplementedError, match="dense"):
        trace(normal_model, graph_type="dense")


def test_log_prob_error_names_the_site():
    tr = Trace()
    tr.add_node(
        "bad",
        type="sample",
        name="bad",
        fn=dist.MultivariateNormal(torch.zeros(2), torch.eye(2)),
        value=torch.zeros(3),
        args=(),
        kwargs={},
        scale=1.0,
        mask=None,
        is_observed=True,
    )
    with pytest.raises(ValueError, match="at site 'bad'"):
        tr.log_prob_sum()


def shapes_model(P, D):
    # one program for ppl and Pyro: P gives param and sample, D the distributions
    loc = P.param("loc", torch.zeros(3))
    P.sample("a", D.Normal(0.0, 1.0))
    P.sample("b", D.Normal(loc, 1.0).to_event(1))
    P.sample(
        "c", D.Normal(torch.zeros(2, 3), 1.0).to_event(1), obs=torch.zeros(4, 2, 3)
    )
    P.sample("d", D.Bernoulli(0.5).expand([5]), obs=torch.ones(5))


@pytest.mark.parametrize(
    "last_site, log_probs", [(None, False), (None, True), ("b", False)]
)
def test_format_shapes_is_pyros_table(last_site, log_probs):
    ours = trace(seed(lambda: shapes_model(primitives, dist), rng_seed=0)).get_trace()
    theirs = pyro_poutine.trace(
        pyro_poutine.seed(lambda: shapes_model(pyro, pdist), rng_seed=0)
    ).get_trace()
    if log_probs:
        ours.compute_log_prob()
        theirs.compute_log_prob()
    expected = [
        line.rstrip() for line in theirs.format_shapes(last_site=last_site).splitlines()
    ]
    assert ours.format_shapes(last_site=last_site).splitlines() == expected
    assert (
        Trace().format_shapes()
        == pyro_poutine.Trace().format_shapes()
        == "Trace Shapes:"
    )


def bad_scale_model():
    sample("a", dist.Normal(0.0, 1.0))
    raw_scale = torch.tensor(-1.0)
    sample("x", dist.Normal(0.0, raw_scale))


def test_an_error_in_a_traced_program_gets_a_note_with_the_line_and_the_shapes():
    # torch's own message
    with pytest.raises(ValueError, match="Expected parameter scale") as info:
        trace(bad_scale_model).get_trace()
    (note,) = info.value.__notes__
    line = bad_scale_model.__code__.co_firstlineno + 3
    assert "bad_scale_model" in note and "after site 'a'" in note
    assert (
        f'in bad_scale_model, line {line}: sample("x", dist.Normal(0.0, raw_scale))'
        in note
    )
    assert "Trace Shapes:" in note and "a dist" in note and "x dist" not in note
    assert get_stack() == []


def test_the_note_names_the_innermost_program_once():
    def outer():
        sample("o", dist.Normal(0.0, 1.0))
        trace(bad_scale_model)()

    with pytest.raises(ValueError) as info:
        trace(replay(outer, trace=Trace())).get_trace()
    (note,) = info.value.__notes__
    assert "bad_scale_model" in note and "after site 'a'" in note
    assert get_stack() == []


def test_a_log_prob_error_of_any_type_names_the_site_and_shows_the_shapes():
    # torch then fails with its own RuntimeError: shapes do not broadcast
    with validation_off():
        tr = trace(
            lambda: sample("y", dist.Normal(torch.zeros(3), 1.0), obs=torch.zeros(2))
        ).get_trace()
        with pytest.raises(RuntimeError) as info:
            tr.log_prob_sum()
    assert (
        "at site 'y'" in info.value.__notes__[0]
        and "Trace Shapes:" in info.value.__notes__[0]
    )


@pytest.mark.parametrize(
    "handler, kwargs",
    [
        (scale, {"scale": torch.ones(4)}),
        (mask, {"mask": torch.ones(4, dtype=torch.bool)}),
    ],
)
def test_a_scale_or_mask_of_the_wrong_shape_names_the_site_and_the_handler(
    handler, kwargs
):
    what = handler.__name__
    with trace() as tr:
        with handler(**kwargs):
            sample("x", dist.Normal(torch.zeros(3), 1.0), obs=torch.zeros(3))
    for score in (tr.trace.log_prob_sum, tr.trace.compute_log_prob):
        with pytest.raises(ValueError, match=rf"site 'x'.*{what}.*\(4,\).*\(3,\)"):
            score()


def test_nested_masks_of_clashing_shapes_name_the_site():
    with pytest.raises(ValueError, match=r"site 'x'.*mask.*\(2,\).*\(3,\)"):
        with mask(mask=torch.ones(2, dtype=torch.bool)):
            with mask(mask=torch.ones(3, dtype=torch.bool)):
                sample("x", dist.Normal(torch.zeros(3), 1.0), obs=torch.zeros(3))
    with pytest.raises(ValueError, match=r"site 'x'.*scale.*\(2,\).*\(3,\)"):
        with scale(scale=torch.ones(2)):
            with scale(scale=torch.ones(3)):
                sample("x", dist.Normal(torch.zeros(3), 1.0), obs=torch.zeros(3))
    assert get_stack() == []


def test_two_threads_trace_their_own_programs(run_in_threads):
    barrier = threading.Barrier(2, timeout=10)

    def program(value):
        def model():
            barrier.wait()  # both threads have entered their handlers
            sample("z", dist.Normal(0.0, 1.0))
            barrier.wait()  # both have sent "z"
            sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(value))
            barrier.wait()

        return lambda: trace(
            condition(model, data={"z": torch.tensor(value)})
        ).get_trace()

    values = (1.0, 2.0)
    traces = dict(zip(values, run_in_threads(*map(program, values), barrier=barrier)))
    for value, tr in traces.items():
        assert sample_names(tr) == ["z", "x"]
        assert tr.nodes["z"]["value"] == value and tr.nodes["z"]["is_observed"]
        assert tr.nodes["x"]["value"] == value
    assert get_stack() == []


# --- condition ---------------------------------------------------------------------------------


def test_condition_wrapper_observes_a_site():
    z = torch.tensor(0.6)
    tr = trace(condition(coin, data={"z": z})).get_trace()
    site = tr.nodes["z"]
    assert site["value"] is z and site["is_observed"]
    assert tr.stochastic_nodes == [] and tr.observation_nodes == ["z", "x"]
    assert torch.allclose(tr.log_prob_sum(), coin_log_joint(z))


def test_condition_context_manager_and_trace_data():
    z = torch.tensor(0.25)
    with trace() as tr:
        with condition(data={"z": z}):
            coin()
    assert tr.trace.nodes["z"]["value"] is z
    source = trace(coin).get_trace()
    conditioned = trace(condition(coin, data=source)).get_trace()
    assert (
        conditioned.nodes["z"]["value"] is source.nodes["z"]["value"]
        and conditioned.nodes["z"]["is_observed"]
    )


def test_condition_with_none_leaves_the_site_latent():
    tr = trace(condition(coin, data={"z": None})).get_trace()
    assert not tr.nodes["z"]["is_observed"] and tr.nodes["z"]["value"] is not None


def test_condition_inside_or_outside_trace_gives_the_same_record():
    z = torch.tensor(0.4)
    inside = trace(condition(coin, data={"z": z})).get_trace()
    with condition(data={"z": z}):
        outside = trace(coin).get_trace()
    for tr in (inside, outside):
        assert tr.nodes["z"]["value"] is z and tr.nodes["z"]["is_observed"]
    assert torch.allclose(inside.log_prob_sum(), outside.log_prob_sum())


def test_the_outer_condition_wins():
    model = condition(
        condition(coin, data={"z": torch.tensor(0.2)}), data={"z": torch.tensor(0.8)}
    )
    assert trace(model).get_trace().nodes["z"]["value"] == torch.tensor(0.8)


def test_condition_needs_data():
    with pytest.raises(ValueError, match="data"):
        condition(coin)


# --- replay ------------------------------------------------------------------------------------


def guide():
    sample("z", dist.Beta(9.0, 5.0))


def test_replay_uses_the_guide_values_and_gives_the_elbo_term():
    torch.manual_seed(4)
    guide_tr = trace(guide).get_trace()
    model_tr = trace(replay(coin, trace=guide_tr)).get_trace()
    assert model_tr.nodes["z"]["value"] is guide_tr.nodes["z"]["value"]
    assert not model_tr.nodes["z"]["is_observed"] and model_tr.nodes["z"]["done"]
    # the guide is the exact posterior: log p(x, z) - log q(z) = log p(x), Beta(9, 5) / Beta(2, 2)
    log_evidence = (
        torch.lgamma(torch.tensor(9.0))
        + torch.lgamma(torch.tensor(5.0))
        - torch.lgamma(torch.tensor(14.0))
        - (2 * torch.lgamma(torch.tensor(2.0)) - torch.lgamma(torch.tensor(4.0)))
    )
    assert torch.allclose(
        model_tr.log_prob_sum() - guide_tr.log_prob_sum(), log_evidence, atol=1e-5
    )


def test_replay_context_manager_and_sites_missing_from_the_trace():
    guide_tr = trace(lambda: sample("unrelated", dist.Normal(0.0, 1.0))).get_trace()
    torch.manual_seed(0)
    with trace() as tr:
        with replay(trace=guide_tr):
            coin()
    torch.manual_seed(0)
    # drawn as usual
    assert torch.equal(tr.trace.nodes["z"]["value"], dist.Beta(2.0, 2.0)())
    assert "unrelated" not in tr.trace


def test_replay_leaves_observed_sites_alone():
    data_tr = trace(
        lambda: sample("x", dist.Bernoulli(0.5).expand([10]).to_event(1))
    ).get_trace()
    tr = trace(replay(coin, trace=data_tr)).get_trace()
    assert tr.nodes["x"]["value"] is FLIPS


def test_replay_of_a_site_observed_in_the_trace_raises_naming_it():
    observed_tr = trace(condition(guide, data={"z": torch.tensor(0.5)})).get_trace()
    with pytest.raises(RuntimeError, match="'z'"):
        trace(replay(coin, trace=observed_tr)).get_trace()
    assert get_stack() == []


def test_replay_params_and_requirements():
    new = torch.tensor(5.0)
    tr = trace(replay(normal_model, params={"theta": new})).get_trace()
    assert tr.nodes["theta"]["value"] is new
    with pytest.raises(ValueError, match="trace"):
        replay(coin)


# --- substitute --------------------------------------------------------------------------------


def test_substitute_replaces_params_and_fix_latents_latent_samples():
    theta, z = torch.tensor(-1.0), torch.tensor(0.5)
    tr = trace(
        fix_latents(substitute(normal_model, data={"theta": theta}), data={"z": z})
    ).get_trace()
    assert tr.nodes["theta"]["value"] is theta and tr.nodes["z"]["value"] is z
    assert not tr.nodes["z"]["is_observed"]  # substituted, still latent
    assert torch.allclose(tr.log_prob_sum(), normal_log_joint(theta, z))
    # substituted before the store was asked, as in Pyro
    assert "theta" not in get_param_store()


def test_fix_latents_context_manager_leaves_observed_sites_alone():
    with trace() as tr:
        with fix_latents(data={"x": torch.zeros(10)}):
            coin()
    assert tr.trace.nodes["x"]["value"] is FLIPS


def test_substitute_matches_module_params_by_short_name_only_as_pyro():
    torch.manual_seed(0)
    net = torch.nn.Linear(2, 1)
    short = torch.zeros(1, 2)
    full = torch.ones(1)
    with pytest.warns(UserWarning, match=r"no param site matched \['net\$\$\$bias'\]"):
        tr = trace(
            substitute(
                lambda: module("net", net, update_module_params=True),
                data={"weight": short, "net$$$bias": full},
            )
        ).get_trace()
    # Pyro's user_param_name: "net$$$weight" is looked up as "weight", never in full
    assert tr.nodes["net$$$weight"]["value"] is short and net.weight is short
    assert tr.nodes["net$$$bias"]["value"] is net.bias


def test_replay_then_fix_latents_and_fix_latents_then_replay():
    torch.manual_seed(5)
    guide_tr = trace(guide).get_trace()
    mine = torch.tensor(0.1)
    # the outer handler acts last on the way down, so it has the last word
    outer_fix = trace(
        fix_latents(replay(coin, trace=guide_tr), data={"z": mine})
    ).get_trace()
    outer_replay = trace(
        replay(fix_latents(coin, data={"z": mine}), trace=guide_tr)
    ).get_trace()
    assert outer_fix.nodes["z"]["value"] is mine
    assert outer_replay.nodes["z"]["value"] is guide_tr.nodes["z"]["value"]


def test_substitute_needs_data():
    with pytest.raises(ValueError, match="data"):
        substitute(coin)


# --- block -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, seen",
    [
        ({}, []),
        ({"hide": ["z"]}, ["theta", "x"]),
        ({"expose": ["z"]}, ["z"]),
        ({"hide_types": ["observe"]}, ["theta", "z"]),
        ({"hide_types": ["param"]}, ["z", "x"]),
        ({"expose_types": ["param"]}, ["theta"]),
        ({"expose_types": ["sample"]}, ["z"]),
        ({"hide": ["z"], "expose_types": ["param"]}, ["theta"]),
        # Pyro's order of the rules
        ({"hide_types": ["observe"], "expose_types": ["param"]}, ["theta"]),
        ({"expose": ["z"], "hide_types": ["param"]}, ["z", "x"]),
        ({"hide_all": False, "expose_all": True}, ["theta", "z", "x"]),
        ({"hide_fn": lambda msg: msg["name"] == "x"}, ["theta", "z"]),
        ({"expose_fn": lambda msg: msg["type"] == "param"}, ["theta"]),
    ],
)
def test_block_hides_sites_from_an_outer_trace_like_pyro(kwargs, seen):
    ours = trace(block(normal_model, **kwargs)).get_trace()
    assert [n for n in ours.nodes if n[0] != "_"] == seen
    pyro_model = make_pyro_style_model(pyro, pdist)
    theirs = pyro_poutine.trace(pyro_poutine.block(pyro_model, **kwargs)).get_trace()
    assert [n for n in theirs.nodes if n[0] != "_"] == seen


def test_block_does_not_hide_from_handlers_inside_it():
    inner = trace(coin)
    with trace() as outer:
        block(inner, hide=["z"])()
    assert "z" in inner.trace and "z" not in outer.trace and "x" in outer.trace


def test_block_separates_nested_programs():
    def model_with_init():
        with block():
            guide_tr = trace(guide).get_trace()
        coin()
        return guide_tr

    tr = trace(model_with_init).get_trace()
    assert sample_names(tr) == ["z", "x"] and sample_names(
        tr.nodes["_RETURN"]["value"]
    ) == ["z"]


def test_block_argument_errors():
    with pytest.raises(ValueError, match="not both"):
        block(hide_fn=lambda m: True, expose_fn=lambda m: True)
    with pytest.raises(ValueError, match="both"):
        BlockMessenger(hide=["z"], expose=["z"])
    with pytest.raises(ValueError, match="hide_all"):
        block(hide_all=True, expose_all=True)


# --- seed --------------------------------------------------------------------------------------


def test_seed_gives_the_same_draws_and_restores_the_rng():
    torch.manual_seed(7)
    random.seed(7)
    expected_torch, expected_random = torch.rand(()), random.random()
    torch.manual_seed(7)
    random.seed(7)
    seeded = trace(seed(coin, rng_seed=3))
    a, b = seeded.get_trace(), seeded.get_trace()
    assert torch.equal(a.nodes["z"]["value"], b.nodes["z"]["value"])
    assert (
        torch.equal(torch.rand(()), expected_torch)
        and random.random() == expected_random
    )


def test_seed_context_manager_is_not_on_the_stack_and_matches_set_rng_seed():
    with seed(rng_seed=11) as s:
        assert get_stack() == [] and s.rng_seed == 11
        inside = torch.rand(3)
    torch.manual_seed(11)
    assert torch.equal(inside, torch.rand(3))


def test_seed_restores_the_rng_after_an_exception():
    torch.manual_seed(8)
    expected = torch.rand(())
    torch.manual_seed(8)

    def failing():
        torch.rand(5)
        raise RuntimeError("x")

    with pytest.raises(RuntimeError):
        seed(failing, rng_seed=0)()
    assert torch.equal(torch.rand(()), expected)


def test_seed_matches_pyro_draws():
    ours = trace(seed(normal_model, rng_seed=0)).get_trace()
    theirs = pyro_poutine.trace(
        pyro_poutine.seed(make_pyro_style_model(pyro, pdist), rng_seed=0)
    ).get_trace()
    assert torch.equal(ours.nodes["z"]["value"], theirs.nodes["z"]["value"])


def test_seed_requires_an_int():
    with pytest.raises(TypeError, match="int"):
        seed(coin, rng_seed=None)


# --- scale and mask ----------------------------------------------------------------------------


def test_scale_multiplies_log_prob_sum_and_nests():
    z = torch.tensor(0.3)
    base = trace(condition(coin, data={"z": z})).get_trace().log_prob_sum()
    scaled = trace(scale(condition(coin, data={"z": z}), scale=3.0)).get_trace()
    assert (
        torch.allclose(scaled.log_prob_sum(), 3.0 * base)
        and scaled.nodes["z"]["scale"] == 3.0
    )
    with trace() as tr:
        with scale(scale=2.0):
            with scale(scale=torch.tensor(0.25)):
                condition(coin, data={"z": z})()
    assert torch.allclose(tr.trace.log_prob_sum(), 0.5 * base)


@pytest.mark.parametrize("bad", [0.0, -1.0, torch.tensor([1.0, -2.0])])
def test_scale_must_be_positive(bad):
    with pytest.raises(ValueError, match="positive"):
        scale(coin, scale=bad)


def test_mask_false_zeroes_and_tensor_masks_entries():
    data = torch.tensor([0.4, -0.3, 2.5])

    def model(keep):
        z = sample("z", dist.Normal(0.0, 1.0))
        with mask(mask=keep):
            sample("x", dist.Normal(z, 1.0).expand([3]), obs=data)

    z = torch.tensor(0.2)
    keep = torch.tensor([True, False, True])
    tr = trace(condition(model, data={"z": z})).get_trace(keep)
    expected = (
        dist.Normal(0.0, 1.0).log_prob(z)
        + dist.Normal(z, 1.0).log_prob(data[[0, 2]]).sum()
    )
    assert torch.allclose(tr.log_prob_sum(), expected)
    everything_masked = trace(
        mask(condition(model, data={"z": z}), mask=False)
    ).get_trace(keep)
    assert everything_masked.log_prob_sum() == 0.0


def test_nested_masks_combine_by_and():
    a, b = torch.tensor([True, True, False]), torch.tensor([True, False, True])
    with trace() as tr:
        with mask(mask=a):
            with mask(mask=b):
                sample("x", dist.Normal(0.0, 1.0).expand([3]), obs=torch.zeros(3))
    assert torch.equal(tr.trace.nodes["x"]["mask"], a & b)
    tr.trace.compute_log_prob()
    assert torch.equal(tr.trace.nodes["x"]["log_prob"] != 0, a & b)


def test_masked_minus_infinity_gives_zero_not_nan():
    with validation_off():
        with trace() as tr:
            with mask(mask=torch.tensor([True, False])):
                sample(
                    "x",
                    dist.Uniform(0.0, 1.0).expand([2]),
                    obs=torch.tensor([0.5, 7.0]),
                )
        assert tr.trace.log_prob_sum() == 0.0


def test_mask_must_be_boolean():
    with pytest.raises(TypeError):
        mask(coin, mask=torch.tensor([1.0, 0.0]))


def test_scale_and_mask_helper():
    lp = torch.tensor([-1.0, -math.inf])
    assert torch.equal(
        scale_and_mask(lp, 2.0, torch.tensor([True, False])), torch.tensor([-2.0, 0.0])
    )
    assert scale_and_mask(lp) is lp
    assert torch.equal(scale_and_mask(lp, mask=False), torch.zeros(2))


class validation_off:
    def __enter__(self):
        enable_validation(False)

    def __exit__(self, *exc):
        enable_validation(True)


# --- exception safety --------------------------------------------------------------------------


def raising_model():
    sample("z", dist.Normal(0.0, 1.0))
    param("p", torch.tensor(1.0))
    raise ValueError("inside the model")


HANDLER_FACTORIES = {
    "trace": lambda fn=None: trace(fn),
    "condition": lambda fn=None: condition(fn, data={"z": torch.tensor(0.0)}),
    "replay": lambda fn=None: replay(fn, trace=Trace()),
    "substitute": lambda fn=None: substitute(fn, data={"p": torch.tensor(2.0)}),
    "block": lambda fn=None: block(fn, hide=["z"]),
    "seed": lambda fn=None: seed(fn, rng_seed=0),
    "scale": lambda fn=None: scale(fn, scale=2.0),
    "mask": lambda fn=None: mask(fn, mask=False),
}


@pytest.mark.parametrize("name", sorted(HANDLER_FACTORIES))
def test_an_exception_leaves_the_stack_empty_wrapper(name):
    make = HANDLER_FACTORIES[name]
    with pytest.raises(ValueError, match="inside the model"):
        make(raising_model)()
    assert get_stack() == []


@pytest.mark.parametrize("name", sorted(HANDLER_FACTORIES))
def test_an_exception_leaves_the_stack_empty_context_manager(name):
    with pytest.raises(ValueError, match="inside the model"):
        with HANDLER_FACTORIES[name]():
            raising_model()
    assert get_stack() == []


@pytest.mark.parametrize("outer", sorted(HANDLER_FACTORIES))
def test_an_exception_leaves_the_stack_empty_nested(outer):
    model = raising_model
    for name in sorted(HANDLER_FACTORIES):  # every handler, with `outer` outermost
        if name != outer:
            model = HANDLER_FACTORIES[name](model)
    with pytest.raises(ValueError, match="inside the model"):
        with HANDLER_FACTORIES[outer]():
            model()
    assert get_stack() == []
    # and the handlers still work afterwards
    assert sample_names(trace(coin).get_trace()) == ["z", "x"]


def test_an_exception_from_a_handler_leaves_the_stack_empty():
    class Broken(poutine.Messenger):
        def process_message(self, msg):
            raise KeyError("handler bug")

    with pytest.raises(KeyError):
        trace(scale(Broken()(coin), scale=2.0)).get_trace()
    assert get_stack() == []


# --- composition -------------------------------------------------------------------------------


def test_trace_replay_condition_composition():
    torch.manual_seed(6)
    guide_tr = trace(guide).get_trace()
    z = guide_tr.nodes["z"]["value"]
    model_tr = trace(
        replay(condition(coin, data={"x": torch.ones(10)}), trace=guide_tr)
    ).get_trace()
    ones = torch.ones(10)
    assert (
        model_tr.nodes["z"]["value"] is z and model_tr.nodes["x"]["value"] is not FLIPS
    )
    assert torch.allclose(model_tr.log_prob_sum(), coin_log_joint(z, ones))


@given(st.floats(0.05, 20.0), st.floats(0.05, 20.0), st.floats(0.01, 0.99))
def test_nested_scales_multiply(a, b, z):
    z = torch.tensor(z, dtype=torch.float64)
    model = condition(lambda: sample("z", dist.Beta(2.0, 2.0)), data={"z": z})
    nested = trace(scale(scale(model, scale=a), scale=b)).get_trace().log_prob_sum()
    single = trace(scale(model, scale=a * b)).get_trace().log_prob_sum()
    assert torch.allclose(nested, single, rtol=1e-10)


@given(
    st.lists(st.booleans(), min_size=4, max_size=4),
    st.lists(st.booleans(), min_size=4, max_size=4),
)
def test_nested_masks_equal_one_mask_of_the_and(m1, m2):
    m1, m2 = torch.tensor(m1), torch.tensor(m2)
    data = torch.tensor([0.1, -0.4, 1.3, 2.0])

    def model():
        sample("x", dist.Normal(0.0, 1.0).expand([4]), obs=data)

    nested = trace(mask(mask(model, mask=m1), mask=m2)).get_trace().log_prob_sum()
    single = trace(mask(model, mask=m1 & m2)).get_trace().log_prob_sum()
    expected = dist.Normal(0.0, 1.0).log_prob(data)[m1 & m2].sum()
    assert torch.allclose(nested, single) and torch.allclose(single, expected)


@given(st.floats(0.01, 0.99))
def test_condition_then_trace_scores_the_hand_written_joint(z):
    z = torch.tensor(z)
    tr = trace(condition(coin, data={"z": z})).get_trace()
    assert torch.allclose(tr.log_prob_sum(), coin_log_joint(z), atol=1e-5)


def test_poutine_alias_reads_like_pyro():
    tr = poutine.trace(coin).get_trace()
    assert isinstance(tr, poutine.Trace) and sample_names(tr) == ["z", "x"]


# --- agreement with pyro.poutine ---------------------------------------------------------------


def make_pyro_style_model(primitives_module, distributions):
    """The same model for both libraries: a param, a latent, an observation."""

    def model(x=torch.tensor(1.2)):
        theta = primitives_module.param("theta", torch.tensor(0.3))
        z = primitives_module.sample("z", distributions.Normal(theta, 1.0))
        primitives_module.sample("x", distributions.Normal(z, 0.5), obs=x)
        return z

    return model


def make_rich_model(primitives_module, distributions, handlers_module):
    """A param, a latent, an observation, a deterministic, a factor, and a masked vector site."""

    def model(flips=FLIPS):
        theta = primitives_module.param(
            "theta",
            torch.tensor(0.5),
            constraint=distributions.constraints.unit_interval,
        )
        z = primitives_module.sample("z", distributions.Beta(1.0 + 2.0 * theta, 2.0))
        primitives_module.sample(
            "x", distributions.Bernoulli(z).expand([len(flips)]).to_event(1), obs=flips
        )
        primitives_module.deterministic("odds", z / (1 - z))
        primitives_module.factor("penalty", -((theta - 0.5) ** 2))
        with handlers_module.mask(mask=torch.tensor([True, False])):
            primitives_module.sample("pair", distributions.Normal(z, 1.0).expand([2]))
        return z

    return model


PYRO_CASES = {
    "seed": lambda P, m: P.seed(m, rng_seed=0),
    "condition": lambda P, m: P.condition(
        P.seed(m, rng_seed=0), data={"z": torch.tensor(0.3)}
    ),
    "substitute param": lambda P, m: P.substitute(
        P.seed(m, rng_seed=0), data={"theta": torch.tensor(0.25)}
    ),
    "block": lambda P, m: P.block(P.seed(m, rng_seed=0), hide=["z"]),
    "block observe": lambda P, m: P.block(
        P.seed(m, rng_seed=0), hide_types=["observe"]
    ),
    "scale": lambda P, m: P.scale(P.seed(m, rng_seed=0), scale=0.5),
    "mask": lambda P, m: P.mask(P.seed(m, rng_seed=0), mask=False),
    "condition twice": lambda P, m: P.seed(
        P.condition(
            P.condition(m, data={"z": torch.tensor(0.2)}), data={"z": torch.tensor(0.8)}
        ),
        rng_seed=2,
    ),
    "replay": lambda P, m: P.seed(
        P.replay(m, trace=P.trace(P.seed(m, rng_seed=1)).get_trace()), rng_seed=3
    ),
    "replay condition": lambda P, m: P.seed(
        P.replay(
            P.condition(m, data={"x": torch.ones(10)}),
            trace=P.trace(P.seed(m, rng_seed=1)).get_trace(),
        ),
        rng_seed=3,
    ),
}


@pytest.mark.parametrize("case", sorted(PYRO_CASES))
def test_same_trace_as_pyro(case):
    build = PYRO_CASES[case]
    ours = poutine.trace(
        build(poutine, make_rich_model(primitives, dist, poutine))
    ).get_trace()
    theirs = pyro_poutine.trace(
        build(pyro_poutine, make_rich_model(pyro, pdist, pyro_poutine))
    ).get_trace()
    assert list(ours.nodes) == list(theirs.nodes)
    for name in ours.nodes:
        a, b = ours.nodes[name], theirs.nodes[name]
        assert a["type"] == b["type"]
        if a["type"] in ("sample", "param"):
            assert a["is_observed"] == b["is_observed"]
            assert torch.allclose(a["value"], b["value"]), name
            assert a["infer"] == b["infer"] if a["type"] == "sample" else True
            assert a["scale"] == b["scale"]
    assert torch.allclose(
        torch.as_tensor(ours.log_prob_sum()), torch.as_tensor(theirs.log_prob_sum())
    )
    ours.compute_log_prob()
    theirs.compute_log_prob()
    for name in ours.stochastic_nodes + ours.observation_nodes:
        assert torch.allclose(
            ours.nodes[name]["log_prob"], theirs.nodes[name]["log_prob"]
        ), name


def test_same_param_values_as_pyro_under_substitute_with_constraint():
    def model(primitives_module):
        return primitives_module.param(
            "s", torch.tensor(2.0), constraint=constraints.positive
        )

    ours = trace(lambda: model(primitives)).get_trace()
    theirs = pyro_poutine.trace(lambda: model(pyro)).get_trace()
    assert torch.allclose(ours.nodes["s"]["value"], theirs.nodes["s"]["value"])
    new = torch.tensor(3.0)
    ours = trace(substitute(lambda: model(primitives), data={"s": new})).get_trace()
    theirs = pyro_poutine.trace(
        pyro_poutine.substitute(lambda: model(pyro), data={"s": new})
    ).get_trace()
    assert ours.nodes["s"]["value"] is new and theirs.nodes["s"]["value"] is new


def test_substitute_leaves_a_sample_site_alone_and_warns_as_pyro():
    z = torch.tensor(0.3)
    with pytest.warns(UserWarning, match="no param site matched"):
        ours = trace(
            substitute(seed(normal_model, rng_seed=0), data={"z": z})
        ).get_trace()
    with pytest.warns(UserWarning):
        theirs = pyro_poutine.trace(
            pyro_poutine.substitute(
                pyro_poutine.seed(make_pyro_style_model(pyro, pdist), rng_seed=0),
                data={"z": z},
            )
        ).get_trace()
    assert torch.equal(ours.nodes["z"]["value"], theirs.nodes["z"]["value"])
    assert not torch.equal(ours.nodes["z"]["value"], z)
