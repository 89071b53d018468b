"""The benchmark's hand-written steps compute ppl's math: the same loss and gradient for the same draws.

``bench/hand.py`` is the floor that ``make bench`` compares ppl with, so it must do the same work
(not less): here each hand-written surrogate and ``Trace_ELBO().loss_and_grads`` on the program
of ``bench/programs.py`` start from the same seed, draw the same values, and must agree.

The compiled engines: ``bench/run.py``'s ppl_jit stepper compiles model A whole and reaches the
coin's exact posterior; ``bench/numpyro_programs.py`` (checked when numpyro is installed, skipped
otherwise) starts from ppl's params and scores a draw as ppl does, and its jitted step runs.
"""

import sys
from pathlib import Path

import hand
import programs
import pytest
import torch

import ppl
import ppl.distributions as dist
from ppl.infer import Trace_ELBO

G = torch.Generator().manual_seed(1)
COIN = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0])
X = torch.randn(50, 5, generator=G)
Y_REG = (
    X @ torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0])
    + 1.0
    + 0.5 * torch.randn(50, generator=G)
)
Y_MANY = torch.randn(20, generator=G)
Y_BERN = torch.randn(30, generator=G)

# (program, hand class, data, {ppl param name: hand leaf attribute or (list attribute, index)})
CASES = {
    "A": (
        programs.coin,
        hand.Coin,
        (COIN,),
        {"alpha_q": "u_alpha", "beta_q": "u_beta"},
    ),
    "B": (
        programs.regression,
        hand.Regression,
        (X, Y_REG),
        {
            "w_loc": "w_loc",
            "w_scale": "u_w_scale",
            "b_loc": "b_loc",
            "b_scale": "u_b_scale",
        },
    ),
    "B-auto": (
        programs.regression_autonormal,
        hand.RegressionAutoNormal,
        (X, Y_REG),
        {
            "AutoNormal.locs.w": "w_loc",
            "AutoNormal.scales.w": "u_w_scale",
            "AutoNormal.locs.b": "b_loc",
            "AutoNormal.scales.b": "u_b_scale",
        },
    ),
    "C": (
        programs.many_latents,
        hand.ManyLatents,
        (Y_MANY,),
        {
            **{f"loc_{i}": ("locs", i) for i in range(20)},
            **{f"scale_{i}": ("u_scales", i) for i in range(20)},
        },
    ),
    "D": (
        programs.bernoulli_latents,
        hand.BernoulliLatents,
        (Y_BERN,),
        {"z_logits": "logits"},
    ),
}


def _leaf(engine, where):
    return (
        getattr(engine, where)
        if isinstance(where, str)
        else getattr(engine, where[0])[where[1]]
    )


@pytest.mark.parametrize("config", sorted(CASES))
def test_hand_step_has_ppls_loss_and_gradient(config):
    program, hand_class, data, names = CASES[config]
    model, guide = program(ppl, dist)
    ppl.clear_param_store()
    guide(
        *data
    )  # an autoguide runs the model once, drawing from the prior, on its first call
    ppl.set_rng_seed(0)
    loss = Trace_ELBO().loss_and_grads(model, guide, *data)
    store = ppl.get_param_store()
    assert set(store.keys()) == set(names)

    engine = hand_class(*data)
    for name, where in names.items():  # the same starting point
        assert torch.allclose(
            _leaf(engine, where), dict(store.named_parameters())[name].detach()
        )
    ppl.set_rng_seed(0)
    surrogate, hand_loss = engine.surrogate()
    surrogate.backward()
    assert hand_loss.item() == pytest.approx(loss, rel=1e-5, abs=1e-5)
    for name, where in names.items():
        ours = dict(store.named_parameters())[name].grad
        assert ours is not None and torch.allclose(
            _leaf(engine, where).grad, ours, rtol=1e-5, atol=1e-6
        ), name


# ----------------------------------------------------------------------------------------------
# The compiled engines: ppl_jit's stepper, and NumPyro's programs (when numpyro is installed)


@pytest.mark.usefixtures("clean_state")
def test_ppl_jit_stepper_compiles_and_reaches_the_coins_posterior():
    """``bench/run.py``'s ppl_jit engine on A: compiled whole (no eager fallback), and its steps
    move the Beta guide to the exact posterior Beta(10 + 7, 10 + 3) (the guide's family holds it).
    """
    import run

    config = next(c for c in run.make_configs() if c.name == "A")
    assert int(config.args[0].sum()) == 7
    ppl.enable_validation(True)
    torch.manual_seed(0)
    step, note = run.jit_stepper("ppl", config)  # an eager step, then the compile
    assert note == ""
    store = ppl.get_param_store()
    losses, moments = [], []
    for i in range(4000):
        losses.append(step())
        if i >= 3000:  # the guide's mean and sd, averaged over the last 1,000 steps
            a, b = store["alpha_q"].item(), store["beta_q"].item()
            moments.append((a / (a + b), (a * b / ((a + b) ** 2 * (a + b + 1))) ** 0.5))
    assert all(torch.isfinite(torch.tensor(losses)))
    mean, sd = torch.tensor(moments).mean(0).tolist()
    exact_mean, exact_sd = 17 / 30, (17 * 13 / (30**2 * 31)) ** 0.5
    print(f"guide's mean {mean:.4f} sd {sd:.4f}  exact {exact_mean:.4f} {exact_sd:.4f}")
    # across seeds the averaged mean varies by about 0.003 and the sd by 0.001
    assert mean == pytest.approx(exact_mean, abs=0.01)
    assert sd == pytest.approx(exact_sd, abs=0.005)


def _numpyro_programs():
    # bench/numpyro_programs.py imports without jax and numpyro; the tests need them
    import numpyro_programs

    if not numpyro_programs.AVAILABLE:
        pytest.skip(f"numpyro: {numpyro_programs.MISSING}")
    return numpyro_programs


def test_numpyro_column_reads_not_installed_without_numpyro(monkeypatch, capsys):
    """Without numpyro the module still imports, and the table's cells say so."""
    import importlib.util

    import run

    monkeypatch.setitem(sys.modules, "numpyro", None)  # `import numpyro` fails
    spec = importlib.util.spec_from_file_location(
        "numpyro_programs_missing", Path(run.__file__).with_name("numpyro_programs.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert not module.AVAILABLE and module.MISSING.startswith("not installed")

    config = next(c for c in run.make_configs() if c.name == "A")
    jit = {"notes": {"numpyro": module.MISSING}, "hand": 1e-3, "ppl_jit": 1e-4}
    jit |= {"pyro_jit": 6e-4, "ppl_jit/hand": 0.1, "pyro_jit/ppl_jit": 6.0}
    run.print_compiled_table([{"config": config, "validate": True, "jit": jit}])
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("A ") and "not installed" in line


# NumPyro's site names for ppl's AutoNormal params
def _numpyro_name(name: str) -> str:
    for part, suffix in (
        ("AutoNormal.locs.", "_auto_loc"),
        ("AutoNormal.scales.", "_auto_scale"),
    ):
        if name.startswith(part):
            return name.removeprefix(part) + suffix
    return name


@pytest.mark.usefixtures("clean_state")
@pytest.mark.parametrize("config", sorted(CASES))
def test_numpyro_program_scores_a_draw_as_ppl_does(config):
    """``bench/numpyro_programs.py`` writes the same programs: NumPyro's initial params are ppl's,
    and for a draw from ppl's guide, log p(x, z) - log q(z) (the ELBO's estimate from that draw,
    whose mean over draws is the ELBO) is the same number in both. The guides being the same
    family with the same params, the losses then agree in expectation."""
    npp = _numpyro_programs()
    from numpyro.handlers import seed, trace
    from numpyro.infer.util import log_density

    program, _, data, names = CASES[config]
    model, guide = program(ppl, dist)
    guide(*data)  # creates the params (an autoguide runs the model once)
    ppl.set_rng_seed(0)
    guide_trace = ppl.handlers.trace(guide).get_trace(*data)
    model_trace = ppl.handlers.trace(
        ppl.handlers.replay(model, trace=guide_trace)
    ).get_trace(*data)
    ours = (model_trace.log_prob_sum() - guide_trace.log_prob_sum()).item()

    np_model, np_guide = npp.PROGRAMS[program.__name__]()
    latents = {
        name: npp.jnp.asarray(site["value"].detach().numpy())
        for name, site in guide_trace.nodes.items()
        if site["type"] == "sample"
    }

    @npp.jax.jit  # one compile, rather than one per operation
    def score(data, latents):
        # the guide's initial params (constrained), as NumPyro's svi.init creates them
        guide_run = trace(seed(np_guide, 0)).get_trace(*data)
        params = {n: s["value"] for n, s in guide_run.items() if s["type"] == "param"}
        log_p, _ = log_density(np_model, data, {}, latents)
        log_q, _ = log_density(np_guide, data, {}, {**params, **latents})
        return params, log_p - log_q

    params, elbo = score(npp.to_jax(data), latents)
    store = ppl.get_param_store()
    assert set(params) == {_numpyro_name(n) for n in names}
    for name in names:
        assert torch.allclose(
            torch.as_tensor(params[_numpyro_name(name)].tolist()), store[name].detach()
        ), name
    theirs = float(elbo)
    print(f"{config}: ppl {ours:.4f}  numpyro {theirs:.4f}")
    assert theirs == pytest.approx(ours, rel=1e-5, abs=1e-4)


def test_numpyro_stepper_takes_jitted_steps():
    """The numpyro column's engine: ``svi.init``, then jitted updates that change the params."""
    npp = _numpyro_programs()
    step = npp.stepper("bernoulli_latents", (Y_BERN,))
    before = step.svi.get_params(step.state)["z_logits"]
    losses = [step() for _ in range(5)]
    after = step.svi.get_params(step.state)["z_logits"]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert float(abs(after - before).max()) > 0
