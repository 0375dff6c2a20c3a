"""What dscbench is and what it found when it started: the version, and the process environment
as it was when dscbench was first imported (before torch set variables of its own while it
works, e.g. TORCHINDUCTOR_CACHE_DIR when it compiles). run.json records a run's tuning variables
from it (commands/run/recorder.py). Standard library only: every layer may import it."""

import os

__version__ = "0.1.0"

ENVIRON_AT_START: dict[str, str] = dict(os.environ)
