"""Benchmarks behind the targets of the robustness and scale-out issue (issue 11). Run with
`nox -s bench -- robust [checkpoint rss dryrun kill]`; prints the markdown of REPORT-robust.md.

Parts (default all):
  checkpoint  The checkpoint cost per configuration of a fake-clock sweep (the runner and the
              Recorder `dscbench run` uses, a backend whose "work" only advances a fake clock)
              at 100 and 10,000 configurations (target: within 2x), and the cost of one
              journal append early and late in a run that checkpoints after every visit.
  rss         Peak RSS of a fake-clock sweep of 50 and of 5,000 configurations, each in a
              fresh process (target: within 1.3x).
  dryrun      `dscbench run --spec ... --dry-run --yes` on 10,000 configurations, and on 10
              for the fixed cost (target: < 2 s).
  kill        50 real `dscbench run` processes (tiny shapes, three worker processes each)
              killed with SIGKILL at seeded random moments after their first checkpoint:
              after each, the run directory must read back as a consistent checkpoint; the
              last one is then finished with --resume.
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from reporting import ROOT, load, main

sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------------------------------------
# A fake-clock sweep through the runner and the Recorder of `dscbench run`
# ---------------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class FakeBackend:
    """Every call advances the fake clock by 10 us (standard) or 5 us (separable)."""

    name = "fake"
    device = "cpu"
    dtypes = ("float32",)

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    @classmethod
    def availability(cls):
        from dscbench.backends.base import Availability

        return Availability(True)

    def device_name(self) -> str:
        return "fake cpu"

    def versions(self) -> dict[str, str]:
        return {}

    def plan(self, specs):
        return {}

    def set_threads(self, threads: int) -> None:
        pass

    def timer(self):
        from dscbench.measure import Timer

        return Timer(clock=self.clock)

    def prepare(self, spec, variant, seed):
        from dscbench.backends.base import Prepared

        cost = 1e-5 if variant == "standard" else 5e-6

        def run() -> None:
            self.clock.t += cost

        return Prepared(run=run, output=lambda: None, prepare_s=0.0, execution="fake")


def fake_cases(n: int):
    from dscbench.spec import Case, ConvSpec

    side = int(np.ceil(np.sqrt(n)))
    return [Case(ConvSpec(1, 1 + i // side, 1 + i % side, (8, 8), 3), "fake") for i in range(n)]


def fake_sweep(n: int, out: Path, rounds: int = 3, interval: float | None = None):
    """Measure ``n`` fake configurations into ``out`` as `dscbench run` would; returns the
    Recorder and the seconds each journal append took."""
    from dscbench import results, runner
    from dscbench.commands.run.planning import Plan
    from dscbench.commands.run.recorder import Recorder
    from dscbench.measure import HarnessOptions
    from dscbench.spec import RunSettings

    cases = fake_cases(n)
    plan = Plan(cases, [""], {"": []})
    plan.backends = {"fake": {"device": "cpu", "device_name": "fake cpu"}}
    settings = RunSettings(min_time=2e-3 * rounds, rounds=rounds, warmup=0.0, parity=False)
    meta = {"settings": vars(settings), "environment": {"hostname": "bench"}}
    out.mkdir(parents=True, exist_ok=True)
    recorder = Recorder(out, plan, meta, time.perf_counter())
    appends: list[float] = []
    real_append = results.Journal.append

    def timed_append(self, batch, meta):
        t0 = time.perf_counter()
        real_append(self, batch, meta)
        appends.append(time.perf_counter() - t0)

    results.Journal.append = timed_append
    saved = runner.CHECKPOINT_INTERVAL_S
    if interval is not None:
        runner.CHECKPOINT_INTERVAL_S = interval
    try:
        runner.run_sweep(
            cases,
            settings,
            runner.local({"fake": FakeBackend(FakeClock())}),
            checkpoint=recorder,
            harness=HarnessOptions(block_time=1e-3, warmup=0.0),
            verify_counts=False,
        )
    finally:
        results.Journal.append = real_append
        runner.CHECKPOINT_INTERVAL_S = saved
    return recorder, appends


def checkpoint() -> list[str]:
    lines = [
        "## checkpoint: cost per configuration, 100 vs 10,000 configurations (fake clock)",
        "",
        f"Three rounds, the default checkpoint policy (every round, and after a visit 2 s after "
        f"the last checkpoint, then the final consolidation), after a 10-configuration sweep "
        f"in the same process has paid for first imports; {load()} before.",
        "",
        "| configurations | sweep wall | checkpoints | appends (total) | consolidation | "
        "checkpoint cost per configuration | journal |",
        "|---|---|---|---|---|---|---|",
    ]
    per_config = {}
    with tempfile.TemporaryDirectory() as tmp:  # first-use costs (imports) out of the way
        fake_sweep(10, Path(tmp) / "warm")
    for n in (100, 10_000):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            recorder, appends = fake_sweep(n, Path(tmp) / "run")
            wall = time.perf_counter() - t0
            size = (Path(tmp) / "run" / "journal.jsonl").stat().st_size
        consolidation = recorder.write_s - sum(appends)
        per_config[n] = recorder.write_s / n
        lines.append(
            f"| {n:,} | {wall:.1f} s | {len(appends)} | {sum(appends) * 1e3:.0f} ms | "
            f"{consolidation * 1e3:.0f} ms | {per_config[n] * 1e6:.0f} us | "
            f"{size / 1e6:.2f} MB |"
        )
    ratio = per_config[10_000] / per_config[100]
    lines += [
        "",
        f"Cost per configuration at 10,000 / at 100: **{ratio:.2f}x** (target: within 2x).",
        "",
        "A checkpoint after every visit (interval 0), 2,000 configurations, one round: the "
        "cost of one append (journal line + fsync + manifest) among the first and the last "
        "500 visits. Constant means a checkpoint costs what it adds, not what is there.",
        "",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        _, appends = fake_sweep(2_000, Path(tmp) / "run", rounds=1, interval=0.0)
    first, last = appends[1:501], appends[-501:-1]
    lines += [
        "| appends | median, first 500 | median, last 500 | last / first |",
        "|---|---|---|---|",
        f"| {len(appends)} | {statistics.median(first) * 1e3:.2f} ms | "
        f"{statistics.median(last) * 1e3:.2f} ms | "
        f"{statistics.median(last) / statistics.median(first):.2f}x |",
    ]
    return lines


def child(n: int) -> None:
    """``rss`` measures this in a fresh process: a fake sweep of ``n`` configurations, with
    pyarrow's allocator chosen as the `dscbench` command chooses it."""
    from dscbench.cli import prefer_system_allocator

    prefer_system_allocator()  # before anything imports pyarrow, as `dscbench` does
    with tempfile.TemporaryDirectory() as tmp:
        fake_sweep(n, Path(tmp) / "run")
    # VmHWM: this process's peak RSS. (ru_maxrss would be wrong here: Linux carries the
    # parent's high-water mark across fork and exec.)
    status = Path("/proc/self/status").read_text()
    print(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))


def rss() -> list[str]:
    lines = [
        "## rss: peak RSS, 50 vs 5,000 configurations (fake clock, fresh processes)",
        "",
        f"Three rounds each, with checkpoints and the final tables, pyarrow on the system "
        f"allocator as `dscbench` sets it (cli.prefer_system_allocator); {load()} before.",
        "",
        "| configurations | peak RSS |",
        "|---|---|",
    ]
    peak = {}
    for n in (50, 5_000):
        out = subprocess.run(
            [sys.executable, __file__, "child", str(n)],
            capture_output=True, text=True, check=True, cwd=ROOT,
        )  # fmt: skip
        peak[n] = int(out.stdout.split()[-1]) * 1024
        lines.append(f"| {n:,} | {peak[n] / 2**20:.0f} MiB |")
    lines += ["", f"5,000 / 50: **{peak[5_000] / peak[50]:.2f}x** (target: within 1.3x)."]
    return lines


# ---------------------------------------------------------------------------------------------
# The dry run
# ---------------------------------------------------------------------------------------------

GRID = """
[[grid]]
in_channels = [4, 8, 12, 16, 20, 24, 28, 32, 36, 40]
out_channels = [4, 8, 12, 16, 20, 24, 28, 32, 36, 40]
size = [10, 12, 14, 16, 18, 20, 22, 24, 26, 28]
kernel = [1, 3, 5, 7, 9]
stride = [1, 2]
"""
SMALL = "[[grid]]\nin_channels = [4, 8, 12, 16, 20]\nkernel = 3\nsize = 16\nstride = [1, 2]\n"


def dryrun() -> list[str]:
    lines = [
        "## dryrun: `dscbench run --spec SPEC --dry-run --yes`",
        "",
        f"Five runs each, wall time of the whole command (Python start-up and imports "
        f"included); {load()} before.",
        "",
        "| configurations | threads | median | min | max |",
        "|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in (("10,000", GRID), ("10", SMALL)):
            spec = Path(tmp) / "spec.toml"
            spec.write_text(text)
            for threads in ([], ["--threads", "1"]):
                walls = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    subprocess.run(
                        [sys.executable, "-m", "dscbench", "run", "--spec", str(spec),
                         "--dry-run", "--yes", *threads],
                        check=True, stdout=subprocess.DEVNULL, cwd=ROOT,
                    )  # fmt: skip
                    walls.append(time.perf_counter() - t0)
                lines.append(
                    f"| {name} | {'1 (--threads 1)' if threads else 'default'} | "
                    f"{statistics.median(walls):.2f} s | {min(walls):.2f} s | "
                    f"{max(walls):.2f} s |"
                )
    lines += [
        "",
        "Target: < 2 s on 10,000 configurations. The difference between the 10,000 and the "
        "10 row is what the configurations cost; the rest is start-up. Without --threads the "
        "configurations take torch's default thread count, and asking torch means importing "
        "it (about 1 s); with --threads nothing imports torch.",
    ]
    return lines


# ---------------------------------------------------------------------------------------------
# kill -9 at random moments
# ---------------------------------------------------------------------------------------------

KILL_ARGS = ["--in-channels", "4,8", "--size", "8", "--kernel", "3", "--stride", "1",
             "--min-time", "3", "--rounds", "6", "--threads", "1", "--no-canary"]  # fmt: skip


def workers_alive() -> int:
    out = subprocess.run(["pgrep", "-f", "dscbench.worker"], capture_output=True, text=True)
    return len(out.stdout.split())


def check_consistent(directory: Path) -> dict:
    """Read a killed run as every reader does; check what a consistent checkpoint means."""
    from dscbench import results

    manifest = results.read_manifest(directory)
    rs = results.load_results(directory)
    assert rs.meta["status"] == "running", rs.meta["status"]
    assert len(rs.results) == 4, len(rs.results)  # 2 configurations x 2 variants, always
    assert not rs.samples.duplicated(["config_id", "variant", "pair"]).any()
    assert (rs.samples["round"] <= rs.meta["rounds_done"]).all()
    size = (directory / results.JOURNAL).stat().st_size
    assert size >= manifest["journal_bytes"]
    return {
        "rounds_done": rs.meta["rounds_done"],
        "samples": len(rs.samples),
        "torn": size > manifest["journal_bytes"],
    }


WRITER = ROOT / "tests" / "journal_writer.py"  # the kill -9 test's writer, shared


def kill_writer(directory: Path, delay: float) -> tuple[bool, bool, int]:
    """Kill a process that does nothing but checkpoint, as fast as it can, ``delay`` s after
    its first one: (the committed checkpoints read back whole, a torn tail was left, how many
    checkpoints were committed)."""
    from dscbench import results

    directory.mkdir()
    proc = subprocess.Popen([sys.executable, str(WRITER), str(directory)], cwd=ROOT)
    while not (directory / results.MANIFEST).exists():
        time.sleep(0.001)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    manifest = results.read_manifest(directory)
    contents = results.read_journal(directory, manifest["journal_bytes"])
    from tests.journal_writer import expected_times

    torn = (directory / results.JOURNAL).stat().st_size > manifest["journal_bytes"]
    expected = expected_times(manifest["generation"])
    return contents.samples.time_s.tolist() == expected, torn, manifest["generation"] - 1


def kill() -> list[str]:
    rng = np.random.default_rng(2026)
    before_load = load()
    found = []
    before = workers_alive()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(50):
            out = Path(tmp) / f"k{i}"
            proc = subprocess.Popen(
                [sys.executable, "-m", "dscbench", "run", *KILL_ARGS, "-o", str(out)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
            )  # fmt: skip
            deadline = time.monotonic() + 120
            while not (out / "manifest.json").exists() and time.monotonic() < deadline:
                time.sleep(0.005)
            delay = float(rng.uniform(0, 8))
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            try:
                facts = check_consistent(out)
                facts.update(ok=True, delay=delay)
            except Exception as exc:  # report every failure, do not stop at the first
                facts = {"ok": False, "delay": delay, "error": f"{type(exc).__name__}: {exc}"}
            found.append(facts)
        time.sleep(2)  # orphaned workers notice their coordinator is gone
        orphans = workers_alive() - before
        last = Path(tmp) / "k49"
        resumed = subprocess.run(
            [sys.executable, "-m", "dscbench", "run", *KILL_ARGS, "--resume", str(last)],
            capture_output=True, text=True, cwd=ROOT,
        )  # fmt: skip
        from dscbench import results

        final = results.load_results(last)
        full = (
            resumed.returncode == 0
            and final.meta["status"] == "complete"
            and (final.results.rounds == 6).all()
            and not final.samples.duplicated(["config_id", "variant", "pair"]).any()
        )
        writer = [kill_writer(Path(tmp) / f"w{i}", float(rng.uniform(0, 0.5))) for i in range(50)]
    ok = [f for f in found if f["ok"]]
    by_round = {}
    for f in ok:
        by_round[f["rounds_done"]] = by_round.get(f["rounds_done"], 0) + 1
    lines = [
        "## kill: 50 SIGKILLs at random moments (seeded), each run read back",
        "",
        f"`dscbench run {' '.join(KILL_ARGS)}`, killed 0-8 s after its first checkpoint; "
        f"{before_load} before.",
        "",
        f"- readable consistent checkpoints: **{len(ok)} / {len(found)}** (every row present, "
        "status running, no duplicate sample, no sample beyond the round in progress)",
        "- rounds done when killed: " + ", ".join(f"{k}: {v}" for k, v in sorted(by_round.items())),
        f"- kills that left a torn journal tail (bytes past the committed ones, ignored by "
        f"readers): {sum(f['torn'] for f in ok)}",
        f"- worker processes left behind after 2 s: {orphans}",
        f"- the last killed run finished with `--resume`: exit {resumed.returncode}, status "
        f"{final.meta['status']}, every row measured in all 6 rounds once: {full}",
    ]
    lines += [f"- failed: delay {f['delay']:.2f} s: {f['error']}" for f in found if not f["ok"]]
    lines += [
        "",
        "The same for 50 processes that only checkpoint, back to back (a journal append of "
        "1-50 samples, fsync, manifest), killed 0-0.5 s after their first: the moment of a kill "
        "then falls inside a write most of the time.",
        "",
        f"- committed checkpoints read back exactly: **{sum(w[0] for w in writer)} / 50**",
        f"- kills that cut an append (a torn tail past the committed bytes, ignored): "
        f"{sum(w[1] for w in writer)}",
        f"- checkpoints committed per process before the kill: median "
        f"{statistics.median(w[2] for w in writer):.0f}",
    ]
    return lines


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        child(int(sys.argv[2]))
        sys.exit(0)
    main(
        "Robustness and scale-out: checkpoints, memory, dry runs, kill -9",
        "bench_robust.py",
        "robust",
        {"checkpoint": checkpoint, "rss": rss, "dryrun": dryrun, "kill": kill},
    )
