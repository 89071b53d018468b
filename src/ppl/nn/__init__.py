"""Neural networks inside models (chapter 12): Pyro's ``pyro.nn``.

``PyroModule`` is a ``torch.nn.Module`` whose attributes are Pyro statements: an
attribute set to ``PyroParam(init, constraint)`` (or an ``nn.Parameter``) is a param
site, one set to ``PyroSample(prior)`` a sample site, named by the attribute's path in
the module tree (``"linear.weight"``) and drawn once per call of the module or of a
method decorated with ``pyro_method``. ``PyroModule[nn.Linear]`` is the Pyro version of
any module class (``PyroModuleList`` for ``nn.ModuleList``), and ``to_pyro_module_``
converts a built network in place. The code is in ``ppl.nn.module``.
"""

from ppl.nn import module
from ppl.nn.module import (
    PyroModule,
    PyroModuleList,
    PyroParam,
    PyroSample,
    clear,
    pyro_method,
    to_pyro_module_,
)

__all__ = [
    "module",
    "PyroModule",
    "PyroModuleList",
    "PyroParam",
    "PyroSample",
    "clear",
    "pyro_method",
    "to_pyro_module_",
]
