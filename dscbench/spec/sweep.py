"""A Sweep (grids plus settings) and where sweeps come from: TOML spec files and the presets
shipped as package data (dscbench/presets/*.toml)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from dscbench.errors import SpecError
from dscbench.spec.axes import ALL_BACKENDS, AXES, AXIS_DEFAULTS, parse_axis
from dscbench.spec.expand import expand_grid
from dscbench.spec.settings import BOOL_RUN_KEYS, RUN_KEYS, BackendOptions, RunSettings
from dscbench.spec.specs import Case

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


@dataclass
class Sweep:
    """A list of grids (axis -> candidate values) plus run settings."""

    grids: list[dict[str, list[Any]]]
    settings: RunSettings = field(default_factory=RunSettings)
    source: str = "<flags>"
    description: str = ""
    options: BackendOptions = field(default_factory=BackendOptions)

    def override(self, axis: str, values: list[Any]) -> None:
        """Replace one axis in every grid (a command-line flag beats the preset)."""
        for grid in self.grids:
            grid[axis] = list(values)

    def requested_backends(self) -> list[str]:
        """Backend names the grids ask for, in first-seen order (may include ``all``)."""
        names: dict[str, None] = {}
        for grid in self.grids:
            for name in grid.get("backend", AXIS_DEFAULTS["backend"]):
                names.setdefault(name, None)
        return list(names)

    def expand_all_backends(self, available: list[str]) -> None:
        """Replace ``all`` in every grid's backend axis by ``available`` (registry order)."""
        for grid in self.grids:
            names = grid.get("backend", AXIS_DEFAULTS["backend"])
            if ALL_BACKENDS in names:
                expanded: dict[str, None] = {}
                for name in names:
                    for n in available if name == ALL_BACKENDS else [name]:
                        expanded.setdefault(n, None)
                grid["backend"] = list(expanded)

    def size(self) -> int:
        """How many cases the grids expand to at most (before duplicates are dropped), counted
        without expanding them: a 10^6-configuration typo is refused in microseconds."""
        total = 0
        for grid in self.grids:
            n = 1
            for axis in AXES:
                values = grid.get(axis, AXIS_DEFAULTS[axis])
                n *= len(values) if values else 1
            total += n
        return total

    def count_up_to(self, stop: int) -> int:
        """Distinct cases, counted lazily up to ``stop`` (what a size limit needs)."""
        seen: set[Case] = set()
        for grid in self.grids:
            for case in expand_grid(grid, 1, self.source):
                seen.add(case)
                if len(seen) >= stop:
                    return len(seen)
        return len(seen)

    def needs_default_threads(self) -> bool:
        """Whether some grid leaves the thread count to the backend's default (which takes
        importing torch to know)."""
        return any(None in grid.get("threads", AXIS_DEFAULTS["threads"]) for grid in self.grids)

    def cases(self, default_threads: int) -> list[Case]:
        """Expand every grid into cases, dropping duplicates but keeping first-seen order."""
        seen: dict[Case, None] = {}
        for grid in self.grids:
            for case in expand_grid(grid, default_threads, self.source):
                seen.setdefault(case, None)
        return list(seen)


def _grid_from_table(table: Mapping[str, Any], where: str) -> dict[str, list[Any]]:
    grid: dict[str, list[Any]] = {}
    for key, raw in table.items():
        axis = key.replace("-", "_")
        if axis not in AXES:
            raise SpecError(f"{where}: unknown key {key!r} (known: {', '.join(AXES)})")
        grid[axis] = parse_axis(axis, raw, f"{where} {key}")
    return grid


def _section(doc: Mapping[str, Any], name: str, source: str) -> Mapping[str, Any]:
    table = doc.get(name, {})
    if not isinstance(table, dict):
        raise SpecError(f"{source}: [{name}] must be a table")
    return table


def parse_spec_text(text: str, source: str) -> Sweep:
    """Parse a TOML sweep spec (format in README 'Spec files')."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source}: not valid TOML ({exc})") from None
    known = {"description", "run", "defaults", "grid", "backend_options"}
    for key in doc:
        if key not in known:
            raise SpecError(
                f"{source}: unknown top-level key {key!r} (known: {', '.join(sorted(known))})"
            )
    settings = RunSettings()
    for key, value in _section(doc, "run", source).items():
        attr = key.replace("-", "_")
        if attr not in RUN_KEYS:
            raise SpecError(f"{source} [run]: unknown key {key!r} (known: {', '.join(RUN_KEYS)})")
        if attr in BOOL_RUN_KEYS:
            if not isinstance(value, bool):
                raise SpecError(f"{source} [run] {key}: {value!r} is not true or false")
            setattr(settings, attr, value)
            continue
        caster = int if attr in ("rounds", "seed") else float
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{source} [run] {key}: {value!r} is not a number")
        setattr(settings, attr, caster(value))
    options = BackendOptions()
    for key, value in _section(doc, "backend_options", source).items():
        attr = key.replace("-", "_")
        if attr not in vars(options):
            raise SpecError(
                f"{source} [backend_options]: unknown key {key!r} "
                f"(known: {', '.join(vars(options))})"
            )
        setattr(options, attr, str(value))
    for problem in options.validate():
        raise SpecError(f"{source} [backend_options]: {problem.split(' ', 1)[1]}")
    base = _grid_from_table(_section(doc, "defaults", source), f"{source} [defaults]")
    tables = doc.get("grid")
    if not isinstance(tables, list) or not tables:
        raise SpecError(f"{source}: needs at least one [[grid]] table")
    grids = []
    for i, table in enumerate(tables, start=1):
        grid = dict(base)
        grid.update(_grid_from_table(table, f"{source} [[grid]] {i}"))
        required = ("model",) if "model" in grid else ("in_channels", "size")
        for key in required:
            if key not in grid:
                raise SpecError(f"{source} [[grid]] {i}: missing {key!r}")
        grids.append(grid)
    return Sweep(grids, settings, source, str(doc.get("description", "")), options)


def load_spec_file(path: Path) -> Sweep:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"--spec {path}: cannot read ({exc.strerror or exc})") from None
    return parse_spec_text(text, str(path))


def preset_names() -> list[str]:
    files = resources.files("dscbench").joinpath("presets").iterdir()
    return sorted(p.name.removesuffix(".toml") for p in files if p.name.endswith(".toml"))


def load_preset(name: str) -> Sweep:
    names = preset_names()
    if name not in names:
        raise SpecError(f"unknown preset {name!r} (available: {', '.join(names)})")
    text = resources.files("dscbench").joinpath("presets", f"{name}.toml").read_text("utf-8")
    sweep = parse_spec_text(text, f"preset {name}")
    sweep.source = f"preset:{name}"
    return sweep
