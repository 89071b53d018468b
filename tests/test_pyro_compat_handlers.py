"""Pyro programs run unchanged on ppl's effect handlers: the oracle is Pyro itself.

- ``Messenger``: Pyro's hooks (``_pyro_sample``, ``_pyro_post_sample``, ``_process_message``,
  ...), ``__enter__``/``__exit__``, decorators, ``msg["stop"]`` and ``msg["done"]``, with Pyro's
  effect-handler tutorial's log-joint handlers written once and run on both engines;
- ``substitute`` with Pyro 1.9's meaning (param sites only, warnings included) and ppl's
  ``fix_latents`` against the Pyro handler of ``tests/conftest.py``;
- ``module``: the store holds the module's own parameters, as Pyro's does, checked by training
  both engines side by side;
- Pyro's module names: ``ppl.poutine`` (and its submodules), ``ppl.util``, and
  ``ppl.distributions.enable_validation``.
"""

from __future__ import annotations

import importlib
import random
import warnings

import pyro  # first imported, with its warning silenced, in conftest.py
import pyro.distributions as pdist
import pyro.infer
import pyro.optim
import pyro.util
import pytest
import torch
from pyro import poutine as pyro_poutine
from pyro.poutine.runtime import _PYRO_STACK

import ppl
import ppl.distributions as dist
import ppl.infer
import ppl.optim
import ppl.poutine as poutine
import ppl.util
from ppl.runtime import get_stack

pytestmark = pytest.mark.usefixtures("clean_state")

# Each engine: its primitives, distributions and handlers, under Pyro's names.
PPL = (ppl, dist, poutine)
PYRO = (pyro, pdist, pyro_poutine)


def sites(tr):
    return [name for name in tr.nodes if not name.startswith("_")]


def caught(fn):
    """Run fn with every warning recorded; return (fn's result, the warnings' messages)."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = fn()
    return result, [str(w.message) for w in seen]


# --- the tutorial's handlers --------------------------------------------------------------------


def tutorial_handlers(P, D, H):
    """LogJointMessenger and LogJointMessenger2 of Pyro's tutorial "Poutine: a guide to
    programming with effect handlers", on engine (P, D, H), and its model."""

    def weighing(guess):
        weight = P.sample("weight", D.Normal(guess, 1.0))
        return P.sample("measurement", D.Normal(weight, 0.75))

    class LogJointMessenger(H.messenger.Messenger):
        def __init__(self, cond_data):
            self.data = cond_data

        def __call__(self, fn):
            def _fn(*args, **kwargs):
                with self:
                    fn(*args, **kwargs)
                    return self.logp.clone()

            return _fn

        def __enter__(self):
            self.logp = torch.tensor(0.0)
            return super().__enter__()

        def __exit__(self, exc_type, exc_value, traceback):
            self.logp = torch.tensor(0.0)
            return super().__exit__(exc_type, exc_value, traceback)

        def _pyro_sample(self, msg):
            assert msg["name"] in self.data
            msg["value"] = self.data[msg["name"]]
            msg["is_observed"] = True
            self.logp = (
                self.logp + (msg["scale"] * msg["fn"].log_prob(msg["value"])).sum()
            )

    class LogJointMessenger2(LogJointMessenger):
        def _pyro_sample(self, msg):
            if msg["name"] in self.data:
                msg["value"] = self.data[msg["name"]]
                msg["done"] = True

        def _pyro_post_sample(self, msg):
            assert msg["done"]
            self.logp = (
                self.logp + (msg["scale"] * msg["fn"].log_prob(msg["value"])).sum()
            )

    return weighing, LogJointMessenger, LogJointMessenger2


DATA = {"measurement": torch.tensor(9.5), "weight": torch.tensor(8.23)}


@pytest.mark.parametrize("which", [1, 2])
def test_tutorial_log_joint_handler_gives_pyros_value(which):
    results = {}
    for label, engine in [("ppl", PPL), ("pyro", PYRO)]:
        weighing, *handlers = tutorial_handlers(*engine)
        handler = handlers[which - 1]
        with handler(cond_data=DATA) as m:
            weighing(8.5)
            in_block = m.logp.clone()
        as_function = handler(cond_data=DATA)(weighing)(8.5)
        by_trace = (
            engine[2]
            .trace(engine[2].condition(weighing, data=DATA))
            .get_trace(8.5)
            .log_prob_sum()
        )
        results[label] = (in_block, as_function, by_trace)
    expected = dist.Normal(8.5, 1.0).log_prob(DATA["weight"]) + dist.Normal(
        DATA["weight"], 0.75
    ).log_prob(DATA["measurement"])
    for value in [*results["ppl"], *results["pyro"]]:
        assert torch.allclose(value, expected)
    assert round(results["ppl"][0].item(), 4) == -3.0203  # what the tutorial prints
    assert get_stack() == [] and _PYRO_STACK == []


def test_tutorial_handler_with_a_float_fails_in_both():
    # The tutorial's handler given a Python float: torch refuses it in log_prob, in both engines
    for engine in (PPL, PYRO):
        weighing, handler, _ = tutorial_handlers(*engine)
        with pytest.raises(ValueError, match="must be a Tensor"):
            with handler(cond_data={"measurement": 9.5, "weight": 8.23}):
                weighing(8.5)
    assert get_stack() == [] and _PYRO_STACK == []


# --- the hooks, composed ------------------------------------------------------------------------


def hooks_and_model(P, D, H):
    class Log(H.messenger.Messenger):
        """Log every Pyro hook it gets."""

        def __init__(self, label, log):
            self.label, self.log = label, log

        def _pyro_sample(self, msg):
            self.log.append(f"{self.label} sample {msg['name']}")

        def _pyro_post_sample(self, msg):
            self.log.append(f"{self.label} post_sample {msg['name']}")

        def _pyro_param(self, msg):
            self.log.append(f"{self.label} param {msg['name']}")

        def _pyro_post_param(self, msg):
            self.log.append(f"{self.label} post_param {msg['name']}")

    class Hide(H.messenger.Messenger):
        """Set msg["stop"] on the sites named, in _pyro_sample."""

        def __init__(self, names):
            self.names = names

        def _pyro_sample(self, msg):
            msg["stop"] = msg["name"] in self.names

    class FixAll(H.messenger.Messenger):
        """Override _process_message: every latent sample site gets 0.25, done."""

        def _process_message(self, msg):
            if msg["type"] == "sample" and not msg["is_observed"]:
                msg["value"], msg["done"] = torch.tensor(0.25), True

    class Record(H.messenger.Messenger):
        """Override _postprocess_message: record the final values."""

        def __init__(self):
            self.values = {}

        def _postprocess_message(self, msg):
            self.values[msg["name"]] = msg["value"]

    def model():
        theta = P.param("theta", torch.tensor(0.5))
        z = P.sample("z", D.Beta(1.0 + theta**2, 2.0))
        P.sample("x", D.Bernoulli(z).expand([3]).to_event(1), obs=torch.ones(3))
        return z

    return Log, Hide, FixAll, Record, model


def test_hooks_are_called_in_pyros_order_and_stop_hides_from_outer_handlers():
    logs = []
    for engine in (PPL, PYRO):
        Log, Hide, _, _, model = hooks_and_model(*engine)
        log = []
        with Log("outer", log), Hide(["z"]), Log("inner", log):
            model()
        logs.append(log)
    assert logs[0] == logs[1]
    assert "outer sample z" not in logs[0] and "inner post_sample z" in logs[0]
    assert logs[0][:2] == ["inner param theta", "outer param theta"]


def test_process_and_postprocess_message_overrides_and_done():
    results = []
    for engine in (PPL, PYRO):
        _, _, FixAll, Record, model = hooks_and_model(*engine)
        record = Record()
        with engine[2].trace() as tr, record, FixAll():
            z = model()
        log_joint = tr.trace.log_prob_sum()
        results.append(
            (z, record.values, log_joint, tr.trace.nodes["z"]["is_observed"])
        )
    (z, values, log_joint, observed), (z2, values2, log_joint2, observed2) = results
    assert z.item() == z2.item() == 0.25 and observed is observed2 is False
    assert list(values) == list(values2) == ["theta", "z", "x"]
    assert torch.allclose(log_joint, log_joint2)


@pytest.mark.parametrize("flag", ["done", "is_observed"])
def test_a_site_left_without_a_value_is_an_error_in_both(flag):
    for P, D, H in (PPL, PYRO):

        class NoValue(H.messenger.Messenger):
            def _pyro_sample(self, msg):
                msg[flag] = True

        error = RuntimeError if P is ppl else AssertionError  # Pyro: assert
        with pytest.raises(error):
            with NoValue():
                P.sample("z", D.Normal(0.0, 1.0))
    assert get_stack() == [] and _PYRO_STACK == []


def test_a_plain_messenger_changes_nothing():
    traces = []
    for P, D, H in (PPL, PYRO):
        _, _, _, _, model = hooks_and_model(P, D, H)
        P.set_rng_seed(3)
        traces.append(H.trace(H.messenger.Messenger()(model)).get_trace())
    assert sites(traces[0]) == sites(traces[1])
    assert torch.equal(traces[0].nodes["z"]["value"], traces[1].nodes["z"]["value"])


def test_a_handler_decorates_functions_and_methods():
    counts = []
    for P, D, H in (PPL, PYRO):

        class Count(H.messenger.Messenger):
            n = 0

            def _pyro_sample(self, msg):
                Count.n += 1

        class Experiment:
            def __init__(self, loc):
                self.loc = loc

            @Count()
            def run(self, scale):
                return P.sample("y", D.Normal(self.loc, scale))

        @Count()
        def draw():
            return P.sample("w", D.Normal(0.0, 1.0))

        Experiment(1.0).run(2.0)
        draw()
        counts.append(Count.n)
    assert counts == [2, 2]


def test_an_exception_empties_the_stack_under_pyro_style_handlers():
    for P, D, H in (PPL, PYRO):
        Log, _, _, _, _ = hooks_and_model(P, D, H)
        log = []
        with pytest.raises(RuntimeError, match="inside"):
            with Log("outer", log):
                inner = Log("inner", log)
                inner.__enter__()  # never exited: the exception removes it too
                raise RuntimeError("inside")
    assert get_stack() == [] and _PYRO_STACK == []


def test_subclass_hooks_of_a_builtin_handler():
    # Pyro's TraceMessenger leaves _process_message to the base, so a subclass's
    # _pyro_sample runs, in both engines
    results = []
    for P, D, H in (PPL, PYRO):

        class TraceAtZero(H.trace_messenger.TraceMessenger):
            def _pyro_sample(self, msg):
                if not msg["is_observed"]:
                    msg["value"] = torch.tensor(0.0)

        with TraceAtZero() as tr:
            P.sample("z", D.Normal(1.0, 1.0))
        results.append(tr.trace.nodes["z"]["value"])
    assert results[0].item() == results[1].item() == 0.0
    # ppl's handlers override process_message: hooks they would ignore are an error
    with pytest.raises(TypeError, match="_pyro_sample.*ConditionMessenger"):

        class MyCondition(poutine.condition_messenger.ConditionMessenger):
            def _pyro_sample(self, msg):
                pass

    with pytest.raises(TypeError, match="_postprocess_message.*TraceMessenger"):

        class MyTrace(poutine.trace_messenger.TraceMessenger):
            def _postprocess_message(self, msg):
                pass


# --- substitute and fix_latents -----------------------------------------------------------------


def normal_model(P, D):
    def model():
        theta = P.param("theta", torch.tensor(0.3))
        z = P.sample("z", D.Normal(theta, 1.0))
        P.sample("x", D.Normal(z, 0.5), obs=torch.tensor(1.2))

    return model


@pytest.mark.parametrize(
    "data, warns",
    [
        ({"theta": torch.tensor(-1.0)}, False),
        ({"z": torch.tensor(0.5)}, True),
        ({"theta": torch.tensor(-1.0), "x": torch.tensor(0.0)}, True),
    ],
)
def test_substitute_replaces_params_only_and_warns_as_pyro(data, warns):
    results = []
    for P, D, H in (PPL, PYRO):
        P.clear_param_store()
        program = H.trace(
            H.seed(H.substitute(normal_model(P, D), data=data), rng_seed=0)
        )
        tr, messages = caught(program.get_trace)
        results.append((tr, messages))
    (ours, our_warnings), (theirs, their_warnings) = results
    assert bool(our_warnings) == bool(their_warnings) == warns
    for name in ("theta", "z", "x"):
        assert torch.equal(ours.nodes[name]["value"], theirs.nodes[name]["value"])
        assert ours.nodes[name]["is_observed"] == theirs.nodes[name]["is_observed"]
    assert "theta" not in ppl.get_param_store() or "theta" not in data
    assert torch.allclose(ours.log_prob_sum(), theirs.log_prob_sum())


def test_substitute_matches_a_module_param_by_its_short_name_only():
    for label, data, hit in [
        ("short", {"weight": torch.zeros(1, 2)}, True),
        ("full", {"net$$$weight": torch.zeros(1, 2)}, False),
    ]:
        results = []
        for P, D, H in (PPL, PYRO):
            P.clear_param_store()
            torch.manual_seed(0)
            net = torch.nn.Linear(2, 1)
            program = H.trace(H.substitute(lambda: P.module("net", net), data=data))
            tr, messages = caught(program.get_trace)
            value = tr.nodes["net$$$weight"]["value"]
            results.append((torch.equal(value, torch.zeros(1, 2)), messages))
        (ours, our_warnings), (theirs, their_warnings) = results
        assert ours == theirs == hit, label
        # both warn about a name that matched no param; ppl also when the module keeps
        # its own weight while the trace records another
        assert any("matched" in m or "did not find" in m for m in our_warnings) != hit
        assert bool(their_warnings) != hit


def test_fix_latents_is_pyro_with_its_latents_fixed(pyro_fix_latents):
    data = {
        "z": torch.tensor(0.5),
        "x": torch.tensor(-3.0),
    }  # x is observed: left alone
    ours = poutine.trace(poutine.fix_latents(normal_model(*PPL[:2]), data=data))
    theirs = pyro_poutine.trace(pyro_fix_latents(normal_model(*PYRO[:2]), data))
    ours, theirs = ours.get_trace(), theirs.get_trace()
    for name in ("theta", "z", "x"):
        assert torch.equal(ours.nodes[name]["value"], theirs.nodes[name]["value"])
        assert ours.nodes[name]["is_observed"] == theirs.nodes[name]["is_observed"]
    assert ours.nodes["z"]["value"] is data["z"] and not ours.nodes["z"]["is_observed"]
    assert torch.allclose(ours.log_prob_sum(), theirs.log_prob_sum())
    with pytest.raises(ValueError, match="fix_latents needs data"):
        poutine.fix_latents(normal_model(*PPL[:2]))


# --- module -------------------------------------------------------------------------------------


class Tied(torch.nn.Module):
    """An autoencoder whose decoder reuses the encoder's weight."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.enc = torch.nn.Linear(3, 2, bias=False)
        self.dec = torch.nn.Linear(2, 3)
        self.dec.weight = torch.nn.Parameter(self.enc.weight.detach().T.contiguous())
        self.tied = torch.nn.Linear(3, 3, bias=False)
        self.tied2 = torch.nn.Linear(3, 3, bias=False)
        self.tied2.weight = self.tied.weight

    def forward(self, x):
        return self.dec(torch.tanh(self.enc(x))) + self.tied2(self.tied(x))


X = torch.linspace(-1.0, 1.0, 12).reshape(4, 3)
Y = torch.sin(3 * X)


def regression(P, D, net):
    def model():
        P.module("net", net)
        with P.plate("rows", 4, dim=-2):
            P.sample("y", D.Normal(net(X), 0.5).to_event(0), obs=Y)

    return model


def test_module_registers_the_modules_own_parameters_as_pyro():
    nets = [Tied(), Tied()]
    ppl.module("net", nets[0])
    pyro.module("net", nets[1])
    assert list(ppl.get_param_store().keys()) == list(pyro.get_param_store().keys())
    for name, p in nets[0].named_parameters():
        assert ppl.param(f"net$$${name}") is p
    assert nets[0].tied.weight is nets[0].tied2.weight  # still tied


@pytest.mark.parametrize("steps", [5])
def test_svi_trains_the_module_as_pyro_and_a_torch_optimizer_built_before_shares_it(
    steps,
):
    ours, theirs = Tied(), Tied()
    # an optimizer over the module's parameters, built before the first module() call
    torch_optimizer = torch.optim.SGD(ours.parameters(), lr=0.0)
    guide = lambda: None  # noqa: E731 -- no latent sites
    svi = ppl.infer.SVI(
        regression(ppl, dist, ours),
        guide,
        ppl.optim.SGD({"lr": 0.05}),
        ppl.infer.Trace_ELBO(),
    )
    pyro_svi = pyro.infer.SVI(
        regression(pyro, pdist, theirs),
        guide,
        pyro.optim.SGD({"lr": 0.05}),
        pyro.infer.Trace_ELBO(),
    )
    for _ in range(steps):
        assert svi.step() == pytest.approx(pyro_svi.step(), rel=1e-6)
    for (name, a), (_, b) in zip(ours.named_parameters(), theirs.named_parameters()):
        torch.testing.assert_close(a, b, msg=name)
        assert ppl.param(f"net$$${name}") is a  # the store still holds the module's own
    assert ours.tied.weight is ours.tied2.weight
    # the torch optimizer steps exactly the tensors SVI trained
    assert {id(p) for g in torch_optimizer.param_groups for p in g["params"]} == {
        id(p) for _, p in ppl.get_param_store().named_parameters()
    }


def test_a_non_contiguous_parameter_is_trained_where_pyro_leaves_it():
    # Pyro's store keeps a contiguous copy of a transposed parameter, so the module keeps
    # its own, which SVI never steps (README: where ppl differs)
    trained = []
    for P, D, H, SVI, SGD, ELBO in [
        (*PPL, ppl.infer.SVI, ppl.optim.SGD, ppl.infer.Trace_ELBO),
        (*PYRO, pyro.infer.SVI, pyro.optim.SGD, pyro.infer.Trace_ELBO),
    ]:
        net = Tied()
        net.dec.weight = torch.nn.Parameter(net.dec.weight.detach().T.contiguous().T)
        before = net.dec.weight.detach().clone()
        SVI(regression(P, D, net), lambda: None, SGD({"lr": 0.05}), ELBO()).step()
        trained.append(not torch.equal(net.dec.weight, before))
        trained.append(P.param("net$$$dec.weight") is net.dec.weight)
    assert trained == [True, True, False, False]


def test_module_under_substitute_keeps_its_own_parameters_unless_asked():
    new = torch.zeros(2, 3)
    for update in (False, True):
        results = []
        for P, D, H in (PPL, PYRO):
            P.clear_param_store()
            net = Tied()
            own = net.enc.weight
            program = H.trace(
                H.substitute(
                    lambda: P.module("net", net, update_module_params=update),
                    data={"enc.weight": new},
                )
            )
            tr, messages = caught(program.get_trace)
            results.append(
                (net.enc.weight is own, tr.nodes["net$$$enc.weight"]["value"] is new)
            )
            if P is ppl:
                # ppl warns where the module computes with values its trace lacks
                assert any("keeps its own" in m for m in messages) != update
            # as in Pyro, a substituted param never reaches the store
            assert "net$$$enc.weight" not in P.get_param_store()
            assert "net$$$dec.bias" in P.get_param_store()
        assert results[0] == results[1] == (not update, True)


def test_update_module_params_keeps_tied_weights_tied_where_pyro_does_not():
    new = torch.zeros(3, 3)
    nets = {}
    for P, D, H in (PPL, PYRO):
        net = nets[P.__name__] = Tied()
        H.substitute(
            lambda: P.module("net", net, update_module_params=True),
            data={"tied.weight": new},
        )()
    assert nets["ppl"].tied.weight is nets["ppl"].tied2.weight is new
    # Pyro replaces the first occurrence only (README: where ppl differs)
    assert nets["pyro"].tied.weight is new and nets["pyro"].tied2.weight is not new


def test_a_new_module_under_an_old_name_keeps_its_own_with_a_warning_in_ppl():
    results = []
    for P in (ppl, pyro):
        first, second = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
        P.module("net", first)
        _, messages = caught(lambda: P.module("net", second))
        kept_own = second.weight is not P.param("net$$$weight")
        P.module("net", second, update_module_params=True)
        results.append((kept_own, second.weight is P.param("net$$$weight"), messages))
    (kept, updated, our_warnings), (kept2, updated2, their_warnings) = results
    assert kept and kept2 and updated and updated2
    assert any("keeps its own" in m for m in our_warnings) and their_warnings == []


def test_module_skips_frozen_parameters_with_pyros_warning():
    messages = []
    for P in (ppl, pyro):
        net = torch.nn.Linear(2, 1)
        net.bias.requires_grad_(False)
        _, seen = caught(lambda: P.module("net", net))
        assert list(P.get_param_store().keys()) == ["net$$$weight"]
        messages.append(seen)
        net.train(False)
        assert caught(lambda: P.module("net", net))[1] == []
    assert all("requires_grad=False" in m[0] for m in messages)


# --- Pyro's module names ------------------------------------------------------------------------

POUTINE_NAMES = [
    "Trace",
    "block",
    "condition",
    "enable_validation",
    "is_validation_enabled",
    "mask",
    "replay",
    "scale",
    "seed",
    "substitute",
    "trace",
]
SUBMODULE_NAMES = {
    "messenger": ["Messenger"],
    "runtime": ["Message", "apply_stack", "am_i_wrapped", "default_process_message"],
    "util": ["enable_validation", "is_validation_enabled"],
    "handlers": ["trace", "condition", "replay", "block", "substitute", "seed"],
    "trace_struct": ["Trace"],
    "trace_messenger": ["TraceMessenger", "TraceHandler"],
    "condition_messenger": ["ConditionMessenger"],
    "replay_messenger": ["ReplayMessenger"],
    "substitute_messenger": ["SubstituteMessenger"],
    "block_messenger": ["BlockMessenger"],
    "scale_messenger": ["ScaleMessenger"],
    "mask_messenger": ["MaskMessenger"],
    "seed_messenger": ["SeedMessenger"],
    "indep_messenger": ["CondIndepStackFrame"],
    "plate_messenger": [],
}


def test_ppl_poutine_has_pyros_names():
    for name in POUTINE_NAMES:
        assert hasattr(pyro_poutine, name), name  # a real Pyro name
        assert getattr(poutine, name) is getattr(ppl.handlers, name, None) or getattr(
            poutine, name
        ) is getattr(ppl.runtime, name)
    assert ppl.poutine is poutine and ppl.poutine.trace is ppl.handlers.trace


@pytest.mark.parametrize("submodule", sorted(SUBMODULE_NAMES))
def test_ppl_poutine_submodules_import_as_pyros(submodule):
    ours = importlib.import_module(f"ppl.poutine.{submodule}")
    theirs = importlib.import_module(f"pyro.poutine.{submodule}")
    assert getattr(poutine, submodule) is ours
    for name in SUBMODULE_NAMES[submodule]:
        assert hasattr(theirs, name), name
        assert hasattr(ours, name), name
    exec(f"from ppl.poutine.{submodule} import *", {})  # plain Pyro-style imports work


def test_import_ppl_as_pyro_runs_the_tutorials_imports():
    namespace = {}
    exec(
        "import ppl as pyro\n"
        "import ppl.poutine as poutine\n"
        "from ppl.poutine.trace_messenger import TraceMessenger\n"
        "from ppl.poutine.condition_messenger import ConditionMessenger\n"
        "Messenger = pyro.poutine.messenger.Messenger\n",
        namespace,
    )
    assert namespace["Messenger"] is ppl.runtime.Messenger
    assert namespace["TraceMessenger"] is ppl.handlers.TraceMessenger
    with pytest.raises(ImportError):  # a Pyro name ppl lacks fails loudly
        exec("from ppl.poutine.runtime import effectful", {})


def test_ppl_util_set_rng_seed_draws_as_pyros():
    draws = []
    for set_rng_seed in (ppl.util.set_rng_seed, pyro.util.set_rng_seed):
        set_rng_seed(11)
        draws.append((torch.rand(3), random.random()))
    assert torch.equal(draws[0][0], draws[1][0]) and draws[0][1] == draws[1][1]
    state = ppl.util.get_rng_state()
    a = torch.rand(())
    ppl.util.set_rng_state(state)
    assert torch.equal(a, torch.rand(()))


def test_distributions_validation_switch_as_pyros():
    for module in (dist, pdist):
        module.enable_validation(False)
        assert not module.is_validation_enabled()
        module.Normal(0.0, -1.0)  # torch's argument check is off
        module.enable_validation(True)
        assert module.is_validation_enabled()
        with pytest.raises(ValueError):
            module.Normal(0.0, -1.0)
        with module.validation_enabled(False):
            module.Normal(0.0, -1.0)
        assert module.is_validation_enabled()
    assert dist.enable_validation is ppl.enable_validation
