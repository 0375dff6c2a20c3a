"""`dscbench gate`: one interleaved run of base and head, decided, confirmed and compared."""

from __future__ import annotations

import pytest

from dscbench import results
from dscbench.cli import app
from dscbench.commands.run.resume import resume_arguments
from tests.test_envs import TINY, cli

# Loaded by head's worker interpreter (PYTHONPATH): every timed call spins until it has taken
# 1.5x its own time, a real slowdown inside the timed blocks of one environment.
SLOW_HOOK = """
import time
from dscbench import measure
real = measure.Workload.block
def block(self, timer, n):
    fn = self.fn
    def slower():
        t0 = time.perf_counter()
        out = fn()
        end = t0 + 1.5 * (time.perf_counter() - t0)
        while time.perf_counter() < end:
            pass
        return out
    return real(measure.Workload(slower, self.context), timer, n)
measure.Workload.block = block
"""


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--env", "x="], "gate: --env is the gate's to set; use --base and --head"),
        (["--decide", "2%"], "gate: --decide is the gate's to set; use --threshold"),
        (["--precision=2%"], "gate: --precision is the gate's to set"),
        (["--resume", "r"], "use `dscbench run --resume DIR`, then `dscbench compare DIR`"),
        (["--threshold", "0"], "--threshold '0': must be between 0 and 100%"),
        (["--max-time", "0"], "--max-time 0: must be a positive number of seconds"),
        (["--confidence", "2"], "--confidence '2': give a fraction (0.95) or a percentage"),
        (["--confidence", "0.3"], "--confidence '0.3': must be between 0.5 and 1"),
        (["--", "-o", "x"], "gate: -o is the gate's to set; use the gate's own --output"),
        (["--", "--max-time", "9"], "gate: --max-time is the gate's to set"),
        # the run's own check of its sweep options, exit 2 as well
        (["--kernel", "4"], "kernel 4 is even; 'same' padding (kernel // 2) needs an odd kernel"),
    ],
)
def test_bad_gate_input_is_one_line_and_exit_2_before_measuring(tmp_path, extra, message):
    out = tmp_path / "run"
    res = cli.invoke(
        app, ["gate", "--base", "", "--head", "", *TINY, "-o", str(out), *extra]
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split())
    assert "Traceback" not in res.output
    assert not (out / results.RUN_JSON).exists()  # nothing was measured


@pytest.mark.slow
def test_a_slower_head_fails_the_gate_confirmed_and_the_summary_is_appended(tmp_path, monkeypatch):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SLOW_HOOK)
    summary = tmp_path / "step-summary.md"
    summary.write_text("# earlier steps\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    out = tmp_path / "run"
    res = cli.invoke(
        app,
        ["gate", "--base", "", "--head", f":PYTHONPATH={hook}", "-o", str(out), "--max-time",
         "60", *TINY, "--processes", "2"],
    )  # fmt: skip
    assert res.exit_code == 1, res.output
    text = summary.read_text()
    assert text.startswith("# earlier steps\n")  # appended, not overwritten
    assert "slower" in text and "confirmed in 5 round(s) of fresh processes" in text
    assert f"gate: {out} judged in" in " ".join(res.output.split())
    rs = results.load_results(out)
    assert set(rs.meta["environments"]) == {"base", "head"}
    assert rs.meta["precision"]["mode"] == "decide" and rs.meta["confirmation"]
    # The run records the `dscbench run` command the gate made: what `run --resume DIR` replays.
    assert rs.meta["command"][1] == "run"
    replayed = resume_arguments(rs.meta["command"])
    assert replayed[-len(TINY) - 2 :] == [*TINY, "--processes", "2"]  # after the gate's own
    assert replayed[replayed.index("--decide") + 1] == "5%"
    assert f"head=:PYTHONPATH={hook}" in replayed and "base=" in replayed
    # Both rows of the 4->4 configuration: head takes about 1.5x base's time.
    head = rs.results[rs.results.env == "head"].set_index("variant").latency_median_s
    base = rs.results[rs.results.env == "base"].set_index("variant").latency_median_s
    assert ((head / base) > 1.25).all()
