"""ppl: a small Pyro-compatible probabilistic programming package, built chapter by chapter.

This file is written by hand and states the public API; every other module is generated from the
chapters in ``book/`` by ``tools/export.py``.
"""

from ppl import exact

__version__ = "0.1.0"
__all__ = ["exact"]
