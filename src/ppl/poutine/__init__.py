"""Pyro's module name for ppl's effect handlers: ``import ppl.poutine as poutine``.

``ppl.poutine`` holds the handlers of ``ppl.handlers`` (chapter 7) under the names a Pyro
program reads from ``pyro.poutine``: ``trace``, ``replay``, ``condition``, ``block``,
``substitute``, ``scale``, ``mask``, ``seed``, ``Trace``, ``enable_validation`` and
``is_validation_enabled``, and ppl's own ``fix_latents``.

Its submodules are Pyro's module names for ppl's modules, so that Pyro's imports run
unchanged (``from ppl.poutine.messenger import Messenger``):

- ``messenger``, ``runtime`` and ``util`` are ``ppl.runtime`` (``Messenger``,
  ``Message``, ``apply_stack``, ``am_i_wrapped``, ``enable_validation``,
  ``site_is_subsample``, ``prune_subsample_sites``, ...);
- ``handlers``, ``trace_struct`` and the handler classes' modules ``trace_messenger``,
  ``condition_messenger``, ``replay_messenger``, ``substitute_messenger``,
  ``block_messenger``, ``scale_messenger``, ``mask_messenger`` and ``seed_messenger``
  are ``ppl.handlers`` (``TraceMessenger``, ``ConditionMessenger``, ``Trace``, ...);
- ``plate_messenger`` and ``indep_messenger`` are ``ppl.plates``
  (``CondIndepStackFrame``).

A name that Pyro has and ppl lacks (``effectful``, ``do``, ``enum``, ``markov``, ...) is
an ImportError or an AttributeError, never a different handler.
"""

import sys

from ppl import handlers, plates, runtime
from ppl.handlers import (
    Trace,
    block,
    condition,
    fix_latents,
    mask,
    replay,
    scale,
    seed,
    substitute,
    trace,
)
from ppl.runtime import enable_validation, is_validation_enabled

# Pyro's module name -> the ppl module that holds its names
SUBMODULES = {
    "messenger": runtime,
    "runtime": runtime,
    "util": runtime,
    "handlers": handlers,
    "trace_struct": handlers,
    "block_messenger": handlers,
    "condition_messenger": handlers,
    "mask_messenger": handlers,
    "replay_messenger": handlers,
    "scale_messenger": handlers,
    "seed_messenger": handlers,
    "substitute_messenger": handlers,
    "trace_messenger": handlers,
    "indep_messenger": plates,
    "plate_messenger": plates,
}
"""Pyro's submodule names under ``pyro.poutine``, each mapped to the ppl module it reads as."""

messenger = util = runtime
trace_struct = block_messenger = condition_messenger = mask_messenger = handlers
replay_messenger = scale_messenger = seed_messenger = substitute_messenger = handlers
trace_messenger = handlers
indep_messenger = plate_messenger = plates

# `import ppl.poutine.messenger` looks in sys.modules first: register each alias there
for _name, _module in SUBMODULES.items():
    sys.modules[f"{__name__}.{_name}"] = _module
del _name, _module

__all__ = [
    "Trace",
    "block",
    "condition",
    "enable_validation",
    "fix_latents",
    "is_validation_enabled",
    "mask",
    "replay",
    "scale",
    "seed",
    "substitute",
    "trace",
]
