"""A row's fingerprint: the facts of the machine and of the software stack that measured it.
A series is one configuration x variant x backend x environment on one fingerprint, so runs
from different hardware (or, by default, different torch or ONNX Runtime releases) never share
a series; ``--fingerprint`` chooses the facts (leave ``torch`` out to follow a series across
torch upgrades, and see the upgrade as a change point).

Facts come from the run's run.json (per environment where a run interleaved several) and the
row: ``cpu_model``, ``cpu_count``, ``machine``, ``os``, ``python``, ``cpu_capability`` (torch's
instruction set), ``device_name`` (the row's CPU or GPU), ``host``, or any library run.json
lists under ``environment.libraries`` (``torch``, ``onnxruntime``, ``numpy``, ...).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from dscbench.errors import SpecError

DEFAULT_FACTS = ("cpu_model", "cpu_count", "machine", "device_name", "torch", "onnxruntime")
MACHINE_FACTS = ("cpu_model", "cpu_count", "machine", "os", "python")
ROW_FACTS = ("device_name", "host")
# Libraries a run may lack (empty in its fingerprint then); any other library must be listed.
STACK_LIBRARIES = ("torch", "onnxruntime", "onnx", "tensorrt", "numpy")


def parse_facts(text: str | None) -> tuple[str, ...]:
    """``--fingerprint a,b,c``: the facts, in a canonical order (DEFAULT_FACTS when None)."""
    if text is None:
        return DEFAULT_FACTS
    names = tuple(sorted({n.strip() for n in text.split(",") if n.strip()}))
    if not names:
        raise SpecError(f"--fingerprint {text!r}: name at least one fact, e.g. {DEFAULT_FACTS[0]}")
    return names


def environment_of(meta: Mapping[str, Any], env: str) -> Mapping[str, Any]:
    """run.json's environment facts for environment ``env`` ("" in a plain run)."""
    per_env = (meta.get("environments") or {}).get(env) or {}
    return per_env.get("environment") or meta.get("environment") or {}


def facts_of(
    meta: Mapping[str, Any], row: Mapping[str, Any], names: tuple[str, ...]
) -> dict[str, str]:
    """The named facts of one row of a run; an unknown name is a SpecError (exit 2)."""
    env = environment_of(meta, str(row.get("env") or ""))
    libraries = env.get("libraries") or {}
    out: dict[str, str] = {}
    for name in names:
        if name in ROW_FACTS:
            value = row.get(name)
        elif name in MACHINE_FACTS:
            value = env.get(name)
        elif name == "cpu_capability":
            value = (env.get("torch") or {}).get("cpu_capability")
        elif name in libraries:
            value = libraries[name]
        elif name in STACK_LIBRARIES:
            value = None  # a library this environment lacks
        else:
            known = ", ".join((*MACHINE_FACTS, *ROW_FACTS, "cpu_capability"))
            raise SpecError(
                f"--fingerprint: unknown fact {name!r}; use {known}, or a library the run lists "
                f"(run.json environment.libraries: {', '.join(sorted(libraries)) or 'none'})"
            )
        out[name] = "" if value is None else str(value)
    return out


def key_of(facts: Mapping[str, str]) -> str:
    """A fingerprint's key: the first 16 hex digits of the SHA-256 of its facts as JSON."""
    text = json.dumps(dict(sorted(facts.items())), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def series_key(config_id: str, variant: str, backend: str, env: str, fingerprint: str) -> str:
    """A series' key: one configuration x variant x backend x environment on one fingerprint."""
    text = "\x1f".join((config_id, variant, backend, env, fingerprint))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
