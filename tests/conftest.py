"""Test configuration shared by every test file.

- Property tests are derandomized, so every run checks the same examples.
- Pyro (the oracle) is imported once here with its import-time warning silenced: without ipywidgets,
  tqdm warns about notebook progress bars. Test files then import pyro plainly.
- ``clean_state`` leaves both parameter stores empty, validation on and the handler stack empty
  around a test; files that touch global state use it with
  ``pytestmark = pytest.mark.usefixtures("clean_state")``.
- ``pyro_fix_latents(fn, data)`` gives Pyro's latent sample sites fixed values and keeps them
  latent, as ppl's ``fix_latents`` does (Pyro has no such handler): the ELBO comparisons use it.
- ``run_in_threads(*functions, barrier=None)`` runs each function in a thread of its own and
  returns their results, or raises the first error: the thread-safety tests use it.
"""

import threading
import warnings

import pytest
from hypothesis import HealthCheck, settings

from ppl.params import clear_param_store
from ppl.runtime import enable_validation, get_stack

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import pyro
    from pyro.poutine.messenger import Messenger as PyroMessenger

settings.register_profile(
    "ppl",
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ppl")


@pytest.fixture
def clean_state():
    clear_param_store()
    pyro.clear_param_store()
    enable_validation(True)
    yield
    enable_validation(True)
    clear_param_store()
    pyro.clear_param_store()
    stack = get_stack()  # the main thread's; a thread's own stack ends with the thread
    leftover = list(stack)
    stack.clear()
    assert leftover == [], f"a test left handlers on the stack: {leftover}"


class _PyroFixLatents(PyroMessenger):
    def __init__(self, data):
        super().__init__()
        self.data = data

    def _pyro_sample(self, msg):
        if msg["name"] in self.data and not msg["is_observed"]:
            msg["value"] = self.data[msg["name"]]


@pytest.fixture
def pyro_fix_latents():
    return lambda fn, data: _PyroFixLatents(data)(fn)


def _run_in_threads(*functions, barrier=None, timeout=30.0):
    # Each function in a thread of its own; their results in order, or the first error. A failing
    # thread aborts the barrier, so that the others stop waiting for it instead of timing out.
    results, errors = [None] * len(functions), []

    def run(i):
        try:
            results[i] = functions[i]()
        except BaseException as error:  # handed to the main thread below
            errors.append(error)
            if barrier is not None:
                barrier.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(functions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    if errors:
        raise errors[0]
    return results


@pytest.fixture
def run_in_threads():
    return _run_in_threads
