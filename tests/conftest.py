"""Test configuration shared by every test file.

- Property tests are derandomized, so every run checks the same examples.
- Pyro (the oracle) is imported once here with its import-time warning silenced: without ipywidgets,
  tqdm warns about notebook progress bars. Test files then import pyro plainly.
- ``clean_state`` leaves both parameter stores empty, validation on and the handler stack empty
  around a test; files that touch global state use it with
  ``pytestmark = pytest.mark.usefixtures("clean_state")``.
- ``pyro_fix_latents(fn, data)`` gives Pyro's latent sample sites fixed values and keeps them
  latent, which ppl's ``substitute`` does and Pyro's does not: the ELBO comparisons use it.
"""

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
    "ppl", derandomize=True, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow])
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
