"""dscbench: what depthwise-separable convolution buys on your hardware, measured honestly.

The Python API (dscbench/api.py; the CLI is a thin shell over it)::

    import dscbench

    rs = dscbench.run(in_channels=[32, 64], size=56, min_time=0.5, rounds=3)  # a ResultSet
    rs.results, rs.samples                                 # DataFrames
    dscbench.compare(dscbench.load("results/old"), rs)     # a Comparison
    dscbench.sweep(preset="full", threads=[1, 2]).cases(1)  # what a sweep would run
"""

import importlib as _importlib

from dscbench.about import ENVIRON_AT_START, __version__

# The API's names are imported when first used, so `import dscbench` (and `dscbench --help`)
# stays fast and the package root imports nothing above the foundation layer. `dscbench.compare`
# is the compare package, which can be called: dscbench.compare(a, b) is compare.judge_runs.
_LAZY = {
    "run": ("dscbench.api", "run"),
    "sweep": ("dscbench.api", "sweep"),
    "load": ("dscbench.api", "load"),
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
