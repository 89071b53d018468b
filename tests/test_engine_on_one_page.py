"""Tests of the whole engine on one page, the code cell that ends chapter 9.

The cell opens with two IPython lines, ``%%capture`` and ``%%writefile engine.py``: in the
notebook it writes the engine to a file, which the next cell runs in a module of its own. Here
the rest of the cell is read from the notebook and run in a namespace of its own, once per
test, so that each test starts with an empty handler stack and an empty param store. Oracles:
ppl and Pyro (the same programs from the same seed take the same steps), the coin's ELBO and
posterior in closed form, and the shapes and frames that ppl's plates give.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pyro  # first imported, with its warning silenced, in conftest.py
import pytest
import torch
from programs import FLIPS

import ppl

pytestmark = pytest.mark.usefixtures("clean_state")

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = ROOT / "book" / "09_plates.ipynb"
CELL_ID = "ch9-engine"
MAGICS = ["%%capture", "%%writefile engine.py"]


def cell_lines() -> list[str]:
    cells = json.loads(CHAPTER.read_text(encoding="utf-8"))["cells"]
    (cell,) = [c for c in cells if c.get("id") == CELL_ID]
    return "".join(cell["source"]).split("\n")


def engine_source() -> str:
    """The cell without its IPython lines: what the notebook writes to engine.py."""
    return "\n".join(cell_lines()[len(MAGICS) :]) + "\n"


def run_engine(name: str = "engine") -> dict:
    namespace: dict = {"__name__": name}
    exec(compile(engine_source(), "engine.py", "exec"), namespace)
    return namespace


@pytest.fixture
def E():
    """A fresh copy of the engine, laid out like Pyro (E.infer.SVI, E.optim.Adam, ...)."""
    namespace = run_engine()
    E = SimpleNamespace(**namespace)
    E.distributions = torch.distributions
    E.clear_param_store = E.PARAM_STORE.clear
    E.infer = SimpleNamespace(SVI=E.SVI, Trace_ELBO=E.Trace_ELBO)
    E.optim = SimpleNamespace(Adam=E.Adam)
    yield E
    assert E.STACK == [], "the engine left handlers on its stack"


def test_the_engine_imports_only_torch_and_the_standard_library():
    tree = ast.parse(engine_source())
    modules = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert modules <= {"torch", "collections"}, modules


def test_the_cell_writes_itself_to_engine_py_silently():
    # the notebook's check runs engine.py with runpy: the cell must write exactly its own code
    assert cell_lines()[: len(MAGICS)] == MAGICS


@pytest.mark.skipif(
    importlib.util.find_spec("ruff") is None, reason="ruff is not installed"
)
def test_the_engine_is_ruff_clean_and_formatted():
    # ruff skips a notebook cell that starts with a cell magic, so it checks the file here
    ruff = [sys.executable, "-m", "ruff"]
    for command in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [*ruff, *command, "--stdin-filename", "engine.py", "-"],
            input=engine_source(),
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_python_engine_py_fits_the_coin():
    # the `if __name__ == "__main__":` block: the coin's exact posterior is Beta(9, 5)
    torch.manual_seed(0)
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        namespace = run_engine("__main__")
    assert "exact: Beta(9, 5)" in output.getvalue()
    a, b = namespace["param"]("a").item(), namespace["param"]("b").item()
    fitted, exact = torch.distributions.Beta(a, b), torch.distributions.Beta(9.0, 5.0)
    assert abs(fitted.mean - exact.mean) < 0.03
    assert abs(fitted.stddev - exact.stddev) < 0.03
    assert namespace["STACK"] == []


# --- programs written once, run on any of the three libraries --------------------------------


def coin(P, a0=1.0, b0=1.0):
    D, positive = P.distributions, P.distributions.constraints.positive

    def model(flips):
        z = P.sample("z", D.Beta(2.0, 2.0))
        with P.plate("flips", len(flips)):
            P.sample("x", D.Bernoulli(z), obs=flips)

    def guide(flips):
        a = P.param("a", torch.tensor(a0), constraint=positive)
        b = P.param("b", torch.tensor(b0), constraint=positive)
        P.sample("z", D.Beta(a, b))

    return model, guide, ["a", "b"]


GEN = torch.Generator().manual_seed(5)
REG_A = torch.cat([torch.randn(300, 3, generator=GEN), torch.ones(300, 1)], 1)
REG_Y = REG_A @ torch.tensor([1.5, -0.7, 0.3, 0.5]) + torch.randn(300, generator=GEN)


def regression(P):
    D, positive = P.distributions, P.distributions.constraints.positive

    def model(A, y):
        beta = P.sample("beta", D.Independent(D.Normal(torch.zeros(4), 10.0), 1))
        with P.plate("data", len(A), subsample_size=50) as idx:
            P.sample("y", D.Normal((A[idx] * beta).sum(-1), 1.0), obs=y[idx])

    def guide(A, y):
        loc = P.param("loc", torch.zeros(4))
        scale = P.param("scale", torch.ones(4), constraint=positive)
        P.sample("beta", D.Independent(D.Normal(loc, scale), 1))

    return model, guide, ["loc", "scale"]


def mixture(P):
    # a discrete latent per data point: the score-function path, costed per plate index
    D = P.distributions

    def model(x):
        with P.plate("data", len(x)):
            z = P.sample("z", D.Bernoulli(0.5))
            P.sample("x", D.Normal(4.0 * z - 2.0, 1.0), obs=x)

    def guide(x):
        with P.plate("data", len(x)):
            logits = P.param("logits", torch.linspace(-1.0, 1.0, len(x)))
            P.sample("z", D.Bernoulli(logits=logits))

    return model, guide, ["logits"]


MIX_X = torch.tensor([-2.3, -1.1, 0.2, 1.7, 2.6, -0.4])


def fit(P, program, args, num_steps, lr):
    """SVI from seed 0: the loss of every step and the params after it."""
    model, guide, names = program(P)
    P.clear_param_store()
    torch.manual_seed(0)
    svi = P.infer.SVI(model, guide, P.optim.Adam({"lr": lr}), P.infer.Trace_ELBO())
    losses, params = [], []
    for _ in range(num_steps):
        losses.append(svi.step(*args))
        params.append(torch.cat([P.param(n).detach().reshape(-1) for n in names]))
    return torch.tensor(losses), torch.stack(params)


@pytest.mark.parametrize(
    "program, args, num_steps, lr",
    [(coin, (FLIPS,), 200, 0.05), (regression, (REG_A, REG_Y), 100, 0.05)],
    ids=["coin", "regression"],
)
def test_svi_takes_the_same_steps_as_ppl_and_pyro(E, program, args, num_steps, lr):
    losses, params = fit(E, program, args, num_steps, lr)
    for other in (ppl, pyro):
        other_losses, other_params = fit(other, program, args, num_steps, lr)
        torch.testing.assert_close(other_losses, losses, rtol=1e-5, atol=0.0)
        torch.testing.assert_close(other_params, params, rtol=1e-5, atol=1e-5)


def test_the_coin_loss_is_an_unbiased_estimate_of_the_closed_form_elbo(E):
    model, guide, _ = coin(E, 3.0, 2.0)
    torch.manual_seed(1)
    losses = torch.tensor(
        [
            E.Trace_ELBO().differentiable_loss(model, guide, FLIPS).item()
            for _ in range(2000)
        ]
    )
    a, b = torch.tensor(3.0), torch.tensor(2.0)
    heads, tails = FLIPS.sum(), (1 - FLIPS).sum()
    expected_log_lik = heads * (torch.digamma(a) - torch.digamma(a + b)) + tails * (
        torch.digamma(b) - torch.digamma(a + b)
    )
    kl = torch.distributions.kl_divergence(
        torch.distributions.Beta(a, b), torch.distributions.Beta(2.0, 2.0)
    )
    exact_loss = -(expected_log_lik - kl).item()
    se = losses.std().item() / math.sqrt(len(losses))
    assert abs(losses.mean().item() - exact_loss) < 5 * se


def test_the_coin_fit_reaches_the_exact_posterior(E):
    _, params = fit(E, coin, (FLIPS,), 1000, 0.05)
    a, b = params[500:].mean(0)  # Polyak averaging over the second half
    fitted, exact = torch.distributions.Beta(a, b), torch.distributions.Beta(9.0, 5.0)
    assert abs(fitted.mean - exact.mean) < 0.02
    assert abs(fitted.stddev - exact.stddev) < 0.02


def test_score_function_gradients_equal_ppls_for_the_same_seed(E):
    # ppl's Trace_ELBO costs each score within its plate slice; so must the engine's
    grads = {}
    for name, P in (("engine", E), ("ppl", ppl)):
        model, guide, _ = mixture(P)
        P.clear_param_store()
        torch.manual_seed(3)
        guide(MIX_X)  # creates the param
        leaf = (
            E.PARAM_STORE["logits"][0]
            if P is E
            else ppl.get_param_store()["logits"].unconstrained()
        )
        elbo = P.infer.Trace_ELBO()
        grads[name] = torch.stack(
            [
                torch.autograd.grad(
                    elbo.differentiable_loss(model, guide, MIX_X), leaf
                )[0]
                for _ in range(20)
            ]
        )
    torch.testing.assert_close(grads["engine"], grads["ppl"], rtol=1e-5, atol=1e-5)


def test_nested_plates_give_ppls_shapes(E):
    def grid(P):
        D = P.distributions
        shapes = {}
        with P.plate("cols", 3):
            shapes["day"] = P.sample("day", D.Normal(0.0, 1.0)).shape
            with P.plate("rows", 2):
                shapes["cell"] = P.sample("cell", D.Normal(0.0, 1.0)).shape
                vec = D.Independent(D.Normal(torch.zeros(4), 1.0), 1)
                shapes["vec"] = P.sample("vec", vec).shape
        with P.plate("rows", 2, dim=-2):
            shapes["sensor"] = P.sample("sensor", D.Normal(0.0, 1.0)).shape
        return shapes

    # no trace around them: both plates are named "rows", which a trace would refuse
    expected = {"day": (3,), "cell": (2, 3), "vec": (2, 3, 4), "sensor": (2, 1)}
    assert grid(E) == grid(ppl) == expected


def test_frames_are_listed_outermost_first_as_in_ppl(E):
    def nested(P):
        def model():
            with P.plate("outer", 2):
                with P.plate("inner", 3):
                    P.sample("x", P.distributions.Normal(0.0, 1.0))

        return model

    engine_site = E.trace(nested(E)).get_trace()["x"]
    ppl_site = ppl.handlers.trace(nested(ppl)).get_trace().nodes["x"]
    frames = [
        [(f.name, f.dim, f.size) for f in site["cond_indep_stack"]]
        for site in (engine_site, ppl_site)
    ]
    assert frames[0] == frames[1] == [("outer", -1, 2), ("inner", -2, 3)]


def test_a_batch_dim_outside_every_plate_is_outside_the_engine(E):
    # the limit its docstring states: the plate-aware cost keeps every dim of a site outside the
    # plates, so a batch of 3 meets a plate of 5 at dim -1 (ppl sums it first; Pyro refuses it)
    D = torch.distributions

    def program():
        E.sample("g", D.Normal(torch.zeros(3), 1.0))
        with E.plate("data", 5):
            E.sample("z", D.Bernoulli(0.5))

    with pytest.raises(RuntimeError, match="must match"):
        E.Trace_ELBO().differentiable_loss(program, program)


def test_a_subsampled_plate_scales_and_replay_shares_its_minibatch(E):
    def model(x):
        with E.plate("data", len(x), subsample_size=4) as idx:
            u = E.sample("u", torch.distributions.Normal(0.0, 1.0))
            E.sample("obs", torch.distributions.Normal(u, 1.0), obs=x[idx])

    def guide(x):
        with E.plate("data", len(x), subsample_size=4):
            E.sample("u", torch.distributions.Normal(0.0, 1.0))

    x = torch.arange(10.0)
    guide_trace = E.trace(guide).get_trace(x)
    model_trace = E.trace(E.replay(model, guide_trace)).get_trace(x)
    indices = guide_trace["data"]["value"]
    assert torch.equal(model_trace["data"]["value"], indices)
    assert len(indices.unique()) == 4 and 0 <= indices.min() and indices.max() < 10
    assert torch.equal(model_trace["obs"]["value"], x[indices])
    assert model_trace["obs"]["scale"] == 10 / 4
    assert model_trace["u"]["value"] is guide_trace["u"]["value"]
    (frame,) = model_trace["obs"]["cond_indep_stack"]
    assert (frame.name, frame.dim, frame.size) == ("data", -1, 4)


def test_condition_observes_and_block_hides(E):
    def model():
        z = E.sample("z", torch.distributions.Normal(0.0, 1.0))
        with E.block(hide_fn=lambda msg: msg["name"] == "hidden"):
            E.sample("hidden", torch.distributions.Normal(z, 1.0))
        return E.sample("x", torch.distributions.Normal(z, 1.0))

    tr = E.trace(E.condition(model, {"z": torch.tensor(0.5)})).get_trace()
    assert list(tr) == ["z", "x"]
    assert tr["z"]["is_observed"] and tr["z"]["value"].item() == 0.5
    assert not tr["x"]["is_observed"]


def test_params_keep_their_constraint_and_an_unconstrained_leaf(E):
    value = E.param(
        "s", torch.tensor(2.0), constraint=torch.distributions.constraints.positive
    )
    leaf, _ = E.PARAM_STORE["s"]
    assert leaf.is_leaf and leaf.requires_grad
    torch.testing.assert_close(leaf.detach(), torch.tensor(2.0).log())
    torch.testing.assert_close(value.detach(), torch.tensor(2.0))
    # a later call without an initial value returns the stored param
    torch.testing.assert_close(E.param("s").detach(), torch.tensor(2.0))


def test_svi_updates_only_the_params_a_step_touches(E):
    def model():
        E.sample("z", torch.distributions.Normal(0.0, 1.0))

    def guide(use_other):
        loc = E.param("other" if use_other else "loc", torch.tensor(0.0))
        E.sample("z", torch.distributions.Normal(loc, 1.0))

    svi = E.SVI(lambda use_other: model(), guide, E.Adam({"lr": 0.1}), E.Trace_ELBO())
    svi.step(False)
    svi.step(True)  # "other" appears late; "loc" is not touched
    loc_after_one = E.param("loc").item()
    svi.step(True)
    assert E.param("loc").item() == loc_after_one
    assert E.param("other").item() != 0.0
    assert all(leaf.grad is None for leaf, _ in E.PARAM_STORE.values())
