"""`dscbench run --resume DIR`: read the interrupted run (its journal and where it stopped),
refuse one whose sweep, settings, environments, dscbench version or hardware differ from what
is asked now, and record how it was resumed."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dscbench import results
from dscbench.env import utc_now
from dscbench.errors import ResultsError, SpecError
from dscbench.sweep_state import ResumePoint


@dataclass
class Previous:
    """An interrupted run to finish (--resume): its directory, run.json, and journal."""

    directory: Path
    meta: dict[str, Any]
    point: ResumePoint


def resume_point(directory: Path) -> Previous:
    """Read the run ``--resume`` names; refuse (exit 2) one that is complete, or was not
    written by a dscbench that keeps a journal."""
    directory = Path(directory)
    where = f"--resume {directory}"
    if not (directory / results.RUN_JSON).is_file():
        raise ResultsError(f"{where}: no {results.RUN_JSON}: not a dscbench run directory")
    try:
        manifest = results.read_manifest(directory)
    except ResultsError as exc:
        raise ResultsError(f"{where}: {exc}") from None
    if manifest is None or not (directory / results.JOURNAL).is_file():
        raise ResultsError(
            f"{where}: no {results.MANIFEST} and {results.JOURNAL} (a merged run, or one "
            "written by a dscbench before 0.6): it cannot be resumed"
        )
    if manifest.get("status") == "complete":
        raise ResultsError(f"{where}: the run is complete; there is nothing to resume")
    try:  # the journal, read once and checked as every reader checks a run
        loaded, contents = results.load_journal(directory)
    except ResultsError as exc:
        raise ResultsError(f"{where}: {exc}") from None
    point = ResumePoint(
        contents.records,
        {c: contents.samples[c].tolist() for c in results.SAMPLE_COLUMNS},
        contents.canary,
        int(loaded.meta.get("rounds_done") or 0),
    )
    meta = loaded.meta
    return Previous(directory, meta, point)


# What must be equal for a run to go on where it stopped: (run.json path, what it is called)
RESUME_KEYS = (
    (("configurations_sha256",), "the configurations"),
    (("settings",), "the settings"),
    (("backend_options",), "the backend options"),
    (("shard",), "the shard"),
    (("env_specs",), "the environments (--env interpreters and variables)"),
    (("variables",), "the environment variables (OMP_*, ONEDNN_*, ...)"),
    (("environment", "dscbench"), "the dscbench version"),
    (("environment", "machine"), "the hardware (machine)"),
    (("environment", "cpu_model"), "the hardware (CPU model)"),
    (("environment", "cpu_count"), "the hardware (CPU count)"),
)


def _at(meta: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        meta = meta.get(key) if isinstance(meta, dict) else None
    return meta


def resume_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between the run to resume and the one asked for now, one phrase each."""
    found = []
    for path, what in RESUME_KEYS:
        a, b = _at(old, path), _at(new, path)
        if path in (("env_specs",), ("variables",)):
            if path[0] not in old:  # a run written before these were recorded cannot tell
                continue
            a, b = a or {}, b or {}
        a = results.json_safe(a)
        b = results.json_safe(b)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            detail = ", ".join(f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in keys)
            found.append(f"{what} differ ({detail})")
        elif path == ("configurations_sha256",):
            found.append(
                f"{what} differ ({old.get('n_configurations')} in the run, "
                f"{new.get('n_configurations')} now)"
            )
        else:
            found.append(f"{what} differs ({a!r} -> {b!r})")
    devices = {
        (name, info.get("device_name"))
        for name, info in (old.get("backends") or {}).items()
        if isinstance(info, dict)
    }
    for name, info in (new.get("backends") or {}).items():
        was = dict(devices).get(name)
        if was is not None and was != info.get("device_name"):
            found.append(f"the hardware ({name}: {was!r} -> {info.get('device_name')!r})")
    return found


def resume_arguments(argv: list[str]) -> list[str]:
    """The arguments after ``run`` of a recorded command (``argv``, as sys.argv), less where
    it wrote (-o, --output, --resume, --force): what a resume repeats."""
    args, skip = [], False
    for arg in argv[2:]:
        if skip:
            skip = False
        elif arg in ("-o", "--output", "--resume"):
            skip = True
        elif not (arg == "--force" or arg.startswith(("--output=", "--resume=", "-o"))):
            args.append(arg)
    return args


def resume_command(argv: list[str], directory: Path) -> str:
    """The command a run was started with, as ``dscbench run ... --resume DIR``."""
    import shlex

    return shlex.join(["dscbench", "run", *resume_arguments(argv), "--resume", str(directory)])


def resumed_meta(previous: Previous, now: dict[str, Any]) -> dict[str, Any]:
    """run.json of a resumed run: the original, plus when and how it was resumed; refuses
    (exit 2) when the sweep, the settings, the dscbench version or the hardware differ."""
    differences = resume_differences(previous.meta, now)
    if differences:
        command = resume_command(previous.meta.get("command") or [], previous.directory)
        raise SpecError(
            f"--resume {previous.directory}: {'; '.join(differences)}; resume it with the "
            f"command it was started with: {command}"
        )
    meta = dict(previous.meta)
    meta["resumed"] = [
        *(meta.get("resumed") or []),
        {"at": utc_now(), "command": sys.argv, "rounds_done": previous.point.rounds_done},
    ]
    for key in ("environment", "backends", "notes"):  # this session's facts
        meta[key] = now.get(key, meta.get(key))
    return meta
