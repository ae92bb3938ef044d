"""Great Expectations, imported without the statistics library its import never uses.

`import great_expectations` registers every core expectation, and the KL-divergence one
imports `scipy.stats` at module level: about 40% of GX's import (1-1.5 s of a small run on
this machine), for functions called only when a suite holds that expectation or a
distribution metric. `scipy.stats` is registered with the standard library's LazyLoader
first: the module object exists, and its code runs at the first attribute read, so a suite
that does use it still gets the real module.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType

_DEFERRED = "scipy.stats"
_lock = threading.Lock()


def import_great_expectations() -> ModuleType:
    """`great_expectations`, imported once, with `scipy.stats` deferred to its first use."""
    with _lock:
        if "great_expectations" not in sys.modules:
            _defer(_DEFERRED)
        return importlib.import_module("great_expectations")


def _defer(name: str) -> None:
    """Register `name` as a lazily executed module (unless it is already imported)."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)  # imports the parent package (cheap for scipy)
    if spec is None or spec.loader is None:
        return
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    setattr(sys.modules[parent], child, module)  # `from scipy import stats` finds it here
    loader.exec_module(module)
