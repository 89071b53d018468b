"""The benchmark's programs in NumPyro, and NumPyro's jitted SVI step: the optional ``numpyro`` column.

The same models, priors, guides, initial values and data as ``programs.py`` (whose function names
these share), written with ``numpyro`` and ``jax.numpy``: NumPyro's programs are JAX code, so the
source cannot be shared with the torch libraries. ``stepper`` builds NumPyro's usual loop,
``svi.init`` and then ``jax.jit(svi.update)``, with ``numpyro.optim.Adam(0.01)`` on CPU in
float32 (JAX's default), on one thread. Without ``jax`` and ``numpyro`` installed this module
still imports: ``AVAILABLE`` is False and ``MISSING`` says why.

The ELBO is NumPyro's ``Trace_ELBO`` except for ``bernoulli_latents`` (D): NumPyro's
``Trace_ELBO`` handles reparameterized sites only (it gives a non-reparameterizable site no
score-function term), so D uses ``TraceGraph_ELBO``, whose estimator is the per-point score
function that ppl's and Pyro's ``Trace_ELBO`` compute inside a plate.
"""

from __future__ import annotations

import os
import time
from typing import Callable

# One thread, CPU, as torch runs in the benchmark; set before jax is first imported.
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)
os.environ.setdefault("JAX_PLATFORMS", "cpu")

try:
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import SVI, Trace_ELBO, TraceGraph_ELBO, init_to_feasible
    from numpyro.infer.autoguide import AutoNormal
except ImportError as error:  # the column is optional
    AVAILABLE, MISSING, VERSIONS = False, f"not installed ({error.name})", ""
else:
    AVAILABLE, MISSING = True, ""
    VERSIONS = f"jax {jax.__version__}, numpyro {numpyro.__version__}"

LR = 0.01


def coin():
    """(A) Beta(10, 10) prior on a coin's fairness, one ``sample`` per observed toss."""

    def model(data):
        fairness = numpyro.sample("fairness", dist.Beta(10.0, 10.0))
        for i in range(len(data)):
            numpyro.sample(f"obs_{i}", dist.Bernoulli(probs=fairness), obs=data[i])

    def guide(data):
        alpha_q = numpyro.param(
            "alpha_q", jnp.array(15.0), constraint=dist.constraints.positive
        )
        beta_q = numpyro.param(
            "beta_q", jnp.array(15.0), constraint=dist.constraints.positive
        )
        numpyro.sample("fairness", dist.Beta(alpha_q, beta_q))

    return model, guide


def regression():
    """(B) Bayesian linear regression: 5 weights and a bias, known noise, the data in a plate."""

    def model(x, y):
        w = numpyro.sample("w", dist.Normal(jnp.zeros(x.shape[1]), 1.0).to_event(1))
        b = numpyro.sample("b", dist.Normal(0.0, 10.0))
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("y", dist.Normal(x @ w + b, 0.5), obs=y)

    def guide(x, y):
        w_loc = numpyro.param("w_loc", jnp.zeros(x.shape[1]))
        w_scale = numpyro.param(
            "w_scale", jnp.ones(x.shape[1]), constraint=dist.constraints.positive
        )
        b_loc = numpyro.param("b_loc", jnp.array(0.0))
        b_scale = numpyro.param(
            "b_scale", jnp.array(1.0), constraint=dist.constraints.positive
        )
        numpyro.sample("w", dist.Normal(w_loc, w_scale).to_event(1))
        numpyro.sample("b", dist.Normal(b_loc, b_scale))

    return model, guide


def regression_autonormal():
    """(B, AutoNormal) Model B with NumPyro's ``AutoNormal``: locs at 0, scales 0.1 (softplus).

    NumPyro's default start is ``init_to_uniform``; ``init_to_feasible`` gives ppl's and Pyro's
    (the locs at 0).
    """
    model, _ = regression()
    return model, AutoNormal(model, init_loc_fn=init_to_feasible)


def many_latents(k: int = 20):
    """(C) ``k`` scalar latent sites, one vector observation, a mean-field guide (2k scalar params)."""

    def model(y):
        z = [numpyro.sample(f"z_{i}", dist.Normal(0.0, 1.0)) for i in range(k)]
        numpyro.sample("y", dist.Normal(jnp.stack(z), 1.0).to_event(1), obs=y)

    def guide(y):
        for i in range(k):
            loc = numpyro.param(f"loc_{i}", jnp.array(0.0))
            scale = numpyro.param(
                f"scale_{i}", jnp.array(1.0), constraint=dist.constraints.positive
            )
            numpyro.sample(f"z_{i}", dist.Normal(loc, scale))

    return model, guide


def bernoulli_latents():
    """(D) A Bernoulli latent per data point, in a plate: the guide's sites need the score function."""

    def model(y):
        with numpyro.plate("data", y.shape[0]):
            z = numpyro.sample("z", dist.Bernoulli(probs=0.3))
            numpyro.sample("y", dist.Normal(2.0 * z - 1.0, 1.0), obs=y)

    def guide(y):
        logits = numpyro.param("z_logits", jnp.zeros(y.shape[0]))
        with numpyro.plate("data", y.shape[0]):
            numpyro.sample("z", dist.Bernoulli(logits=logits))

    return model, guide


PROGRAMS = {
    f.__name__: f
    for f in (
        coin,
        regression,
        regression_autonormal,
        many_latents,
        bernoulli_latents,
    )
}


def elbo(name: str):
    """The ELBO for program ``name``: ``TraceGraph_ELBO`` for D (see the module docstring)."""
    return TraceGraph_ELBO() if name == "bernoulli_latents" else Trace_ELBO()


def to_jax(args: tuple) -> tuple:
    """The benchmark's torch data as float32 JAX arrays."""
    return tuple(jnp.asarray(a.detach().numpy(), dtype=jnp.float32) for a in args)


def set_validation(flag: bool) -> None:
    """NumPyro's distribution argument checks (they run on concrete values only, not in ``jit``)."""
    numpyro.enable_validation(flag)


class Stepper:
    """NumPyro's SVI on program ``name``: ``init()`` is ``svi.init``, ``update()`` one jitted step.

    A call takes one step and returns the loss as a float, waiting for the result (JAX
    dispatches asynchronously). The first ``update`` compiles.
    """

    def __init__(self, name: str, args: tuple, seed: int = 0) -> None:
        model, guide = PROGRAMS[name]()
        self.args = to_jax(args)
        self.svi = SVI(model, guide, numpyro.optim.Adam(LR), elbo(name))
        self.seed = seed
        self.state = None
        self._update = jax.jit(self.svi.update)

    def init(self) -> None:
        self.state = self.svi.init(jax.random.PRNGKey(self.seed), *self.args)
        jax.block_until_ready(self.state)

    def __call__(self) -> float:
        if self.state is None:
            self.init()
        self.state, loss = self._update(self.state, *self.args)
        jax.block_until_ready(self.state)
        return float(loss)


def stepper(name: str, args: tuple) -> Callable[[], float]:
    """A fresh NumPyro SVI on program ``name`` with data ``args`` (torch tensors), initialised."""
    step = Stepper(name, args)
    step.init()
    return step


def first_call(name: str, args: tuple) -> tuple[float, float]:
    """Seconds of ``svi.init`` and of the first jitted update (the compile), in that order."""
    step = Stepper(name, args)
    start = time.perf_counter()
    step.init()
    middle = time.perf_counter()
    step()
    return middle - start, time.perf_counter() - middle
