"""Shared fixtures: a fake clock and a fake backend with known per-iteration costs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from dscbench.backends.base import Availability, Prepared
from dscbench.measure import Timer
from dscbench.spec import Case, ConvSpec


class FakeClock:
    """A clock that only moves when a fake workload runs."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


CostFn = Callable[[ConvSpec, str], float]


class FakeBackend:
    """Each call of a prepared variant advances the fake clock by ``cost(spec, variant)``,
    times ``slowdown(clock time)`` (a machine getting slower and faster), times seeded noise."""

    name = "fake"
    device = "cpu"
    dtypes = ("float32",)

    def __init__(
        self,
        clock: FakeClock,
        cost: CostFn,
        *,
        noise: float = 0.0,
        slowdown: Callable[[float], float] = lambda t: 1.0,
        seed: int = 0,
        fail_prepare: Callable[[ConvSpec, str], Exception | None] = lambda s, v: None,
        fail_run: Callable[[ConvSpec, str, int], Exception | None] = lambda s, v, n: None,
    ) -> None:
        self.clock = clock
        self.cost = cost
        self.noise = noise
        self.slowdown = slowdown
        self.rng = np.random.default_rng(seed)
        self.fail_prepare = fail_prepare
        self.fail_run = fail_run
        self.threads_set: list[int] = []
        self.calls = 0

    def availability(self) -> Availability:
        return Availability(True)

    def device_name(self) -> str:
        return "fake cpu"

    def versions(self) -> dict[str, str]:
        return {"fake": "1"}

    def default_threads(self) -> int:
        return 1

    def set_threads(self, threads: int) -> None:
        self.threads_set.append(threads)

    def timer(self) -> Timer:
        return Timer(clock=self.clock)

    def prepare(self, spec: ConvSpec, variant: str, seed: int) -> Prepared:
        problem = self.fail_prepare(spec, variant)
        if problem is not None:
            raise problem
        base = self.cost(spec, variant)
        calls = 0

        def run() -> None:
            nonlocal calls
            calls += 1
            self.calls += 1
            problem = self.fail_run(spec, variant, calls)
            if problem is not None:
                raise problem
            jitter = 1.0 + self.noise * abs(self.rng.standard_normal()) if self.noise else 1.0
            self.clock.advance(base * self.slowdown(self.clock.t) * jitter)

        return Prepared(run=run, output=lambda: None)


def spec(**overrides) -> ConvSpec:
    values = dict(batch=1, in_channels=8, out_channels=8, height=8, width=8, kernel=3)
    values.update(overrides)
    return ConvSpec(**values)


def fake_cases(n: int) -> list[Case]:
    return [Case(spec(in_channels=8 * (i + 1), out_channels=8 * (i + 1)), "fake") for i in range(n)]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
