"""Hand-written SVI steps: the same math as the programs in ``programs.py``, in plain torch.

Each class holds its unconstrained leaves and a ``torch.optim.Adam`` (``foreach=True``, as ppl
uses); its ``surrogate()`` draws from the guide and scores model and guide, and its ``step()``
calls ``backward`` on the surrogate, steps the optimizer and returns the loss as a float: what an
SVI step must do in eager torch at the least. ``tests/test_bench.py`` checks that each computes
the same loss and gradient as ppl's ``Trace_ELBO`` for the same draws. The distributions are torch's own, so torch's argument checks follow the same switch as the
libraries' (``torch.distributions.Distribution.set_default_validate_args``).
"""

import torch
from torch.distributions import Bernoulli, Beta, Independent, Normal
from torch.nn.functional import softplus

LR = 0.01


def _leaf(value) -> torch.Tensor:
    return (
        torch.as_tensor(value, dtype=torch.get_default_dtype())
        .clone()
        .requires_grad_(True)
    )


class _Hand:
    params: list[torch.Tensor]

    def _optimizer(self) -> None:
        self.optim = torch.optim.Adam(self.params, lr=LR, foreach=True)

    def surrogate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(the tensor to differentiate, the loss): the same tensor when every draw is pathwise."""
        loss = self.loss()
        return loss, loss

    def step(self) -> float:
        surrogate, loss = self.surrogate()
        surrogate.backward()
        self.optim.step()
        self.optim.zero_grad(set_to_none=True)
        return loss.item()


class Coin(_Hand):
    """(A) The coin: Beta guide with two positive params, ten Bernoulli observations in a loop."""

    def __init__(self, data: torch.Tensor) -> None:
        self.data = data
        self.u_alpha = _leaf(torch.tensor(15.0).log())
        self.u_beta = _leaf(torch.tensor(15.0).log())
        self.params = [self.u_alpha, self.u_beta]
        self._optimizer()

    def loss(self) -> torch.Tensor:
        q = Beta(torch.exp(self.u_alpha), torch.exp(self.u_beta))
        fairness = q.rsample()
        log_p = Beta(10.0, 10.0).log_prob(fairness)
        for i in range(len(self.data)):
            log_p = log_p + Bernoulli(fairness).log_prob(self.data[i])
        return q.log_prob(fairness) - log_p


class Regression(_Hand):
    """(B) Bayesian linear regression with a mean-field Normal guide."""

    # the guide's scales are positive(leaf); the leaves start where positive(leaf) = 1
    positive = staticmethod(torch.exp)
    start = 0.0

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y
        d = x.shape[1]
        self.w_loc, self.u_w_scale = (
            _leaf(torch.zeros(d)),
            _leaf(torch.full((d,), self.start)),
        )
        self.b_loc, self.u_b_scale = _leaf(0.0), _leaf(self.start)
        self.params = [self.w_loc, self.u_w_scale, self.b_loc, self.u_b_scale]
        self._optimizer()

    def loss(self) -> torch.Tensor:
        q_w = Independent(Normal(self.w_loc, self.positive(self.u_w_scale)), 1)
        q_b = Normal(self.b_loc, self.positive(self.u_b_scale))
        w, b = q_w.rsample(), q_b.rsample()
        log_p = (
            Independent(Normal(torch.zeros(self.x.shape[1]), 1.0), 1).log_prob(w)
            + Normal(0.0, 10.0).log_prob(b)
            + Normal(self.x @ w + b, 0.5).log_prob(self.y).sum()
        )
        return q_w.log_prob(w) + q_b.log_prob(b) - log_p


class RegressionAutoNormal(Regression):
    """(B, AutoNormal) Model B with ``AutoNormal``'s guide: softplus scales starting at 0.1."""

    positive = staticmethod(softplus)
    start = torch.tensor(0.1).expm1().log().item()  # softplus(start) = 0.1


class ManyLatents(_Hand):
    """(C) ``k`` scalar latents with a mean-field guide of ``2k`` scalar params."""

    def __init__(self, y: torch.Tensor, k: int = 20) -> None:
        self.y, self.k = y, k
        self.locs = [_leaf(0.0) for _ in range(k)]
        self.u_scales = [_leaf(0.0) for _ in range(k)]
        self.params = [p for pair in zip(self.locs, self.u_scales) for p in pair]
        self._optimizer()

    def loss(self) -> torch.Tensor:
        zs, log_q, log_p = [], 0.0, 0.0
        for loc, u_scale in zip(self.locs, self.u_scales):
            q = Normal(loc, torch.exp(u_scale))
            z = q.rsample()
            log_q = log_q + q.log_prob(z)
            log_p = log_p + Normal(0.0, 1.0).log_prob(z)
            zs.append(z)
        log_p = log_p + Independent(Normal(torch.stack(zs), 1.0), 1).log_prob(self.y)
        return log_q - log_p


class BernoulliLatents(_Hand):
    """(D) A Bernoulli latent per data point: the score-function (REINFORCE) surrogate, per point.

    Inside a plate each point's score is weighted by its own point's log p - log q only, the
    other points' terms being independent of its draw: the estimator that ppl's and Pyro's
    ``Trace_ELBO`` compute for this program (chapter 9), not the whole-particle one.
    """

    def __init__(self, y: torch.Tensor) -> None:
        self.y = y
        self.logits = _leaf(torch.zeros(y.shape[0]))
        self.params = [self.logits]
        self._optimizer()

    def surrogate(self) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.y.shape[0]
        q = Bernoulli(logits=self.logits)
        z = q.sample()
        log_q = q.log_prob(z)  # one term per data point
        log_p = Bernoulli(0.3).expand((n,)).log_prob(z) + Normal(
            2.0 * z - 1.0, 1.0
        ).log_prob(self.y)
        cost = (log_p - log_q).detach()  # each point's own terms
        # gradient: -sum_i cost_i * grad log q_i; the loss: -(log p - log q), summed
        return -(log_q * cost).sum(), -cost.sum()
