"""Shared fixtures: a fake clock and a fake backend with known per-iteration costs."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import strategies as st

from dscbench import parity
from dscbench.backends.base import Availability, Prepared
from dscbench.kernels import Found
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
        noise: float | Callable[[ConvSpec, str], float] = 0.0,
        slowdown: Callable[[float], float] = lambda t: 1.0,
        seed: int = 0,
        fail_prepare: Callable[[ConvSpec, str], Exception | None] = lambda s, v: None,
        fail_run: Callable[[ConvSpec, str, int], Exception | None] = lambda s, v, n: None,
        corrupt: Callable[[ConvSpec, str, np.ndarray], np.ndarray] | None = None,
        build_s: float = 0.0,
        kernels: Callable[[ConvSpec, str], Found] | None = None,
    ) -> None:
        self.clock = clock
        self.cost = cost
        self.noise = noise
        self.slowdown = slowdown
        self.rng = np.random.default_rng(seed)
        self.fail_prepare = fail_prepare
        self.fail_run = fail_run
        self.corrupt = corrupt  # turns the true output into a wrong one (parity tests)
        self.build_s = build_s  # real seconds each prepare() sleeps (an expensive build)
        self.kernels = kernels  # what a variant's kernel probe finds (kernels.Found)
        self.threads_set: list[int] = []
        self.calls = 0
        self.calls_of: dict[tuple[ConvSpec, str], int] = {}
        self.builds: dict[tuple[ConvSpec, str], int] = {}

    @classmethod
    def availability(cls) -> Availability:
        return Availability(True)

    def device_name(self) -> str:
        return "fake cpu"

    def versions(self) -> dict[str, str]:
        return {"fake": "1"}

    def plan(self, specs: list[ConvSpec]) -> dict[ConvSpec, str]:
        self.planned = list(specs)
        return {}

    def set_threads(self, threads: int) -> None:
        self.threads_set.append(threads)

    def timer(self) -> Timer:
        return Timer(clock=self.clock)

    def prepare(self, spec: ConvSpec, variant: str, seed: int) -> Prepared:
        problem = self.fail_prepare(spec, variant)
        if problem is not None:
            raise problem
        if self.build_s:
            time.sleep(self.build_s)
        base = self.cost(spec, variant)
        noise = self.noise(spec, variant) if callable(self.noise) else self.noise
        key = (spec, variant)
        self.builds[key] = self.builds.get(key, 0) + 1

        def run() -> None:
            # ``calls`` counts every call of this workload, over all its builds.
            calls = self.calls_of[key] = self.calls_of.get(key, 0) + 1
            self.calls += 1
            problem = self.fail_run(spec, variant, calls)
            if problem is not None:
                raise problem
            jitter = 1.0 + noise * abs(self.rng.standard_normal()) if noise else 1.0
            self.clock.advance(base * self.slowdown(self.clock.t) * jitter)

        run.key = key  # type: ignore[attr-defined]  # which workload (fake counts read it)

        def output() -> np.ndarray:
            # The true answer in float32, as a correct backend would compute it.
            out = parity.reference_output(spec, variant, seed).astype(np.float32)
            return out if self.corrupt is None else self.corrupt(spec, variant, out)

        probe = None if self.kernels is None else functools.partial(self.kernels, spec, variant)
        return Prepared(
            run=run, output=output, prepare_s=0.0, execution="fake engine", kernels=probe
        )


class FakeCanary:
    """A machine canary on the fake clock's machine: each sample takes 1 ms times
    ``machine(clock time)``, times seeded noise. Sampling costs no fake time."""

    def __init__(
        self,
        clock: FakeClock,
        machine: Callable[[float], float] = lambda t: 1.0,
        noise: float = 0.01,
        seed: int = 0,
    ) -> None:
        self.clock = clock
        self.machine = machine
        self.noise = noise
        self.rng = np.random.default_rng(seed)

    def sample(self) -> dict[str, float]:
        f = self.machine(self.clock.t) * (1.0 + self.noise * self.rng.standard_normal())
        return {"compute": 1e-3 * f}

    def describe(self) -> dict:
        return {
            "workload": "fake",
            "threads": 1,
            "parts": ["compute"],
            "settle_s": 0.0,
            "implementation": {"version": 1, "fake": True},
        }


def spec(**overrides) -> ConvSpec:
    """A small ConvSpec; ``height``/``width`` overrides set its 2-D spatial size."""
    values = dict(batch=1, in_channels=8, out_channels=8, kernel=3)
    size = (overrides.pop("height", 8), overrides.pop("width", 8))
    values.update(overrides)
    return ConvSpec(spatial=size, **values)


def conv_specs(max_channels: int, max_size: int) -> st.SearchStrategy[ConvSpec]:
    """Hypothesis: valid ConvSpecs with odd kernels up to 7 (sizes start at 7 so every kernel
    fits), strides up to 3, with and without bias."""
    return st.builds(
        ConvSpec,
        batch=st.integers(1, 3),
        in_channels=st.integers(1, max_channels),
        out_channels=st.integers(1, max_channels),
        spatial=st.tuples(st.integers(7, max_size), st.integers(7, max_size)),
        kernel=st.sampled_from([1, 3, 5, 7]),
        stride=st.integers(1, 3),
        bias=st.booleans(),
    )


def fake_cases(n: int) -> list[Case]:
    return [Case(spec(in_channels=8 * (i + 1), out_channels=8 * (i + 1)), "fake") for i in range(n)]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` need a CUDA device; without one they skip with the reason."""
    if not any(item.get_closest_marker("gpu") for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (none visible to torch)")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _no_global_onnxruntime_pool():
    """onnxruntime's process-wide thread pool can be created once and never resized, so an
    in-process test that created one would change every later onnxruntime test. Tests that
    need it run dscbench in a subprocess; this fixture fails any test that leaks one."""
    yield
    import sys

    ort = sys.modules.get("dscbench.backends.ort")
    if ort is not None:
        assert ort._global_pool_threads is None, "a test created the global onnxruntime pool"


def start_run(out, args: list[str], rounds: int = 0):
    """Start `dscbench run ARGS -o OUT` in a subprocess and return it once its first
    checkpoint is committed (the manifest exists) with at least ``rounds`` rounds done."""
    import json
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "dscbench", "run", *args, "-o", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def rounds_done() -> int:
        try:
            manifest = json.loads((out / "manifest.json").read_text())
            done, committed = manifest["rounds_done"], manifest["journal_bytes"]
        except (OSError, ValueError, KeyError):
            return -1
        # The journal's generation-0 manifest, written just before the first checkpoint's
        # records, commits none of them yet (a kill there leaves a run with no rows).
        return done if isinstance(done, int) and committed > 0 else -1

    deadline = time.monotonic() + 120
    while rounds_done() < rounds and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rounds_done() >= rounds, f"no checkpoint with {rounds} round(s) done"
    return proc
