"""The rounds of ``dscbench run --measure instructions``: the Coordinator's (runner.py) steps
when its workers count instructions under valgrind instead of timing blocks.

- **One count per row and process.** Round ``r`` counts every case once in every healthy
  environment (instructions.per_iteration, in the worker); the run's rounds are its
  ``--processes``, and no case is counted twice in the same process, so what differs between
  processes shows in the row's ``instructions_spread``.
- **At once.** Counting is slow (callgrind runs code 50-100x slower) and a count does not
  depend on what else runs, so the cases of a round are shared among the worker processes of
  each environment (``--jobs`` of them, one per CPU by default), which count at the same time:
  a thread per process takes the next case it has not counted yet and waits on its worker
  while the others do. Everything else the Coordinator does (its state, checkpoints, restarts)
  runs under one lock, which a thread lets go only while it waits on a worker (``_Unlocked``),
  so the bookkeeping is the sequential code it always was.
- **A fresh process per count.** What a call executes carries a little of the process's
  history: the first time Python runs torch's module code it specialises it (some 30 k
  instructions), the first toggles bind their symbols, so a row counted first in one process
  and third in another differed by 0.1-0.14% (16->16 at 14x14). So each case is counted in a
  worker forked from its environment's fork server (which has imported torch and run
  nothing), fresh for every case: every count of a row starts from the same state, in any
  order, in any process. (Spawned workers, ``--start-method spawn``, are not replaced: a
  fresh one would import torch under valgrind again.)
- **Order within a case.** A case is built and counted (the count's uncounted first call
  names the kernels, in every process alike), then, on its first build, checked
  (workers/checks.py): the count comes before anything else has touched the freshly built
  variants, as it would in every later process.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import TYPE_CHECKING, Any

from dscbench.spec import VARIANTS
from dscbench.status import Status
from dscbench.workers import ExecutorLost

if TYPE_CHECKING:
    from dscbench.sweep_state import CaseState, Phases
    from dscbench.workers import Executor

# The executor calls that wait on a worker, during which other threads may run.
BLOCKING = frozenset({"prepare", "count", "finish_restart"})


class _Unlocked:
    """An executor whose BLOCKING calls let go of ``lock`` while the worker works."""

    def __init__(self, executor: Executor, lock: threading.Lock):
        self._executor = executor
        self._lock = lock

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._executor, name)
        if name not in BLOCKING:
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            self._lock.release()
            try:
                return attr(*args, **kwargs)
            finally:
                self._lock.acquire()

        return call


class CountedRounds:
    """The Coordinator's counting rounds (module doc); mixed into runner.Coordinator, whose
    attributes and ``ready``, ``lost``, ``save``, ``timed_out`` these methods use."""

    pools: dict[str, list[Executor]]
    envs: list[str]
    states: list[CaseState]
    phases: Phases
    progress: Any
    done: int
    total: int

    def count_round(self, round_index: int, order: list[CaseState], deadline: bool) -> int:
        """Count the healthy cases of ``order`` (module doc: at once, in ``jobs`` processes
        per environment); returns the number of visits made."""
        jobs = min(len(pool) for pool in self.pools.values())
        lock = threading.Lock()
        # a resumed run keeps the counts its interrupted round took: those cases are done
        queue = [s for s in order if not self.counted_already(s, round_index)]
        self.done += len(order) - len(queue)
        counted = self._counted_in = getattr(self, "_counted_in", None) or {
            id(s): set() for s in self.states
        }
        visits = [0]
        failures: list[BaseException] = []
        stop = threading.Event()

        def take(slot: int) -> CaseState | None:
            for i, state in enumerate(queue):
                if slot not in counted[id(state)]:
                    return queue.pop(i)
            return None

        def work(slot: int) -> None:
            with lock:
                try:
                    while not stop.is_set() and not (deadline and self.timed_out()):
                        state = take(slot)
                        if state is None:
                            return
                        counted[id(state)].add(slot)
                        self.count_one(state, slot, visits)
                except BaseException as exc:  # a bug: re-raised in the main thread
                    failures.append(exc)
                    stop.set()

        saved = self.pools
        self.pools = {env: [_Unlocked(e, lock) for e in pool] for env, pool in saved.items()}
        threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(jobs)]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        except BaseException:  # Ctrl-C: no thread's bookkeeping is left half done
            stop.set()
            lock.acquire()
            raise
        finally:
            self.pools = saved
        if failures:
            raise failures[0]
        # what is left in the queue now, the deadline left uncounted (the planned processes
        # outnumber the rounds, so no case is ever left for want of a process)
        if self.progress is not None:
            self.progress(self.done, self.total, "")
        return visits[0]

    def counted_already(self, state: CaseState, round_index: int) -> bool:
        """Whether every healthy environment holds a count of ``state`` for ``round_index``
        (a resumed round)."""
        live = [e for e in state.envs.values() if e.healthy]
        return bool(live) and all(
            len(e.instructions.get(v, [])) > round_index for e in live for v in VARIANTS
        )

    def count_one(self, state: CaseState, slot: int, visits: list[int]) -> None:
        """One case's visit in process ``slot`` of every environment (progress and
        checkpoints too)."""
        if self.progress is not None:
            self.progress(self.done, self.total, state.case.spec.label())
        if state.healthy:
            self.count_visit(state, slot)
            state.dirty = True  # a checkpoint meanwhile may have taken the case before its count
            visits[0] += 1
            self.save(force=False)  # type: ignore[attr-defined]
        self.done += 1

    def count_visit(self, state: CaseState, slot: int) -> None:
        """Build and count the case in process ``slot`` of every healthy environment, a fresh
        one, then, on its first build, check it (module doc: order within a case)."""
        state.dirty = True
        for env in self.envs:
            if state.envs[env].healthy:
                self.fresh_worker(state, env, slot)
        live = [
            env
            for env in self.envs
            if state.envs[env].healthy and self.ready(state, env, slot, checking=False)  # type: ignore[attr-defined]
        ]
        self.count(state, live, slot)
        for env in live:
            if state.envs[env].healthy and not state.envs[env].checked:
                self.ready(state, env, slot)  # type: ignore[attr-defined]

    def fresh_worker(self, state: CaseState, env: str, slot: int) -> None:
        """Replace process ``slot`` of ``env`` with a fresh fork (module doc: a fresh process
        per count) unless it has counted nothing yet. Spawned workers are kept: a fresh one
        would import torch under valgrind again."""
        # slot 0 has answered the run's set-up questions (which backends it has): not pristine
        used = self._used_workers = getattr(self, "_used_workers", None) or {
            (e, 0) for e in self.envs
        }
        executor = self.pools[env][slot]
        forks = getattr(executor, "forks", None)
        if (env, slot) not in used or forks is None or not forks.usable:
            used.add((env, slot))
            return
        t0 = time.perf_counter()
        try:
            executor.begin_restart()  # asks the fork server, under the lock: one at a time
            executor.finish_restart()  # waits for its hello, not
        except ExecutorLost as exc:
            self.lost(env, slot, state, exc)  # type: ignore[attr-defined]
        else:
            self.renew(env, slot)  # type: ignore[attr-defined]
        self.phases.restart += time.perf_counter() - t0

    def count(self, state: CaseState, live: list[str], slot: int) -> None:
        """One count of each variant's instructions per call in every live environment."""
        from dscbench.instructions import ITERATIONS

        for env in live:
            env_state = state.envs[env]
            t0 = time.perf_counter()
            try:
                report = self.pools[env][slot].count(state.key, ITERATIONS)
            except ExecutorLost as exc:
                self.lost(env, slot, state, exc)  # type: ignore[attr-defined]
                continue
            self.phases.instructions += report.untimed_s - report.kernels_s
            self.phases.kernels += report.kernels_s
            self.phases.ipc += max(0.0, time.perf_counter() - t0 - report.untimed_s)
            for target, values in (
                (env_state.kernels, report.kernels),
                (env_state.warnings, report.warnings),
            ):
                for v, value in values.items():
                    target.setdefault(v, value)
            if report.status != Status.OK:
                env_state.fail(report.status, report.error, report.traceback)
                continue
            for v, n in report.instructions.items():
                env_state.instructions.setdefault(v, []).append(n)
            for v, n in report.allocator.items():
                env_state.allocator_instructions.setdefault(v, []).append(n)
            env_state.visits += 1
            if env_state.status == Status.NOT_MEASURED:
                env_state.status = Status.OK
