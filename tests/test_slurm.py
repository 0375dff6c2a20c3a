"""The README's Slurm recipe against a real Slurm: its job script (sweep.sh) and its
submit-and-merge block, run verbatim on a small sweep, give one complete run with exactly the
sweep's configurations.

Needs a Slurm that answers (`.ci/slurm-up` starts a one-node cluster on this host). Without one
the test skips, except under CI=true, where a missing Slurm is a broken CI setup and fails.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dscbench import results, shards
from dscbench.commands.run.planning import case_key
from dscbench.spec import Case, load_spec_file

README = Path(__file__).parents[1] / "README.md"
WAIT_S = 300  # for the whole array, queueing included


def _no_slurm(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}: .ci/slurm-up should have started a one-node Slurm")
    pytest.skip(f"{reason} (.ci/slurm-up starts a one-node Slurm on this host)")


def _slurm_or_skip() -> None:
    missing = [tool for tool in ("sbatch", "sinfo", "squeue", "scancel") if not shutil.which(tool)]
    if missing:
        _no_slurm(f"no Slurm client here ({', '.join(missing)} not on PATH)")
    try:
        nodes = subprocess.run(
            ["sinfo", "-h", "-t", "idle,mixed,allocated,completing", "-o", "%n"],
            capture_output=True, text=True, timeout=20,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        _no_slurm("no Slurm controller answers (sinfo timed out after 20 s)")
    if nodes.returncode != 0:
        _no_slurm(
            f"no Slurm controller answers (sinfo: {nodes.stderr.strip() or nodes.returncode})"
        )
    if not nodes.stdout.strip():
        _no_slurm("Slurm answers but has no node up")


def _readme_blocks() -> tuple[str, str]:
    """The job script (the ```sh block that is sweep.sh) and the ```sh block right after it."""
    blocks = re.findall(r"^```sh\n(.*?)^```$", README.read_text(encoding="utf-8"), re.M | re.S)
    for i, block in enumerate(blocks):
        lines = block.splitlines()
        if len(lines) > 1 and lines[0] == "#!/bin/bash" and lines[1].startswith("# sweep.sh"):
            assert i + 1 < len(blocks), "README: no submit-and-merge block after sweep.sh"
            return block, blocks[i + 1]
    raise AssertionError("README: no ```sh block starting '#!/bin/bash' then '# sweep.sh'")


def _array_ids(script: str) -> range:
    found = re.search(r"^#SBATCH --array=(\d+)-(\d+)\s*$", script, re.M)
    assert found, "sweep.sh: expected '#SBATCH --array=A-B'"
    first, last = map(int, found.groups())
    return range(first, last + 1)


SWEEP = """\
description = "the README's Slurm recipe, tests/test_slurm.py"

[run]
min_time = 0.02
rounds = 2
warmup = 0

[[grid]]
in_channels = {channels}
size = 8
kernel = 3
stride = 1
threads = 1
backend = "torch-cpu"
"""


def _small_sweep(path: Path, count: int) -> list[Case]:
    """Write a small sweep with a configuration in each of ``count`` shards (a shard with none
    makes `dscbench run` exit 2, 'the sweep is empty', and the merge then lacks it)."""
    channels = [4 * (i + 1) for i in range(count)]
    while True:
        path.write_text(SWEEP.format(channels=channels), encoding="utf-8")
        cases = load_spec_file(path).cases(1)
        parts = [
            shards.select(cases, case_key, shards.Shard(k, count)) for k in range(1, count + 1)
        ]
        if all(parts) or len(channels) >= 8 * count:
            assert all(parts), (
                f"no small sweep found with a configuration in each of {count} shards"
            )
            return cases
        channels.append(channels[-1] + 4)


def _job_logs(directory: Path) -> str:
    logs = sorted(directory.glob("slurm-*.out"))
    if not logs:
        return "(no slurm-*.out files)"
    return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}" for log in logs)


def _cancel_jobs_in(directory: Path) -> None:
    """scancel this test's jobs: those whose working directory is ``directory``."""
    listed = subprocess.run(
        ["squeue", "-h", "-o", "%A %Z"], capture_output=True, text=True, timeout=30
    )
    for line in listed.stdout.splitlines():
        job, _, workdir = line.partition(" ")
        if Path(workdir.strip()) == directory:
            subprocess.run(["scancel", job], timeout=30, check=False)


@pytest.mark.slow
def test_the_readme_slurm_array_merges_into_the_whole_sweep(tmp_path):
    _slurm_or_skip()
    script, submit = _readme_blocks()
    task_ids = _array_ids(script)
    count = len(task_ids)
    (tmp_path / "sweep.sh").write_text(script, encoding="utf-8")
    cases = _small_sweep(tmp_path / "sweep.toml", count)
    expected = {(case.spec.config_id, case.backend) for case in cases}

    # sbatch hands the submitter's environment to the tasks: there, dscbench is this venv's.
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    shell = subprocess.Popen(
        ["bash", "-e", "-c", submit], cwd=tmp_path, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = shell.communicate(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        os.killpg(shell.pid, signal.SIGKILL)  # bash and its sbatch --wait
        shell.communicate()
        _cancel_jobs_in(tmp_path)
        pytest.fail(
            f"the array did not finish within {WAIT_S} s (cancelled)\n{_job_logs(tmp_path)}"
        )
    report = f"{output}\n{_job_logs(tmp_path)}"
    assert shell.returncode == 0, report

    merged = results.load_results(tmp_path / "results" / "sweep")
    assert merged.meta["status"] == "complete", report
    got = set(zip(merged.results.config_id, merged.results.backend, strict=True))
    assert got == expected, report
    assert len(merged.results) == 2 * len(expected), report  # standard and separable rows
    assert len(merged.meta["merged_from"]) == count, report
    for k, task in enumerate(task_ids, start=1):  # --shard auto read K and N from the array
        shard = results.load_results(tmp_path / "results" / f"shard-{task}").meta["shard"]
        assert (shard["index"], shard["count"], shard["source"]) == (k, count, "slurm"), report
