# Startup file of the perturbed notebook run (`make notebooks-perturbed`): IPYTHONDIR points here.
#
# It gives each chapter's kernel another allocation history before the first cell runs: torch is
# imported early and tensors of odd sizes stay alive, so every later tensor lands at another address
# and alignment. Vectorised kernels and MKL handle unaligned heads and tails separately, so a result
# that depends on its last bit, and a printed number downstream of it, can change here. Nothing is
# added to the notebook's namespace.
import sys as _sys

import torch as _torch

_sys._ppl_perturbation = [
    _torch.empty(n) for n in (1, 3, 5, 17, 33, 65, 129, 1025, 4097, 65537)
]
_sys._ppl_perturbation += [
    _torch.ones(n, dtype=_torch.float64).cumsum(0) for n in (7, 31, 1000)
]
del _sys, _torch
