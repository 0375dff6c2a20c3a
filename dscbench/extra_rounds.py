"""The rounds a run adds after its ``settings.rounds``, each in fresh worker processes: the
Coordinator's (runner.py) steps for ``--precision``, ``--decide`` and the confirmation of a
slowdown.

- **Fresh processes.** Every interval is over processes (stats.unit_values), so only new
  processes narrow it: an extra round restarts the process it runs in, in every environment at
  once (``fresh_processes``), and the samples it takes carry a new process number (``renew``).
- **Refine** (``--precision``, ``--decide``): rounds over the rows still short of the target
  (``sweep_state.Precision.open_rows``) until none is, ``max_time`` runs out, or
  ``MAX_EXTRA_ROUNDS``.
- **Confirm** (``--decide`` with several environments): a row whose latency the run judged
  slower than the first environment's beyond the threshold is measured again in
  ``CONFIRM_ROUNDS`` rounds of fresh processes (whatever time is left: a gate must not fail
  on a slowdown it did not reproduce, nor skip the check because time ran out). It is
  confirmed when those rounds alone still find it slower: the one-sided lower bound of their
  ratio, at the run's confidence, above 1 (the direction is known, so the test is one-sided).
  The record goes to run.json's ``confirmation``, which compare reads. A tight interval
  within one run says little about the next: this is the next, in miniature.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import TYPE_CHECKING, Any

from dscbench.defaults import CONFIDENCE
from dscbench.spec import VARIANTS
from dscbench.sweep_state import CaseState, Precision, ResumePoint, Series, env_ratio
from dscbench.workers import ExecutorLost

if TYPE_CHECKING:
    from dscbench.sweep_state import SweepState
    from dscbench.workers import Executor

MAX_EXTRA_ROUNDS = 100  # --precision and --decide never add more rounds than this
# Fresh process pairs that re-measure a slowdown before it fails a gate: with 3, a real 10%
# slowdown went unconfirmed in 3 of 40 rows, with 5 in none (benchmarks/REPORT-decide.md).
CONFIRM_ROUNDS = 5


class ExtraRounds:
    """The Coordinator's extra rounds (module doc); mixed into runner.Coordinator, whose
    attributes these methods use."""

    pools: dict[str, list[Executor]]
    identity: dict[str, list[int]]
    next_identity: dict[str, int]
    states: list[CaseState]
    sweep: SweepState
    settings: Any
    envs: list[str]
    rng: Any
    total: int

    # -- which process measured a block --------------------------------------------------

    def renumber(self, resume: ResumePoint) -> None:
        """A resumed run measures in new processes: number them after every process the
        interrupted run used."""
        used = resume.samples.get("process") or [0]
        first = max(int(max(used)) + 1, max(self.next_identity.values(), default=0))
        for env, pool in self.pools.items():
            self.identity[env] = [first + i for i in range(len(pool))]
            self.next_identity[env] = first + len(pool)

    def renew(self, env: str, replica: int) -> None:
        """Replica ``replica`` of ``env`` is a new process from now on (it was restarted)."""
        self.identity[env][replica] = self.next_identity[env]
        self.next_identity[env] += 1
        for state in self.states:
            state.envs[env].warmed.discard(replica)

    def fresh_processes(self, round_index: int) -> None:
        """Restart the processes that measure ``round_index`` (worker processes only; a run
        measured in this process has one), all environments at once."""
        t0 = time.perf_counter()
        begun = []
        for env, pool in self.pools.items():  # all start at once, then all are waited for
            replica = round_index % len(pool)
            executor = pool[replica]
            if not executor.restartable:
                continue
            try:
                executor.begin_restart()
            except ExecutorLost:
                continue  # its next request fails, and lost() handles it there
            begun.append((env, replica, executor))
        for env, replica, executor in begun:
            with contextlib.suppress(ExecutorLost):  # as above: lost() handles it later
                executor.finish_restart()
            self.renew(env, replica)
        self.sweep.phases.restart += time.perf_counter() - t0

    def extra_round(self, todo: list[CaseState], deadline: bool) -> int:
        """One more round over ``todo``, in fresh processes; the visits it made."""
        self.total += len(todo)
        round_index = self.sweep.rounds_done
        self.fresh_processes(round_index)
        order = [todo[i] for i in self.rng.permutation(len(todo))]
        visited = self.one_round(round_index, order, deadline=deadline)
        if visited:
            self.sweep.rounds_done = round_index + 1
            self.save()
        return visited

    # -- --precision and --decide --------------------------------------------------------

    def refine(self, p: Precision) -> None:
        """Extra rounds over the cases still short of the target (``Precision.open_rows``)."""
        while True:
            todo = [s for s in self.states if s.healthy and p.open_rows(s)]
            if not todo:
                p.stopped = "every row reached the target"
                break
            if self.timed_out():
                p.stopped = "--max-time ran out"
                break
            if p.extra_rounds >= MAX_EXTRA_ROUNDS:
                p.stopped = f"{MAX_EXTRA_ROUNDS} extra rounds"
                break
            if not self.extra_round(todo, deadline=True):
                p.stopped = "--max-time ran out"  # while the fresh processes started
                break
            p.extra_rounds += 1
        p.unmet = [
            {
                "config_id": s.case.spec.config_id,
                "backend": s.case.backend,
                "env": env,
                "relative_half_width": width,
            }
            for s in self.states
            for env, width in p.open_rows(s)
        ]

    # -- confirmation ----------------------------------------------------------------------

    def slower_rows(self, bound: float) -> list[tuple[CaseState, str, str]]:
        """(case, environment, variant) of every row slower than the first environment's
        beyond ``bound`` = log(1 + threshold), on all its rounds."""
        base, *others = self.envs
        found = []
        for state in self.states:
            for env in others:
                if not (state.envs[env].healthy and state.envs[base].healthy):
                    continue
                for v in VARIANTS:
                    ratio = env_ratio(state.envs[env].series.get(v), state.envs[base].series.get(v))
                    if ratio is not None and math.log(ratio.ci_low) > bound:
                        found.append((state, env, v))
        return found

    def confirm(self, threshold: float) -> None:
        """Re-measure the slower rows in CONFIRM_ROUNDS rounds of fresh processes and record,
        per row, what those rounds alone say (module doc)."""
        if len(self.envs) < 2:
            return
        rows = self.slower_rows(math.log1p(threshold))
        if not rows:
            self.sweep.confirmation = []
            return
        first = self.sweep.rounds_done
        cases = list({id(state): state for state, _, _ in rows}.values())
        for _ in range(CONFIRM_ROUNDS):
            self.extra_round([s for s in cases if s.healthy], deadline=False)
        base = self.envs[0]
        one_sided = 2 * CONFIDENCE - 1  # its lower bound is the one-sided CONFIDENCE bound
        records = []
        for state, env, v in rows:
            mine, theirs = state.envs[env].series.get(v), state.envs[base].series.get(v)
            ratio = env_ratio(since(mine, first), since(theirs, first), one_sided)
            records.append(
                {
                    "config_id": state.case.spec.config_id,
                    "backend": state.case.backend,
                    "env": env,
                    "variant": v,
                    "rounds": [first, self.sweep.rounds_done],
                    "ratio": ratio.value if ratio else None,
                    "ci_low": ratio.ci_low if ratio else None,
                    "ci_high": ratio.ci_high if ratio else None,
                    "confidence": one_sided,
                    "confirmed": bool(ratio and ratio.ci_low > 1),
                }
            )
        self.sweep.confirmation = records


def since(series: Series | None, first_round: int) -> Series | None:
    """A copy of ``series`` holding only its blocks of rounds ``first_round`` on."""
    if series is None:
        return None
    keep = [i for i, r in enumerate(series.rounds) if r >= first_round]
    out = Series(series.iterations, series.per_iteration_s)
    out.times = [series.times[i] for i in keep]
    out.rounds = [series.rounds[i] for i in keep]
    out.pairs = [series.pairs[i] for i in keep]
    out.processes = [series.processes[i] for i in keep]
    return out
