"""dscbench: what depthwise-separable convolution buys on your hardware, measured honestly.

The Python API (dscbench/api.py; the CLI is a thin shell over it)::

    import dscbench

    rs = dscbench.run(in_channels=[32, 64], size=56, min_time=0.5, rounds=3)  # a ResultSet
    rs.results, rs.samples                                 # DataFrames
    dscbench.compare(dscbench.load("results/old"), rs)     # a Comparison
    dscbench.sweep(preset="full", threads=[1, 2]).cases(1)  # what a sweep would run
"""

import importlib as _importlib
import os as _os

__version__ = "0.1.0"

# The process environment as it was when dscbench was first imported, before torch set variables
# of its own while it works (TORCHINDUCTOR_CACHE_DIR when it compiles, ...): run.json records
# the tuning variables a run was started with from it (commands/run/recorder.py).
ENVIRON_AT_START: dict[str, str] = dict(_os.environ)

from dscbench.api import load, run, sweep  # noqa: E402  (after the environment is taken)

# Names that pull in pandas or torch are imported when first used, so `import dscbench` (and
# `dscbench --help`) stays fast. `dscbench.compare` is the compare package, which can be called:
# dscbench.compare(a, b) is compare.judge_runs (compare/__init__.py).
_LAZY = {
    "compare": ("dscbench.compare", None),
    "Comparison": ("dscbench.compare", "Comparison"),
    "ResultSet": ("dscbench.results", "ResultSet"),
    "Sweep": ("dscbench.spec", "Sweep"),
    "ConvSpec": ("dscbench.spec", "ConvSpec"),
    "ModelSpec": ("dscbench.spec", "ModelSpec"),
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'dscbench' has no attribute {name!r}")
    module, attribute = _LAZY[name]
    found = _importlib.import_module(module)
    return found if attribute is None else getattr(found, attribute)


__all__ = [
    "ENVIRON_AT_START",
    "Comparison",
    "ConvSpec",
    "ModelSpec",
    "ResultSet",
    "Sweep",
    "__version__",
    "compare",
    "load",
    "run",
    "sweep",
]
