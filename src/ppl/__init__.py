"""ppl: a small Pyro-compatible probabilistic programming package, built chapter by chapter.

This file is written by hand and states the public API; every other module (except the
subpackages' ``__init__.py``) is generated from the chapters in ``book/`` by ``tools/export.py``.

============================  ==========  ============================================
module                        chapter     holds
============================  ==========  ============================================
``ppl.exact``                 1, 2        factors over named discrete variables; grid
                                          posteriors and conjugate oracles
``ppl.optim``                 3           ``minimize``, a gradient-descent loop
``ppl.distributions``         4           torch's distributions with Pyro's
                                          ``to_event``/``expand``/``mask``; ``Delta``
``ppl.params``                4           the parameter store
``ppl.infer``                 5, 6        ELBO and gradient estimators
============================  ==========  ============================================
"""

from ppl import distributions, exact, infer, optim, params
from ppl.params import clear_param_store, get_param_store

__version__ = "0.1.0"
__all__ = ["distributions", "exact", "infer", "optim", "params", "clear_param_store", "get_param_store"]
