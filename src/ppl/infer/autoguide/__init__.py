"""Automatic guides (chapter 10): Pyro's ``pyro.infer.autoguide``.

``AutoDelta``, ``AutoNormal``, ``AutoDiagonalNormal``, ``AutoMultivariateNormal`` and
``AutoLowRankMultivariateNormal`` build a guide from the model's latent sites; the
``init_to_*`` strategies choose where their params start
(``ppl.infer.autoguide.initialization``, as in Pyro).
"""

from ppl.infer.autoguide import guides, initialization
from ppl.infer.autoguide.guides import (
    AutoContinuous,
    AutoDelta,
    AutoDiagonalNormal,
    AutoGuide,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
    AutoNormal,
)
from ppl.infer.autoguide.initialization import (
    InitMessenger,
    init_to_feasible,
    init_to_mean,
    init_to_median,
    init_to_sample,
    init_to_uniform,
    init_to_value,
)

__all__ = [
    "guides",
    "initialization",
    "AutoContinuous",
    "AutoDelta",
    "AutoDiagonalNormal",
    "AutoGuide",
    "AutoLowRankMultivariateNormal",
    "AutoMultivariateNormal",
    "AutoNormal",
    "InitMessenger",
    "init_to_feasible",
    "init_to_mean",
    "init_to_median",
    "init_to_sample",
    "init_to_uniform",
    "init_to_value",
]
