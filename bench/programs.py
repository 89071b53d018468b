"""Programs written once as functions of the library, shared by the benchmark and the tests.

``P`` is the library (``ppl`` or ``pyro``, or ``Bare`` below) and ``D`` its distributions module
(``ppl.distributions``, ``pyro.distributions`` or ``torch.distributions``). Each function returns a
``(model, guide)`` pair; the same source runs on every library, which is the point of ppl's
Pyro-compatible API: a Pyro program runs on ppl by swapping its imports.
"""

import torch
from torch.distributions import constraints, transform_to

# The book's coin (chapters 2, 8, 9): ten flips, seven heads, a Beta(2, 2) prior; the exact
# posterior is Beta(9, 5).
FLIPS = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0])
# Five noisy readings of one quantity (chapter 8's Normal-Normal example).
READINGS = torch.tensor([0.9, 1.7, 1.2, 2.3, 0.4])


def beta_coin(P, D, a: float = 3.0, b: float = 2.0):
    """The book's coin: a Beta(2, 2) prior, the flips as one vector event, a Beta guide
    whose params ``a`` and ``b`` start at the given values."""

    def model(x):
        z = P.sample("z", D.Beta(2.0, 2.0))
        P.sample("x", D.Bernoulli(z).expand([len(x)]).to_event(1), obs=x)

    def guide(x):
        qa = P.param("a", torch.tensor(a), constraint=D.constraints.positive)
        qb = P.param("b", torch.tensor(b), constraint=D.constraints.positive)
        P.sample("z", D.Beta(qa, qb))

    return model, guide


def coin(P, D):
    """(A) Beta(10, 10) prior on a coin's fairness, one ``sample`` per observed toss."""

    def model(data):
        fairness = P.sample("fairness", D.Beta(10.0, 10.0))
        for i in range(len(data)):
            P.sample(f"obs_{i}", D.Bernoulli(fairness), obs=data[i])

    def guide(data):
        alpha_q = P.param(
            "alpha_q", torch.tensor(15.0), constraint=D.constraints.positive
        )
        beta_q = P.param(
            "beta_q", torch.tensor(15.0), constraint=D.constraints.positive
        )
        P.sample("fairness", D.Beta(alpha_q, beta_q))

    return model, guide


def regression(P, D):
    """(B) Bayesian linear regression: 5 weights and a bias, known noise, the data in a plate."""

    def model(x, y):
        w = P.sample("w", D.Normal(torch.zeros(x.shape[1]), 1.0).to_event(1))
        b = P.sample("b", D.Normal(0.0, 10.0))
        with P.plate("data", x.shape[0]):
            P.sample("y", D.Normal(x @ w + b, 0.5), obs=y)

    def guide(x, y):
        w_loc = P.param("w_loc", torch.zeros(x.shape[1]))
        w_scale = P.param(
            "w_scale", torch.ones(x.shape[1]), constraint=D.constraints.positive
        )
        b_loc = P.param("b_loc", torch.tensor(0.0))
        b_scale = P.param(
            "b_scale", torch.tensor(1.0), constraint=D.constraints.positive
        )
        P.sample("w", D.Normal(w_loc, w_scale).to_event(1))
        P.sample("b", D.Normal(b_loc, b_scale))

    return model, guide


def regression_autonormal(P, D):
    """(B, AutoNormal) Model B with the library's ``AutoNormal`` as the guide (chapter 10).

    The guide's params are ``AutoNormal.locs.w``, ``AutoNormal.scales.w`` (and ``b``): locs
    start at 0 (``init_to_feasible``), scales at 0.1 through a softplus.
    """
    model, _ = regression(P, D)
    return model, P.infer.autoguide.AutoNormal(model)


def many_latents(P, D, k: int = 20):
    """(C) ``k`` scalar latent sites, one vector observation, a mean-field guide (2k scalar params)."""

    def model(y):
        z = [P.sample(f"z_{i}", D.Normal(0.0, 1.0)) for i in range(k)]
        P.sample("y", D.Normal(torch.stack(z), 1.0).to_event(1), obs=y)

    def guide(y):
        for i in range(k):
            loc = P.param(f"loc_{i}", torch.tensor(0.0))
            scale = P.param(
                f"scale_{i}", torch.tensor(1.0), constraint=D.constraints.positive
            )
            P.sample(f"z_{i}", D.Normal(loc, scale))

    return model, guide


def bernoulli_latents(P, D):
    """(D) A Bernoulli latent per data point, in a plate: the guide's sites need the score function."""

    def model(y):
        with P.plate("data", y.shape[0]):
            z = P.sample("z", D.Bernoulli(0.3))
            P.sample("y", D.Normal(2.0 * z - 1.0, 1.0), obs=y)

    def guide(y):
        logits = P.param("z_logits", torch.zeros(y.shape[0]))
        with P.plate("data", y.shape[0]):
            P.sample("z", D.Bernoulli(logits=logits))

    return model, guide


class Bare:
    """``sample`` and ``param`` as the bare torch calls, with no handlers, messages or store.

    ``Bare.sample`` draws (``rsample`` where there is one) or returns ``obs``; ``Bare.param``
    returns ``transform(leaf)`` for a leaf it creates on first use. Running a program with
    ``P = Bare()`` and ``D = ppl.distributions`` (torch's classes) does exactly the torch work of the program, so
    the difference from running it under ``ppl.handlers.trace`` is the cost of the PPL machinery.
    """

    def __init__(self) -> None:
        self.leaves: dict[str, tuple[torch.Tensor, object]] = {}

    def sample(self, name, fn, obs=None, infer=None):
        if obs is not None:
            return obs
        return fn.rsample() if fn.has_rsample else fn.sample()

    def param(
        self, name, init_tensor=None, constraint=constraints.real, event_dim=None
    ):
        entry = self.leaves.get(name)
        if entry is None:
            transform = transform_to(constraint)
            leaf = transform.inv(init_tensor.detach()).clone().requires_grad_(True)
            # The bare torch call for the two constraints the programs use.
            fn = torch.exp if constraint is constraints.positive else (lambda u: u)
            entry = self.leaves[name] = (leaf, fn)
        leaf, fn = entry
        return fn(leaf)
