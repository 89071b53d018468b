"""Tests of ``ppl.optim.minimize`` (chapter 3) against closed forms, hand-written updates and
finite differences. Everything runs in float64 with fixed seeds, so every run checks the same numbers."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.distributions import constraints, transform_to

from ppl.optim import minimize

DTYPE = torch.float64


def quadratic_problem():
    """0.5 (theta - c)^T A (theta - c) + 1 with A = diag(1, 4, 9): minimiser c, minimum 1."""
    a = torch.tensor([1.0, 4.0, 9.0], dtype=DTYPE)
    c = torch.tensor([1.0, -2.0, 0.5], dtype=DTYPE)
    theta = torch.zeros(3, dtype=DTYPE, requires_grad=True)
    return theta, c, lambda: 0.5 * (a * (theta - c) ** 2).sum() + 1.0


def mixed(theta: torch.Tensor) -> torch.Tensor:
    """A smooth, non-quadratic function of three parameters that mixes them."""
    return (
        torch.log1p(torch.exp(theta[0] * theta[1] - theta[2]))
        + 0.5 * (theta**2).sum()
        + torch.sin(theta[0] * theta[2])
    )


def central_difference(fn, theta: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    grad = torch.zeros_like(theta)
    for i in range(theta.numel()):
        e = torch.zeros_like(theta)
        e[i] = h
        grad[i] = (fn(theta + e) - fn(theta - e)) / (2 * h)
    return grad


@pytest.mark.parametrize(
    "optimizer, lr, num_steps, tol",
    [
        ("sgd", 0.1, 500, 1e-10),  # rates |1 - 0.1 a| <= 0.9: 0.9^500 ~ 1e-23
        ("adam", 0.05, 3000, 1e-6),
        # a torch.optim class; 0.2 * 9 = 1.8 < 2: still converges
        (torch.optim.SGD, 0.2, 300, 1e-10),
    ],
)
def test_quadratic_reaches_known_minimiser(optimizer, lr, num_steps, tol):
    theta, c, loss_fn = quadratic_problem()
    history = minimize(
        loss_fn, [theta], optimizer=optimizer, lr=lr, num_steps=num_steps
    )
    assert torch.allclose(theta.detach(), c, rtol=0, atol=tol)
    assert abs(loss_fn().item() - 1.0) < tol
    assert len(history) == num_steps


def test_sgd_diverges_above_two_over_curvature():
    # The same quadratic with lr above 2 / 9 must not converge in the curvature-9 direction.
    theta, c, loss_fn = quadratic_problem()
    minimize(loss_fn, [theta], optimizer="sgd", lr=0.25, num_steps=50)
    assert abs(theta[2].item() - c[2].item()) > 1.0


def test_sgd_iterates_equal_hand_written_update():
    theta0 = torch.tensor([0.5, -1.2, 2.0], dtype=DTYPE)
    lr, num_steps = 0.1, 50

    hand = theta0.clone().requires_grad_(True)
    hand_iterates = []
    for _ in range(num_steps):
        hand.grad = None
        mixed(hand).backward()
        with torch.no_grad():
            hand -= lr * hand.grad
        hand_iterates.append(hand.detach().clone())

    theta = theta0.clone().requires_grad_(True)
    iterates = []
    minimize(
        lambda: mixed(theta),
        [theta],
        optimizer="sgd",
        lr=lr,
        num_steps=num_steps,
        callback=lambda step, loss: iterates.append(theta.detach().clone()),
    )
    assert len(iterates) == num_steps
    assert torch.allclose(
        torch.stack(iterates), torch.stack(hand_iterates), rtol=0, atol=1e-12
    )
    # The iterates really move: the comparison is not between two constant sequences.
    assert (iterates[-1] - theta0).abs().max() > 0.1


# (1.0, 100) is chapter 3's worked example: y = f(1) = 1.5, gradient 1, x_t = 0.9^t.
@pytest.mark.parametrize("x0, num_steps", [(3.0, 40), (1.0, 100)])
def test_sgd_on_one_dimensional_quadratic_is_geometric(x0, num_steps):
    # f(x) = x^2 / 2 + 1: x_t = (1 - lr)^t x_0 and history[t] = f(x_t).
    x = torch.tensor(x0, dtype=DTYPE, requires_grad=True)
    history = minimize(
        lambda: 0.5 * x**2 + 1, [x], optimizer="sgd", lr=0.1, num_steps=num_steps
    )
    assert len(history) == num_steps
    for t, value in enumerate(history):
        assert value == pytest.approx(0.5 * (0.9**t * x0) ** 2 + 1, abs=1e-12)
    assert x.item() == pytest.approx(0.9**num_steps * x0, rel=1e-12)


def test_mle_of_normal_with_constrained_scale_matches_closed_form():
    generator = torch.Generator().manual_seed(0)
    data = 2.0 + 0.5 * torch.randn(200, dtype=DTYPE, generator=generator)
    to_positive = transform_to(constraints.positive)
    loc = torch.tensor(0.0, dtype=DTYPE, requires_grad=True)
    unconstrained_scale = torch.tensor(0.0, dtype=DTYPE, requires_grad=True)

    def nll():
        scale = to_positive(unconstrained_scale)
        return (
            (data - loc) ** 2 / (2 * scale**2) + torch.log(scale)
        ).mean() + 0.5 * math.log(2 * math.pi)

    history = minimize(
        nll, [loc, unconstrained_scale], optimizer="adam", lr=0.05, num_steps=1500
    )
    assert loc.item() == pytest.approx(data.mean().item(), abs=1e-5)
    assert to_positive(unconstrained_scale).item() == pytest.approx(
        data.std(correction=0).item(), abs=1e-5
    )
    # The biased (divide by N) standard deviation, not the unbiased one, is the MLE.
    assert (
        abs(to_positive(unconstrained_scale).item() - data.std(correction=1).item())
        > 1e-4
    )
    # The final loss is the closed-form minimum of the negative log likelihood.
    sigma_hat = data.std(correction=0).item()
    assert history[-1] == pytest.approx(
        math.log(sigma_hat) + 0.5 + 0.5 * math.log(2 * math.pi), abs=1e-8
    )


@given(st.lists(st.floats(min_value=-2.0, max_value=2.0), min_size=3, max_size=3))
def test_autograd_gradient_matches_central_differences(values):
    theta = torch.tensor(values, dtype=DTYPE, requires_grad=True)
    mixed(theta).backward()
    numeric = central_difference(mixed, theta.detach())
    assert torch.allclose(theta.grad, numeric, rtol=0, atol=1e-7)


def test_gradcheck_on_mixed_function():
    theta = torch.tensor([0.3, -0.7, 1.1], dtype=DTYPE, requires_grad=True)
    assert torch.autograd.gradcheck(mixed, (theta,))


def test_nan_loss_raises_naming_the_step_and_keeps_the_params():
    # log(x) with SGD, lr 0.5, from x = 1: x = 0.5 after step 0, then 0.5 - 0.5 * 2 = -0.5: NaN at step 2.
    x = torch.tensor(1.0, dtype=DTYPE, requires_grad=True)
    with pytest.raises(FloatingPointError, match=r"nan at step 2\b"):
        minimize(lambda: torch.log(x), [x], optimizer="sgd", lr=0.5, num_steps=10)
    assert x.item() == -0.5  # the failing step made no update


def test_infinite_loss_raises_naming_the_step():
    x = torch.tensor([1.0, 2.0], dtype=DTYPE, requires_grad=True)
    calls = []

    def loss_fn():
        calls.append(None)
        return (x**2).sum() * (math.inf if len(calls) == 4 else 1.0)

    with pytest.raises(FloatingPointError, match=r"inf at step 3\b"):
        minimize(loss_fn, [x], optimizer="adam", lr=0.1, num_steps=10)
    assert len(calls) == 4


def test_history_length_and_monotone_decrease_for_convex_problem_with_small_step():
    theta, _, loss_fn = quadratic_problem()
    initial = loss_fn().item()
    history = minimize(loss_fn, [theta], optimizer="sgd", lr=0.01, num_steps=200)
    assert len(history) == 200
    assert history[0] == initial  # history[t] is the loss before update t
    assert all(later < earlier for earlier, later in zip(history, history[1:]))


def test_callback_sees_every_step_and_its_loss():
    theta, _, loss_fn = quadratic_problem()
    seen = []
    history = minimize(
        loss_fn,
        [theta],
        optimizer="adam",
        lr=0.1,
        num_steps=25,
        callback=lambda step, loss: seen.append((step, loss)),
    )
    assert seen == list(enumerate(history))


def test_progress_bar_does_not_change_the_result():
    runs = []
    for progress in (False, True):
        theta, _, loss_fn = quadratic_problem()
        runs.append(
            (
                minimize(loss_fn, [theta], lr=0.1, num_steps=30, progress=progress),
                theta.detach(),
            )
        )
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1])


def test_optimizer_factory_and_keyword_options_agree():
    histories = []
    for optimizer, kwargs in [
        (lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9), {}),
        ("sgd", {"momentum": 0.9}),
    ]:
        theta, _, loss_fn = quadratic_problem()
        histories.append(
            minimize(
                loss_fn, [theta], optimizer=optimizer, lr=0.01, num_steps=50, **kwargs
            )
        )
    assert histories[0] == histories[1]
    theta, _, loss_fn = quadratic_problem()
    plain = minimize(loss_fn, [theta], optimizer="sgd", lr=0.01, num_steps=50)
    assert plain != histories[0]  # momentum was really passed on


def test_stochastic_loss_is_reproducible_with_a_seed():
    def run():
        torch.manual_seed(3)
        theta = torch.zeros(2, dtype=DTYPE, requires_grad=True)
        noise_loss = lambda: ((theta - torch.randn(2, dtype=DTYPE)) ** 2).sum()
        return minimize(noise_loss, [theta], lr=0.05, num_steps=20), theta.detach()

    (h1, t1), (h2, t2) = run(), run()
    assert h1 == h2 and torch.equal(t1, t2)


@pytest.mark.parametrize(
    "make_params, loss, message",
    [
        (lambda: [], lambda p: torch.tensor(0.0), "params is empty"),
        (
            lambda: [torch.tensor(1.0)],
            lambda p: p[0] ** 2,
            r"params\[0\] must be a leaf tensor",
        ),
        (
            lambda: [torch.tensor(1.0, requires_grad=True) * 2],
            lambda p: p[0] ** 2,
            r"params\[0\] must be a leaf",
        ),
        (
            lambda: [torch.ones(3, requires_grad=True)],
            lambda p: p[0] ** 2,
            "must return a scalar tensor",
        ),
    ],
)
def test_bad_input_gets_a_clear_error(make_params, loss, message):
    params = make_params()
    with pytest.raises(ValueError, match=message):
        minimize(lambda: loss(params), params, optimizer="sgd", lr=0.1, num_steps=3)


def test_unknown_optimizer_name():
    x = torch.tensor(1.0, requires_grad=True)
    with pytest.raises(ValueError, match="unknown optimizer 'adamw'"):
        minimize(lambda: x**2, [x], optimizer="adamw", num_steps=1)


def test_progress_without_tqdm_says_how_to_get_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now fails
    theta, _, loss_fn = quadratic_problem()
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'ppl\[progress\]'"):
        minimize(loss_fn, [theta], lr=0.1, num_steps=3, progress=True)
    assert theta.grad is None or torch.all(theta.grad == 0)
