"""Independent programs in independent threads (issue: threads corrupted each other's traces).

The handler stack, the plate-dimension allocator and SVI's re-entrancy guard are per thread; the
param store is shared, as in Pyro, so threads that train at the same time use disjoint param names.

The programs here draw no random numbers (a Delta guide, a MAP fit): torch's generator is shared by
all threads, so a program that draws would get another stream in every interleaving. Without draws,
each thread's SVI must give bitwise the results the same program gives when it runs alone.
"""

from __future__ import annotations

import sys
import threading

import pytest
import torch

import ppl
import ppl.distributions as dist
from ppl.distributions import constraints
from ppl.infer import SVI, Trace_ELBO
from ppl.optim import Adam
from ppl.runtime import get_stack

pytestmark = pytest.mark.usefixtures("clean_state")

NUM_STEPS = 60


def make_program(prefix: str, data: torch.Tensor):
    """A plated model with a global and a local latent, and a Delta guide whose params start with prefix."""

    def model():
        loc = ppl.sample("loc", dist.Normal(0.0, 10.0))
        with ppl.plate("groups", 2, dim=-2):
            offset = ppl.sample("offset", dist.Normal(0.0, 1.0))
            with ppl.plate("data", data.shape[-1]):
                ppl.sample("x", dist.Normal(loc + offset, 1.0), obs=data)

    def guide():
        loc = ppl.param(f"{prefix}_loc", torch.tensor(0.0))
        offset = ppl.param(f"{prefix}_offset", torch.zeros(2, 1))
        scale = ppl.param(
            f"{prefix}_scale", torch.tensor(1.0), constraint=constraints.positive
        )
        ppl.sample("loc", dist.Delta(loc * scale))
        with ppl.plate("groups", 2, dim=-2):
            ppl.sample("offset", dist.Delta(offset))

    return model, guide


def train(
    prefix: str, data: torch.Tensor, barrier: threading.Barrier | None = None
) -> list[float]:
    model, guide = make_program(prefix, data)
    svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO())
    losses = []
    for _ in range(NUM_STEPS):
        if barrier is not None:
            barrier.wait()  # both threads take each step at the same time
        losses.append(svi.step())
    assert get_stack() == [], "SVI.step left a handler on this thread's stack"
    return losses


def final_params(prefix: str) -> dict[str, torch.Tensor]:
    store = ppl.get_param_store()
    return {
        name: store[name].detach().clone() for name in store if name.startswith(prefix)
    }


DATA = {
    "a": torch.tensor([[1.0, 2.0, 3.0], [2.0, 2.5, 3.5]]),
    "b": torch.tensor([[-4.0, -5.0, -3.0], [-1.0, 0.0, 1.0]]),
}


@pytest.fixture
def switch_often():
    # Hand the GIL over every microsecond, so the two threads interleave inside each step.
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def test_two_threads_train_their_own_programs_as_if_alone(switch_often, run_in_threads):
    alone = {}
    for prefix, data in DATA.items():
        alone[prefix] = (train(prefix, data), final_params(prefix))
    ppl.clear_param_store()

    barrier = threading.Barrier(2, timeout=30)
    runs = [
        lambda prefix=prefix: train(prefix, DATA[prefix], barrier) for prefix in DATA
    ]
    results = dict(zip(DATA, run_in_threads(*runs, barrier=barrier)))
    for prefix in DATA:
        assert results[prefix] == alone[prefix][0], (
            f"thread {prefix}: other losses than alone"
        )
        params = final_params(prefix)
        assert params.keys() == alone[prefix][1].keys()
        for name, value in params.items():
            assert torch.equal(value, alone[prefix][1][name]), name
    assert get_stack() == []


def test_a_handler_entered_in_one_thread_is_not_seen_in_another():
    entered, checked = threading.Event(), threading.Event()
    seen = {}

    def holder():
        with ppl.handlers.trace() as tr:
            seen["holder"] = len(get_stack())
            entered.set()
            checked.wait(timeout=30)
        seen["holder trace"] = list(tr.trace.nodes)

    thread = threading.Thread(target=holder)
    thread.start()
    entered.wait(timeout=30)
    seen["main"] = len(get_stack())
    # a site sampled here while the other thread sits inside its trace is not recorded there
    ppl.sample("z", dist.Normal(0.0, 1.0))
    checked.set()
    thread.join()
    assert seen == {"holder": 1, "main": 0, "holder trace": []}
