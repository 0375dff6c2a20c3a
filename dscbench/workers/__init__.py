"""Where the measuring happens: in this process, or in worker processes (one per ``--env``).

- ``protocol``: the JSON-lines messages, the reports they carry, the statuses, the version.
- ``failures``: which status an exception of the user's workload gives its case (one place).
- ``cache``: the build cache of prepared variants.
- ``checks``: user models before a run; memory, counts and parity of a case's variants.
- ``local``: the Executor protocol and LocalExecutor, which measures in this process.
- ``transport``: a worker process and its pipes (process life, JSON lines, logs).
- ``client``: the coordinator's side: ``--env`` parsing, WorkerExecutor, start_workers.
- ``server``: a worker's main loop (``python -m dscbench.worker`` runs it).
- ``forkserver``: a fork server per environment (it has imported torch; workers are forked
  from it), the coordinator's handle on it and on the workers it forks.

Modules here import protocol and each other downwards (protocol <- failures <- checks <- local
<- server <- forkserver; protocol <- transport <- forkserver <- client), plus spec, measure,
counting, models, backends and env; never runner, results, commands or cli. The names below
are the package's public ones.
"""

from dscbench.workers.checks import user_model_problems
from dscbench.workers.client import (
    SPIN_DEFAULTS,
    EnvError,
    EnvSpec,
    Launch,
    WorkerBug,
    WorkerExecutor,
    parse_env,
    parse_envs,
    start_workers,
    worker_environment,
)
from dscbench.workers.failures import failure_status
from dscbench.workers.local import Executor, LocalExecutor
from dscbench.workers.protocol import (
    BUILD_ERROR,
    COMPILE_ERROR,
    COUNT_MISMATCH,
    HEALTHY,
    OK,
    OUT_OF_MEMORY,
    PARITY_FAILED,
    PENDING,
    PROTOCOL_VERSION,
    RUNTIME_ERROR,
    SKIPPED,
    WORKER_CRASHED,
    BackendReport,
    CalibrateReport,
    ExecutorLost,
    PrepareReport,
    TurnReport,
)

__all__ = [
    "BUILD_ERROR",
    "COMPILE_ERROR",
    "COUNT_MISMATCH",
    "HEALTHY",
    "OK",
    "OUT_OF_MEMORY",
    "PARITY_FAILED",
    "PENDING",
    "PROTOCOL_VERSION",
    "RUNTIME_ERROR",
    "SKIPPED",
    "SPIN_DEFAULTS",
    "WORKER_CRASHED",
    "BackendReport",
    "CalibrateReport",
    "EnvError",
    "EnvSpec",
    "Executor",
    "ExecutorLost",
    "Launch",
    "LocalExecutor",
    "PrepareReport",
    "TurnReport",
    "WorkerBug",
    "WorkerExecutor",
    "failure_status",
    "parse_env",
    "parse_envs",
    "start_workers",
    "user_model_problems",
    "worker_environment",
]
