"""Inference: ELBO and gradient estimators (chapters 5, 6) and the SVI engine (8, 9).

Pyro's ``pyro.infer``: ``SVI`` with ``Trace_ELBO`` or ``TraceMeanField_ELBO`` fits a guide to a
model; the estimators below them are the book's building blocks. ``Importance`` (chapter 11)
weighs a guide's draws against the model and estimates the evidence. ``autoguide``
(chapter 10) builds guides from a model; ``Predictive`` draws from predictive distributions.
"""

from ppl.infer import autoguide
from ppl.infer.compiled import JitTrace_ELBO, JitTraceMeanField_ELBO

# Not the function ``elbo``: that name stays the module ``ppl.infer.elbo``, as in Pyro.
from ppl.infer.elbo import elbo_estimate, elbo_samples, kl_mc, mean_and_stderr
from ppl.infer.estimators import (
    MovingAverageBaseline,
    enumerated_expectation,
    gradient_samples,
    pathwise_surrogate,
    score_function_surrogate,
    surrogate_term,
)
from ppl.infer.importance import (
    EmpiricalMarginal,
    Importance,
    vectorized_importance_weights,
)
from ppl.infer.predictive import Predictive
from ppl.infer.svi import SVI
from ppl.infer.trace_elbo import Trace_ELBO, TraceMeanField_ELBO

__all__ = [
    "elbo_estimate",
    "elbo_samples",
    "kl_mc",
    "mean_and_stderr",
    "MovingAverageBaseline",
    "enumerated_expectation",
    "gradient_samples",
    "pathwise_surrogate",
    "score_function_surrogate",
    "surrogate_term",
    "EmpiricalMarginal",
    "Importance",
    "vectorized_importance_weights",
    "autoguide",
    "Predictive",
    "SVI",
    "Trace_ELBO",
    "TraceMeanField_ELBO",
    "JitTrace_ELBO",
    "JitTraceMeanField_ELBO",
]
