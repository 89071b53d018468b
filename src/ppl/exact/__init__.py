"""Exact answers, the book's oracles: discrete factors and Bayes (chapters 1 and 2).

- ``ppl.exact.factor``: ``Factor``, a table over named discrete variables.
- ``ppl.exact.bayes``: ``BetaBernoulli`` and ``NormalNormal`` (conjugate closed forms),
  ``grid_posterior`` and ``GridPosterior`` (any one-dimensional posterior on a grid).
"""

from ppl.exact.bayes import BetaBernoulli, GridPosterior, NormalNormal, grid_posterior
from ppl.exact.factor import Factor

__all__ = ["Factor", "BetaBernoulli", "GridPosterior", "NormalNormal", "grid_posterior"]
