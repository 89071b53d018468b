"""Pyro's ``pyro.util`` names: seeding, saving and restoring the random generators.

``set_rng_seed(seed)`` seeds torch, ``random`` and numpy (when installed), as
``pyro.util.set_rng_seed`` does; ``get_rng_state()`` and ``set_rng_state(state)`` save
and restore all three. They are ``ppl.runtime``'s (chapter 7), here under Pyro's module
name; ``ppl.set_rng_seed`` is the same function.
"""

from ppl.runtime import get_rng_state, set_rng_seed, set_rng_state

__all__ = ["get_rng_state", "set_rng_seed", "set_rng_state"]
