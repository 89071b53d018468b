"""The benchmark's hand-written steps compute ppl's math: the same loss and gradient for the same draws.

``bench/hand.py`` is the floor that ``make bench`` compares ppl with, so it must do the same work
(not less): here each hand-written surrogate and ``Trace_ELBO().loss_and_grads`` on the program
of ``bench/programs.py`` start from the same seed, draw the same values, and must agree.
"""

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
