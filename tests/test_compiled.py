"""Tests of ppl.infer.compiled (chapter 13): JitTrace_ELBO and SVI's compiled whole step.

The compiled step draws with the compiler's random number generator, so its draws are not the
eager ones: stochastic results are compared in distribution (means within a few standard errors,
exact gradients by enumeration, conjugate posteriors). A program without latent sites has a
deterministic loss, and there the compiled step must give the eager step's numbers. Every
compile costs seconds, so each test compiles one small program.
"""

from __future__ import annotations

import itertools
import math
import warnings

import pytest
import torch
from programs import FLIPS, beta_coin

import ppl
import ppl.distributions as dist
from ppl.distributions import constraints
from ppl.exact import BetaBernoulli
from ppl.infer import SVI, JitTrace_ELBO, JitTraceMeanField_ELBO, Trace_ELBO
from ppl.infer.compiled import CompiledStep, functional_update
from ppl.optim import SGD, Adam, AdamW, ClippedAdam, ClippedAdamOptimizer

pytestmark = pytest.mark.usefixtures("clean_state")


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_steps(svi, n, *args):
    # n steps; the warnings they raise, as strings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        losses = [svi.step(*args) for _ in range(n)]
    return losses, [str(w.message) for w in caught if w.category is RuntimeWarning]


def compiled_steps(svi) -> list:
    return [
        s
        for s in svi._elbo._per_svi[svi]["steps"].values()
        if isinstance(s, CompiledStep)
    ]


# --- the optimizer updates, one by one, against torch's -------------------------------------


@pytest.mark.parametrize(
    "optimizer, settings",
    [
        (torch.optim.Adam, {"lr": 0.1}),
        (torch.optim.Adam, {"lr": 0.1, "weight_decay": 0.3, "betas": (0.8, 0.99)}),
        (torch.optim.AdamW, {"lr": 0.1, "weight_decay": 0.3}),
        (torch.optim.SGD, {"lr": 0.1}),
        (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.1}),
        (
            torch.optim.SGD,
            {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1},
        ),
        (torch.optim.Adam, {"lr": 0.1, "maximize": True}),
        (ClippedAdamOptimizer, {"lr": 0.1, "lrd": 0.9, "clip_norm": 0.5}),
        (ClippedAdamOptimizer, {"lr": 0.1, "centered_variance": True}),
    ],
)
def test_functional_update_is_torchs(optimizer, settings):
    # Five updates of a param by functional_update (eagerly) and by the torch optimizer, from
    # the same gradients: the same numbers.
    torch.manual_seed(0)
    p = torch.randn(4, requires_grad=True)
    opt = optimizer([p], **settings)
    kind = {
        torch.optim.Adam: "adam",
        torch.optim.AdamW: "adamw",
        torch.optim.SGD: "sgd",
        ClippedAdamOptimizer: "clipped_adam",
    }[optimizer]
    group = opt.param_groups[0]
    u = p.detach().clone()
    state = None
    for step in range(5):
        g = torch.randn(4) * 2
        p.grad = g.clone()
        if state is None:  # the first update is torch's: it creates the state
            opt.step()
            state = {
                k: v.clone() for k, v in opt.state[p].items() if torch.is_tensor(v)
            }
            lr_t = opt.state[p].get("lr")
            u = p.detach().clone()
            continue
        if kind == "clipped_adam":
            beta1, beta2 = group["betas"]
            t = opt.state[p]["step"] + 1
            lr_t = lr_t * group["lrd"]
            scalars = torch.tensor(
                [lr_t, lr_t * math.sqrt(1 - beta2**t) / (1 - beta1**t)]
            )
        else:
            scalars = torch.tensor([group["lr"], 0.0])
        u, new_state = functional_update(kind, group, u, g, state, scalars)
        state.update(new_state)
        opt.step()
        torch.testing.assert_close(u, p.detach(), rtol=1e-5, atol=1e-6)
        for key, value in new_state.items():
            torch.testing.assert_close(value, opt.state[p][key], rtol=1e-5, atol=1e-6)


# --- the compiled step, deterministic programs: the eager step's numbers ---------------------


def deterministic_program():
    # No latent site: the loss is a function of the params alone. Params of several shapes and
    # constraints, used by the model and by the guide.
    data = torch.tensor([0.3, -1.2, 2.0, 0.7])

    def model(x):
        loc = ppl.param("loc", torch.zeros(2))
        scale = ppl.param("scale", torch.ones(2, 2), constraint=constraints.positive)
        w = ppl.param("w", torch.ones(4) / 4, constraint=constraints.simplex)
        mean = loc.sum() + (scale @ loc).sum() + (w * x).sum()
        ppl.sample("x", dist.Normal(mean, scale.sum()), obs=x)

    def guide(x):
        ppl.param("unused_by_model", torch.tensor(0.5), constraint=constraints.positive)

    return model, guide, data


@pytest.mark.parametrize(
    "make_optim",
    [
        lambda: Adam({"lr": 0.05}),
        lambda: ClippedAdam({"lr": 0.05, "lrd": 0.95, "clip_norm": 2.0}),
        lambda: SGD({"lr": 0.01, "momentum": 0.5}),
    ],
    ids=["Adam", "ClippedAdam", "SGD-momentum"],
)
def test_compiled_step_equals_eager_step_without_latents(make_optim):
    model, guide, data = deterministic_program()
    results = {}
    for elbo in (Trace_ELBO(), JitTrace_ELBO()):
        ppl.clear_param_store()
        optim = make_optim()
        svi = SVI(model, guide, optim, elbo)
        losses, caught = run_steps(svi, 12, data)
        assert caught == []
        store = ppl.get_param_store()
        results[type(elbo).__name__] = (
            losses,
            {name: store[name].detach().clone() for name in store},
            optim.get_state(),
        )
    (eager_losses, eager_params, eager_state), (losses, params, state) = (
        results.values()
    )
    assert len(compiled_steps(svi)) == 1
    torch.testing.assert_close(
        torch.tensor(losses), torch.tensor(eager_losses), rtol=1e-5, atol=1e-5
    )
    for name in eager_params:
        torch.testing.assert_close(
            params[name], eager_params[name], rtol=1e-5, atol=1e-6
        )
    assert state.keys() == eager_state.keys()
    for name in state:
        assert state[name]["state"].keys() == eager_state[name]["state"].keys()
        for key, value in eager_state[name]["state"].get(0, {}).items():
            torch.testing.assert_close(
                torch.as_tensor(state[name]["state"][0][key]).float(),
                torch.as_tensor(value).float(),
                rtol=1e-5,
                atol=1e-6,
            )


# --- stochastic programs: the same distributions --------------------------------------------


def normal_mean_program():
    data = torch.tensor([0.9, 1.7, 1.2])

    def model(x):
        mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
        with ppl.plate("data", len(x)):
            ppl.sample("x", dist.Normal(mu, 1.0), obs=x)

    def guide(x):
        loc = ppl.param("loc", torch.tensor(0.2))
        scale = ppl.param("scale", torch.tensor(0.8), constraint=constraints.positive)
        ppl.sample("mu", dist.Normal(loc, scale))

    return model, guide, data


def test_compiled_losses_have_the_eager_distribution():
    # With the learning rate 0 the params stay put, and each step's loss is one draw of the
    # negative ELBO estimate: mean and spread as the eager estimator's.
    model, guide, data = normal_mean_program()
    ppl.set_rng_seed(0)
    svi = SVI(model, guide, SGD({"lr": 0.0}), JitTrace_ELBO())
    compiled, caught = run_steps(svi, 4000, data)
    assert caught == [] and len(compiled_steps(svi)) == 1
    eager = [Trace_ELBO().loss(model, guide, data) for _ in range(4000)]
    a, b = torch.tensor(compiled[2:]), torch.tensor(eager)
    se = math.sqrt(a.var() / len(a) + b.var() / len(b))
    assert abs(a.mean() - b.mean()) < 4 * se
    assert 0.9 < a.std() / b.std() < 1.1
    # the estimator's exact mean: -ELBO in closed form (Normal guide, Normal-Normal model)
    loc, scale = 0.2, 0.8
    expected_log_lik = sum(
        -0.5 * math.log(2 * math.pi) - 0.5 * ((x - loc) ** 2 + scale**2)
        for x in data.tolist()
    )
    kl = math.log(1 / scale) + (scale**2 + loc**2) / 2 - 0.5
    assert abs(a.mean() - (kl - expected_log_lik)) < 4 * a.std() / math.sqrt(len(a))


def test_compiled_differentiable_loss_and_gradient():
    # JitTrace_ELBO.differentiable_loss alone (a compiled forward and backward): its gradients
    # land in the params' .grad, and their mean is the exact gradient of the ELBO.
    model, guide, data = normal_mean_program()
    ppl.set_rng_seed(1)
    elbo = JitTrace_ELBO()
    store = ppl.get_param_store()
    grads = []
    for _ in range(3000):
        loss = elbo.differentiable_loss(model, guide, data)
        loss.backward()
        leaf = store._params["loc"]
        grads.append(leaf.grad.item())
        for p in store._params.values():
            p.grad = None
    g = torch.tensor(grads[1:])
    # d(-ELBO)/d loc = d KL/d loc - d E[log lik]/d loc = loc - sum(x - loc)
    exact = 0.2 - sum(x - 0.2 for x in data.tolist())
    assert abs(g.mean() - exact) < 4 * g.std() / math.sqrt(len(g))
    assert len(elbo._losses) == 1


def test_score_function_gradient_is_unbiased_against_enumeration():
    # Bernoulli latents (no rsample): the gradient is the score-function estimator. SGD with
    # lr = 1 moves each param by minus its gradient; the params are put back after every
    # step, so the mean move is minus the expected gradient, which enumeration gives exactly.
    y = torch.tensor([0.8, -0.3, 1.5])

    def model(y):
        with ppl.plate("data", 3):
            z = ppl.sample("z", dist.Bernoulli(0.3))
            ppl.sample("y", dist.Normal(2.0 * z - 1.0, 1.0), obs=y)

    def guide(y):
        logits = ppl.param("logits", torch.tensor([0.5, -0.2, 0.1]))
        with ppl.plate("data", 3):
            ppl.sample("z", dist.Bernoulli(logits=logits))

    ppl.set_rng_seed(2)
    svi = SVI(model, guide, SGD({"lr": 1.0}), JitTrace_ELBO())
    store = ppl.get_param_store()
    start = torch.tensor([0.5, -0.2, 0.1])
    moves = []
    for step in range(4000):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            svi.step(y)
        leaf = store._params["logits"]
        moves.append(start - leaf.detach())
        with torch.no_grad():
            leaf.copy_(start)
    assert len(compiled_steps(svi)) == 1
    g = torch.stack(moves[2:])  # from step 2 on, compiled

    logits = start.clone().requires_grad_(True)
    q1 = torch.sigmoid(logits)
    neg_elbo = 0.0
    for z in itertools.product([0.0, 1.0], repeat=3):
        z = torch.tensor(z)
        log_q = dist.Bernoulli(logits=logits).log_prob(z).sum()
        log_p = (
            dist.Bernoulli(0.3).log_prob(z).sum()
            + dist.Normal(2 * z - 1, 1.0).log_prob(y).sum()
        )
        neg_elbo = neg_elbo - torch.prod(torch.where(z > 0, q1, 1 - q1)) * (
            log_p - log_q
        )
    (exact,) = torch.autograd.grad(neg_elbo, logits)
    se = g.std(0) / math.sqrt(len(g))
    assert ((g.mean(0) - exact).abs() < 4 * se).all(), (g.mean(0), exact, se)


def test_coin_reaches_the_exact_posterior():
    # The book's coin with a Beta guide: the compiled step reaches Beta(9, 5).
    model, guide = beta_coin(ppl, dist)
    ppl.set_rng_seed(3)
    svi = SVI(model, guide, Adam({"lr": 0.02}), JitTrace_ELBO())
    store = ppl.get_param_store()
    draws = []
    for step in range(6000):
        svi.step(FLIPS)
        if step >= 3000:
            draws.append((store["a"].item(), store["b"].item()))
    a, b = torch.tensor(draws).mean(0).tolist()
    exact = BetaBernoulli(2.0, 2.0).posterior(FLIPS)
    mean, sd = a / (a + b), math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    assert abs(mean - exact.mean) < 0.01
    assert abs(sd - exact.stddev) < 0.01


def test_mean_field_variant_reaches_the_conjugate_posterior():
    model, guide, data = normal_mean_program()
    ppl.set_rng_seed(4)
    svi = SVI(model, guide, Adam({"lr": 0.02}), JitTraceMeanField_ELBO())
    store = ppl.get_param_store()
    locs, scales = [], []
    for step in range(4000):
        svi.step(data)
        if step >= 2000:
            locs.append(store["loc"].item())
            scales.append(store["scale"].item())
    assert len(compiled_steps(svi)) == 1
    # Normal(0, 1) prior, unit noise, 3 points: posterior N(sum x / 4, 1/4)
    assert abs(sum(locs) / len(locs) - data.sum().item() / 4) < 0.02
    assert abs(sum(scales) / len(scales) - 0.5) < 0.02


# --- what the compiled step does when the programs change or cannot be compiled -------------


def test_data_dependent_control_flow_falls_back_naming_the_site():
    def model(x):
        z = ppl.sample("z", dist.Normal(0.0, 1.0))
        if z > 0:  # a Python branch on a drawn value: no single graph
            ppl.sample("x", dist.Normal(z, 1.0), obs=x)
        else:
            ppl.sample("x", dist.Normal(-z, 2.0), obs=x)

    def guide(x):
        loc = ppl.param("loc", torch.tensor(0.1))
        ppl.sample("z", dist.Normal(loc, 1.0))

    runs = {}
    for elbo in (Trace_ELBO(), JitTrace_ELBO()):
        ppl.clear_param_store()
        ppl.set_rng_seed(5)
        svi = SVI(model, guide, Adam({"lr": 0.1}), elbo)
        runs[type(elbo).__name__] = run_steps(svi, 6, torch.tensor(0.5))
    (eager, _), (losses, caught) = runs.values()
    assert len(caught) == 1
    assert "cannot be compiled whole" in caught[0]
    assert "line after site 'z'" in caught[0] and "if z > 0" in caught[0]
    assert losses == eager  # the eager step, draw for draw


def test_module_parameters_fall_back_naming_the_param():
    net = torch.nn.Linear(2, 1)
    x, y = torch.randn(20, 2), torch.randn(20)

    def model(x, y):
        ppl.module("net", net)
        with ppl.plate("data", len(y)):
            ppl.sample("y", dist.Normal(net(x).squeeze(-1), 1.0), obs=y)

    def guide(x, y):
        pass

    svi = SVI(model, guide, Adam({"lr": 0.1}), JitTrace_ELBO())
    before = net.weight.detach().clone()
    _, caught = run_steps(svi, 3, x, y)
    assert len(caught) == 1 and "param 'net$$$weight'" in caught[0]
    assert "torch module's own parameter" in caught[0]
    assert not torch.equal(net.weight.detach(), before)  # trained, eagerly


def test_a_new_data_shape_compiles_once_and_says_so():
    model, guide, _ = normal_mean_program()
    svi = SVI(model, guide, Adam({"lr": 0.01}), JitTrace_ELBO())
    small, large = torch.randn(5), torch.randn(8)
    _, first = run_steps(svi, 3, small)
    _, second = run_steps(svi, 3, large)
    _, third = run_steps(svi, 2, small)
    _, fourth = run_steps(svi, 2, large)
    assert first == [] and third == [] and fourth == []
    assert len(second) == 1
    assert "changed from (tensor[5]) to (tensor[8])" in second[0]
    assert len(compiled_steps(svi)) == 2


def test_fixed_size_subsampling_compiles_once():
    data = torch.randn(100) + 1.0

    def model(x):
        mu = ppl.sample("mu", dist.Normal(0.0, 10.0))
        with ppl.plate("data", len(x), subsample_size=10) as idx:
            ppl.sample("x", dist.Normal(mu, 1.0), obs=x[idx])

    def guide(x):
        loc = ppl.param("loc", torch.tensor(0.0))
        scale = ppl.param("scale", torch.tensor(1.0), constraint=constraints.positive)
        ppl.sample("mu", dist.Normal(loc, scale))

    ppl.set_rng_seed(6)
    svi = SVI(model, guide, Adam({"lr": 0.02}), JitTrace_ELBO())
    locs, caught = [], []
    for step in range(4000):
        caught += run_steps(svi, 1, data)[1]
        if step >= 2000:
            locs.append(ppl.param("loc").item())
    assert caught == [] and len(compiled_steps(svi)) == 1
    # each minibatch's log likelihood is scaled by 100/10, so the fit is the full-data
    # posterior's: mean sum(x) / (n + 1/100), sd 0.1
    exact = data.sum().item() / (100 + 0.01)
    assert abs(sum(locs) / len(locs) - exact) < 0.03


def test_a_python_value_that_changes_recompiles_once_then_runs_eagerly():
    factor = [1.0]

    def model(x):
        z = ppl.sample("z", dist.Normal(0.0, 1.0))
        ppl.sample("x", dist.Normal(z * factor[0], 1.0), obs=x)

    def guide(x):
        ppl.sample("z", dist.Normal(ppl.param("loc", torch.tensor(0.0)), 1.0))

    svi = SVI(model, guide, Adam({"lr": 0.01}), JitTrace_ELBO())
    caught = []
    for value in (1.0, 2.0, 3.0):
        factor[0] = value
        caught += run_steps(svi, 3, torch.tensor(1.0))[1]
    assert len(caught) == 2
    assert "changed since the step was compiled" in caught[0] and "factor" in caught[0]
    assert "changes from step to step" in caught[1]


def test_handlers_around_the_step_make_it_eager():
    model, guide, data = normal_mean_program()
    svi = SVI(model, guide, Adam({"lr": 0.01}), JitTrace_ELBO())
    run_steps(svi, 1, data)
    with ppl.handlers.scale(scale=2.0):
        _, caught = run_steps(svi, 3, data)
    assert (
        len(caught) == 1
        and "handlers are active" in caught[0]
        and "ScaleMessenger" in caught[0]
    )


def test_a_non_finite_step_changes_nothing():
    model, guide, data = normal_mean_program()
    optim = Adam({"lr": 0.01})
    svi = SVI(model, guide, optim, JitTrace_ELBO())
    run_steps(svi, 4, data)
    store = ppl.get_param_store()
    params = {name: store[name].detach().clone() for name in store}
    state = optim.get_state()
    bad = torch.tensor([0.9, float("nan"), 1.2])
    with pytest.raises(
        FloatingPointError, match=r"step 4 .*compiled: the loss is nan.*No param"
    ):
        svi.step(bad)
    for name in params:
        assert torch.equal(store[name].detach(), params[name])
    after = optim.get_state()
    for name in state:
        for key, value in state[name]["state"][0].items():
            assert torch.equal(
                torch.as_tensor(after[name]["state"][0][key]), torch.as_tensor(value)
            )
    assert svi._steps_taken == 4
    svi.step(data)  # and the next good step is compiled as before
    assert svi._steps_taken == 5 and len(compiled_steps(svi)) == 1


def test_an_update_out_of_range_names_the_param():
    def model():
        s = ppl.param("s", torch.tensor(1.0), constraint=constraints.positive)
        ppl.sample("x", dist.Normal(0.0, s), obs=torch.tensor(100.0))

    svi = SVI(model, lambda: None, SGD({"lr": 1e6}), JitTrace_ELBO())
    with pytest.raises(FloatingPointError):  # the eager first step already overflows
        svi.step()
    ppl.clear_param_store()
    svi = SVI(model, lambda: None, SGD({"lr": 1e-4}), JitTrace_ELBO())
    run_steps(svi, 3)
    svi.optim.optimizer.param_groups[0]["lr"] = 1e6  # read at every step
    before = ppl.param("s").item()
    with pytest.raises(FloatingPointError, match="param\\(s\\) 's' out of range"):
        svi.step()
    assert ppl.param("s").item() == before


def test_the_store_and_the_optimizer_stay_consistent():
    model, guide, data = normal_mean_program()
    optim = Adam({"lr": 0.05})
    svi = SVI(model, guide, optim, JitTrace_ELBO())
    run_steps(svi, 10, data)
    store = ppl.get_param_store()
    assert optim.get_state()["loc"]["state"][0]["step"].item() == 10
    saved = {name: store[name].detach().clone() for name in store}
    state = store.get_state()
    # the store's own leaves are updated in place, and round-trip through get/set_state
    ppl.clear_param_store()
    _, caught = run_steps(svi, 3, data)  # a new store: built again
    assert caught == [] and store["loc"].item() != saved["loc"].item()
    store.set_state(state)
    torch.testing.assert_close(store["loc"].detach(), saved["loc"])
    losses, caught = run_steps(svi, 3, data)
    assert caught == [] and all(math.isfinite(x) for x in losses)


def test_jit_options_and_pyro_arguments():
    elbo = JitTrace_ELBO(
        num_particles=2,
        ignore_jit_warnings=True,
        jit_options={"check_trace": False, "mode": "default"},
    )
    assert elbo._compile_options() == {"mode": "default"}
    model, guide, data = normal_mean_program()
    svi = SVI(model, guide, Adam({"lr": 0.01}), elbo)
    losses, caught = run_steps(svi, 4, data)
    assert caught == [] and all(math.isfinite(x) for x in losses)
    assert len(compiled_steps(svi)) == 1


def test_adamw_compiles():
    model, guide, data = deterministic_program()
    svi = SVI(model, guide, AdamW({"lr": 0.05, "weight_decay": 0.1}), JitTrace_ELBO())
    _, caught = run_steps(svi, 3, data)
    assert caught == [] and len(compiled_steps(svi)) == 1


def test_a_new_param_is_found_and_the_step_built_again():
    use_offset = [False]

    def model(x):
        z = ppl.sample("z", dist.Normal(0.0, 1.0))
        ppl.sample("x", dist.Normal(z, 1.0), obs=x)

    def guide(x):
        loc = ppl.param("loc", torch.tensor(0.0))
        if use_offset[0]:  # a Python switch: the next capture reaches a new param
            loc = loc + ppl.param("offset", torch.tensor(0.0))
        ppl.sample("z", dist.Normal(loc, 1.0))

    svi = SVI(model, guide, Adam({"lr": 0.05}), JitTrace_ELBO())
    _, caught = run_steps(svi, 3, torch.tensor(1.0))
    assert caught == []
    use_offset[0] = True
    _, caught = run_steps(svi, 4, torch.tensor(1.0))
    assert len(caught) == 1 and "reached param(s) ['offset']" in caught[0]
    (step,) = compiled_steps(svi)
    assert step.flat.names == ["loc", "offset"]
    assert ppl.param("offset").item() != 0.0  # trained


def test_numbers_that_change_every_step_end_in_eager_steps():
    model, guide, data = normal_mean_program()

    def annealed_model(x, beta):
        with ppl.handlers.scale(scale=beta):
            model(x)

    def annealed_guide(x, beta):
        guide(x)

    svi = SVI(annealed_model, annealed_guide, Adam({"lr": 0.01}), JitTrace_ELBO())
    caught = []
    for step in range(8):
        caught += run_steps(svi, 1, data, 0.1 * (step + 1))[1]
    changed = [w for w in caught if "arguments changed" in w]
    assert len(changed) == 3 and "better passed as a tensor" in changed[0]
    assert any("4 different shapes or argument values" in w for w in caught)
    # as a tensor, the number is an input of one graph
    ppl.clear_param_store()
    svi = SVI(annealed_model, annealed_guide, Adam({"lr": 0.01}), JitTrace_ELBO())
    caught = []
    for step in range(8):
        caught += run_steps(svi, 1, data, torch.tensor(0.1 * (step + 1)))[1]
    assert caught == [] and len(compiled_steps(svi)) == 1
