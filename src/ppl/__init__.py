"""ppl: a small Pyro-compatible probabilistic programming package.

The book builds it chapter by chapter; each module is the code of the chapters named here.

============================  ==========  ============================================
module                        chapter     holds
============================  ==========  ============================================
``ppl.exact``                 1, 2        factors over named discrete variables; grid
                                          posteriors and conjugate oracles
``ppl.optim``                 3, 8        ``minimize``; Pyro's optimizer wrappers
``ppl.distributions``         4           torch's distributions with Pyro's
                                          ``to_event``/``expand``/``mask``; ``Delta``
``ppl.params``                4           the parameter store
``ppl.infer``                 5, 6, 8,    ELBO and gradient estimators;
                              9, 10, 11   ``Trace_ELBO``, ``TraceMeanField_ELBO``,
                                          ``SVI``, ``Predictive``, ``Importance``
``ppl.infer.autoguide``       10          guides built from the model: ``AutoNormal``,
                                          ``AutoMultivariateNormal``, ...; init
                                          strategies
``ppl.infer.predictive``      10          ``Predictive``: prior and posterior
                                          predictive draws
``ppl.infer.importance``      11          ``Importance``, the evidence, effective
                                          sample size
``ppl.nn``                    12          ``PyroModule``, ``PyroParam``, ``PyroSample``:
                                          networks inside models
``ppl.runtime``               7           messages, the handler stack, validation
``ppl.primitives``            7           ``sample``, ``param``, ``factor``, ...
``ppl.handlers``              7           ``trace``, ``replay``, ``condition``, ...
``ppl.plates``                9           ``plate``: conditional independence
``ppl.poutine``               7           ``ppl.handlers`` under Pyro's module name,
                                          with Pyro's submodules (``messenger``, ...)
``ppl.util``                  7           Pyro's ``pyro.util``: ``set_rng_seed``, ...
============================  ==========  ============================================

Pyro's top-level names live here too, so that ``import ppl as pyro`` runs Pyro programs.
"""

from ppl import (
    distributions,
    exact,
    handlers,
    infer,
    nn,
    optim,
    params,
    plates,
    poutine,
    primitives,
    runtime,
    util,
)
from ppl.params import clear_param_store, get_param_store
from ppl.plates import plate
from ppl.primitives import deterministic, factor, module, param, sample
from ppl.runtime import (
    enable_validation,
    is_validation_enabled,
    set_rng_seed,
    validation_enabled,
)

__version__ = "0.1.0"
__all__ = [
    "distributions",
    "exact",
    "handlers",
    "infer",
    "nn",
    "optim",
    "params",
    "plates",
    "poutine",
    "primitives",
    "runtime",
    "util",
    "clear_param_store",
    "get_param_store",
    "deterministic",
    "factor",
    "module",
    "param",
    "plate",
    "sample",
    "enable_validation",
    "is_validation_enabled",
    "set_rng_seed",
    "validation_enabled",
]
