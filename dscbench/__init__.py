"""dscbench: what depthwise-separable convolution buys on your hardware, measured honestly."""

import os as _os

__version__ = "0.1.0"

# The process environment as it was when dscbench was first imported, before torch set variables
# of its own while it works (TORCHINDUCTOR_CACHE_DIR when it compiles, ...): run.json records
# the tuning variables a run was started with from it (commands/run/recorder.py).
ENVIRON_AT_START: dict[str, str] = dict(_os.environ)

__all__ = ["ENVIRON_AT_START", "__version__"]
