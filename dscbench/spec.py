"""What to measure: ConvSpec, grids, presets, spec files, and validation.

Pure Python on purpose (no torch import): ``dscbench --help``, ``presets`` and validation stay fast.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any

from dscbench.errors import SpecError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

VARIANTS = ("standard", "separable")

# Canonical dtype name -> accepted spellings.
DTYPE_ALIASES: dict[str, tuple[str, ...]] = {
    "float32": ("float32", "fp32", "f32", "float"),
    "float16": ("float16", "fp16", "f16", "half"),
    "bfloat16": ("bfloat16", "bf16"),
    "float64": ("float64", "fp64", "f64", "double"),
}
_DTYPE_LOOKUP = {alias: name for name, aliases in DTYPE_ALIASES.items() for alias in aliases}
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}

MODES = ("inference", "training")
# Training steps: forward, loss, backward, optimizer step (training.py says which settings).
OPTIMIZERS = ("sgd", "adam")
TWINS = ("separable", "dense")  # how a user model's twin is derived (models/twins.py)
MEMORY_FORMATS = ("contiguous", "channels_last")
_MEMORY_FORMAT_ALIASES = {
    "contiguous": "contiguous",
    "nchw": "contiguous",
    "channels_last": "channels_last",
    "channels-last": "channels_last",
    "nhwc": "channels_last",
}

# Axis name -> default value when neither the grid nor a flag gives one.
# out_channels None means "equal to in_channels"; threads None means "what torch uses".
AXIS_DEFAULTS: dict[str, Any] = {
    "batch": [1],
    "in_channels": None,  # required
    "out_channels": None,
    "size": None,  # required
    "kernel": [3],
    "stride": [1],
    "dtype": ["float32"],
    "mode": ["inference"],
    "backend": ["torch-cpu"],
    "threads": [None],
    "memory_format": ["contiguous"],
    "bias": [False],
    "optimizer": ["sgd"],
    # Model twins (a grid with ``model`` expands to ModelSpecs; the conv axes do not apply).
    "model": None,
    "width_mult": [1.0],
    "resolution": [None],  # None: the model's own default (224 for the MobileNets)
    "depth": [None],  # None: the model's own default (8 middle-flow blocks for Xception)
    "input_shape": [None],  # C,H,W: required by user models, fixed for the built-in ones
    "twin": ["separable"],
}
AXES = tuple(AXIS_DEFAULTS)
CONV_AXES = ("in_channels", "out_channels", "size", "kernel", "stride", "bias")
MODEL_AXES = ("model", "width_mult", "resolution", "depth", "input_shape", "twin")
RUN_KEYS = ("min_time", "rounds", "warmup", "seed", "parity", "fresh")
BOOL_RUN_KEYS = ("parity", "fresh")
ALL_BACKENDS = "all"  # in the backend axis: every backend available on this machine


@dataclass(frozen=True, order=True)
class ConvSpec:
    """One convolution workload: the standard conv and its separable twin share it.

    Padding is "same" (kernel // 2), kernels are odd. ``threads`` is the intra-op thread count the
    workload runs with; it is part of the configuration because the verdict can flip with it.
    """

    batch: int
    in_channels: int
    out_channels: int
    # The input's size in each spatial dimension: (H, W) for a Conv2d. Counts, output sizes and
    # labels are written over it, so a Conv1d or Conv3d twin needs no new fields here.
    spatial: tuple[int, ...]
    kernel: int
    stride: int = 1
    dtype: str = "float32"
    mode: str = "inference"
    threads: int = 1
    memory_format: str = "contiguous"
    bias: bool = False
    optimizer: str = ""  # training only: sgd or adam

    kind = "conv"

    def __post_init__(self) -> None:
        object.__setattr__(self, "spatial", tuple(self.spatial))
        _settle_optimizer(self)

    @property
    def padding(self) -> int:
        return self.kernel // 2

    @property
    def out_spatial(self) -> tuple[int, ...]:
        """The output's size in each spatial dimension ('same' padding, ``stride``)."""
        return tuple((s + 2 * self.padding - self.kernel) // self.stride + 1 for s in self.spatial)

    # The 2-D names the result columns use (a Conv2d's spatial dimensions are H, W).
    @property
    def height(self) -> int:
        return self.spatial[-2]

    @property
    def width(self) -> int:
        return self.spatial[-1]

    @property
    def out_height(self) -> int:
        return self.out_spatial[-2]

    @property
    def out_width(self) -> int:
        return self.out_spatial[-1]

    @property
    def config_id(self) -> str:
        """A readable key, unique over every field (backend and variant are separate columns)."""
        parts = [
            f"n{self.batch}",
            f"c{self.in_channels}-{self.out_channels}",
            "x".join(map(str, self.spatial)),
            f"k{self.kernel}s{self.stride}",
            self.dtype,
            _mode_part(self.mode, self.optimizer),
            f"t{self.threads}",
        ]
        if self.memory_format != "contiguous":
            parts.append(self.memory_format)
        if self.bias:
            parts.append("bias")
        return "_".join(parts)

    def label(self) -> str:
        """A short human label (labels.row_label): 'n1 32->64 @56 k3s1 float32 t2'."""
        from dscbench.labels import row_label

        return row_label(spec_to_json(self))

    def input_dims(self) -> tuple[int, ...]:
        return (self.batch, self.in_channels, *self.spatial)


def _settle_optimizer(spec: Any) -> None:
    """The optimizer belongs to training only: sgd unless told, and empty for inference."""
    if spec.mode == "training" and not spec.optimizer:
        object.__setattr__(spec, "optimizer", "sgd")
    elif spec.mode != "training" and spec.optimizer:
        object.__setattr__(spec, "optimizer", "")


def _mode_part(mode: str, optimizer: str) -> str:
    return f"{mode}-{optimizer}" if mode == "training" and optimizer else mode


@dataclass(frozen=True, order=True)
class ModelSpec:
    """A whole network and its twin (models/): ``model`` is a built-in name (models.CATALOG) or
    ``package.module:callable`` for a user model, whose twin is derived as ``twin`` says.
    ``input_shape`` is (C, H, W); ``width_mult`` and ``depth`` are 1.0 and 0 where the model
    has no such knob."""

    batch: int
    model: str
    input_shape: tuple[int, int, int]
    width_mult: float = 1.0
    depth: int = 0
    twin: str = ""  # user models: separable (given model is standard) or dense
    dtype: str = "float32"
    mode: str = "inference"
    threads: int = 1
    memory_format: str = "contiguous"
    optimizer: str = ""

    kind = "model"

    def __post_init__(self) -> None:
        _settle_optimizer(self)

    @property
    def in_channels(self) -> int:
        return self.input_shape[0]

    @property
    def height(self) -> int:
        return self.input_shape[1]

    @property
    def width(self) -> int:
        return self.input_shape[2]

    @property
    def resolution(self) -> int | None:
        """The input's side for a square input (the MobileNet papers' "resolution")."""
        return self.height if self.height == self.width else None

    @property
    def config_id(self) -> str:
        c, h, w = self.input_shape
        parts = [f"n{self.batch}", self.model.replace(":", "."), f"{c}x{h}x{w}"]
        if self.width_mult != 1.0:
            parts.append(f"w{self.width_mult:g}")
        if self.depth:
            parts.append(f"d{self.depth}")
        if self.twin:
            parts.append(f"twin-{self.twin}")
        parts += [self.dtype, _mode_part(self.mode, self.optimizer), f"t{self.threads}"]
        if self.memory_format != "contiguous":
            parts.append(self.memory_format)
        return "_".join(parts)

    def label(self) -> str:
        from dscbench.labels import row_label

        return row_label(spec_to_json(self))

    def input_dims(self) -> tuple[int, int, int, int]:
        return (self.batch, *self.input_shape)


Spec = ConvSpec | ModelSpec


def spec_to_json(spec: Spec) -> dict[str, Any]:
    """A spec as plain data (the worker protocol, labels): its fields plus ``kind``."""
    from dataclasses import asdict

    data = asdict(spec)
    data["kind"] = spec.kind
    if isinstance(spec, ModelSpec):
        data["input_shape"] = list(spec.input_shape)
    else:  # as files and digests have it: a 2-D conv's sizes are height and width
        spatial = data.pop("spatial")
        names = SPATIAL_NAMES.get(len(spatial))
        data.update(zip(names, spatial, strict=True) if names else {"spatial": list(spatial)})
    return data


# What spec_to_json calls each spatial dimension (2-D: the result columns' height and width).
SPATIAL_NAMES = {2: ("height", "width")}


def spec_from_json(data: Mapping[str, Any]) -> Spec:
    fields_ = {k: v for k, v in data.items() if k != "kind"}
    if data.get("kind") == "model":
        fields_["input_shape"] = tuple(fields_["input_shape"])
        return ModelSpec(**fields_)
    for names in SPATIAL_NAMES.values():
        if all(n in fields_ for n in names):
            fields_["spatial"] = tuple(fields_.pop(n) for n in names)
    return ConvSpec(**fields_)


@dataclass(frozen=True)
class Case:
    """A ConvSpec on one backend: the unit the sweep schedules (both variants are measured)."""

    spec: Spec
    backend: str


@dataclass
class RunSettings:
    """How long and how to measure. Times in seconds."""

    min_time: float = 1.5  # measured time per variant per case, summed over all rounds
    rounds: int = 5
    warmup: float = 0.05  # warm-up per variant on the first visit of a case
    seed: int = 0
    parity: bool = True  # compare every output with a float64 reference before timing
    # Rebuild each case's variants (fresh tensors) on every visit, so where memory happens to
    # place them is a round-to-round effect the intervals see, not a bias of the whole run
    # (runner.FRESH_BUILD_SHARE says when a build is too costly to repeat).
    fresh: bool = True

    def validate(self) -> list[str]:
        errors = []
        if not (math.isfinite(self.min_time) and self.min_time > 0):
            errors.append(
                f"--min-time {self.min_time}: must be a positive, finite number of seconds"
            )
        if self.rounds < 1:
            errors.append(f"--rounds {self.rounds}: must be at least 1")
        if not (math.isfinite(self.warmup) and self.warmup >= 0):
            errors.append(
                f"--warmup {self.warmup}: must be zero or a positive, finite number of seconds"
            )
        return errors


class OrtOptLevel(str, Enum):
    """onnxruntime's graph optimisation level (``--ort-opt-level``)."""

    disable = "disable"
    basic = "basic"
    extended = "extended"
    all = "all"


class OrtThreadpool(str, Enum):
    """onnxruntime-cpu's thread pool (``--ort-threadpool``; backends/ort.py)."""

    auto = "auto"
    global_ = "global"
    session = "session"


class CompileMode(str, Enum):
    """torch.compile's mode (``--compile-mode``)."""

    default = "default"
    reduce_overhead = "reduce-overhead"
    max_autotune = "max-autotune"
    max_autotune_no_cudagraphs = "max-autotune-no-cudagraphs"


ORT_OPT_LEVELS = tuple(m.value for m in OrtOptLevel)
ORT_THREADPOOLS = tuple(m.value for m in OrtThreadpool)
COMPILE_MODES = tuple(m.value for m in CompileMode)


@dataclass
class BackendOptions:
    """Settings of particular backends; recorded in run.json with the results."""

    ort_opt_level: str = "all"  # onnxruntime graph optimisation level
    ort_threadpool: str = "auto"  # onnxruntime-cpu thread pool, see backends/ort.py
    compile_mode: str = "default"  # torch.compile mode

    def validate(self) -> list[str]:
        errors = []
        for flag, value, known in (
            ("--ort-opt-level", self.ort_opt_level, ORT_OPT_LEVELS),
            ("--ort-threadpool", self.ort_threadpool, ORT_THREADPOOLS),
            ("--compile-mode", self.compile_mode, COMPILE_MODES),
        ):
            if value not in known:
                errors.append(f"{flag} {value!r}: not one of {', '.join(known)}")
        return errors


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
            for case in _expand(grid, 1, self.source):
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
            for case in _expand(grid, default_threads, self.source):
                seen.setdefault(case, None)
        return list(seen)


# ---------------------------------------------------------------------------------------------
# Parsing single values and comma-separated lists
# ---------------------------------------------------------------------------------------------


def parse_dtype(text: str) -> str:
    name = _DTYPE_LOOKUP.get(str(text).strip().lower())
    if name is None:
        known = ", ".join(DTYPE_ALIASES)
        raise SpecError(f"unknown dtype {text!r} (known: {known})")
    return name


def parse_size(value: Any) -> tuple[int, int]:
    """``56`` -> (56, 56); ``"56x48"`` -> (56, 48) as (height, width)."""
    if isinstance(value, bool):
        raise SpecError(f"size {value!r} is not a size like 56 or 56x48")
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return (_int(value[0], "size"), _int(value[1], "size"))
    text = str(value).strip().lower()
    parts = text.split("x")
    if len(parts) == 1:
        h = _int(parts[0], "size")
        return (h, h)
    if len(parts) == 2:
        return (_int(parts[0], "size"), _int(parts[1], "size"))
    raise SpecError(f"size {value!r} is not a size like 56 or 56x48")


def parse_memory_format(text: Any) -> str:
    name = _MEMORY_FORMAT_ALIASES.get(str(text).strip().lower())
    if name is None:
        raise SpecError(f"unknown memory format {text!r} (known: {', '.join(MEMORY_FORMATS)})")
    return name


def parse_fraction(flag: str, text: str, example: float = 0.05) -> float:
    """'5%' or '0.05' -> 0.05; anything else is a one-line error naming the flag, with an
    ``example`` of a good value for that flag."""
    raw = text.strip()
    good = f"{example:g}", f"{example:.0%}"
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise SpecError(f"{flag} {text!r}: not a number like {good[0]} or {good[1]}") from None
    if not math.isfinite(value):
        raise SpecError(f"{flag} {text!r}: not a finite number")
    if not raw.endswith("%") and value >= 1:
        raise SpecError(
            f"{flag} {text!r}: give a fraction ({good[0]}) or a percentage ({good[1]}), "
            "below 1 (100%)"
        )
    return value


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise SpecError(f"{what} {value!r} is not an integer")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        raise SpecError(f"{what} {value!r} is not an integer") from None


def _bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise SpecError(f"{what} {value!r} is not true or false")


def _threads(value: Any, what: str) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() == "default"):
        return None
    return _int(value, what)


def _float(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise SpecError(f"{what} {value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SpecError(f"{what} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise SpecError(f"{what} {value!r} is not a finite number")
    return number


def _optional_int(value: Any, what: str) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() == "default"):
        return None
    return _int(value, what)


def parse_input_shape(value: Any, what: str = "input-shape") -> tuple[int, int, int] | None:
    """``"3,224,224"``, ``"3x224x224"`` or ``[3, 224, 224]`` -> (C, H, W)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        items = list(value)
    else:
        items = [p for p in str(value).replace("x", ",").split(",")]
    if len(items) != 3:
        raise SpecError(f"{what} {value!r} is not C,H,W (like 3,224,224)")
    c, h, w = (_int(item, what) for item in items)
    return (c, h, w)


def _choice(known: tuple[str, ...]) -> Any:
    def parse(value: Any, what: str) -> str:
        text = str(value).strip().lower()
        if text not in known:
            raise SpecError(f"{what} {value!r}: not one of {', '.join(known)}")
        return text

    return parse


_ITEM_PARSERS = {
    "batch": _int,
    "in_channels": _int,
    "out_channels": _int,
    "kernel": _int,
    "stride": _int,
    "threads": _threads,
    "size": lambda v, _what: parse_size(v),
    "dtype": lambda v, _what: parse_dtype(v),
    "mode": lambda v, _what: str(v).strip().lower(),
    "backend": lambda v, _what: str(v).strip().lower(),
    "memory_format": lambda v, _what: parse_memory_format(v),
    "bias": _bool,
    "optimizer": _choice(OPTIMIZERS),
    "model": lambda v, _what: str(v).strip(),
    "width_mult": _float,
    "resolution": _optional_int,
    "depth": _optional_int,
    "input_shape": parse_input_shape,
    "twin": _choice(TWINS),
}


def parse_axis(axis: str, raw: Any, where: str) -> list[Any]:
    """Parse one axis from a flag (``"1,2,4"``) or a spec-file value (scalar or list).

    ``where`` names the source in error messages (``--batch`` or ``spec.toml [[grid]] 2``).
    An input shape is one C,H,W value (commas belong to it); a list of them separates shapes
    with ``;`` on a flag.
    """
    if axis == "input_shape" and isinstance(raw, str):
        raw = [item.strip() for item in raw.split(";")]
    elif axis == "input_shape" and isinstance(raw, list) and raw and isinstance(raw[0], int):
        raw = [raw]  # one shape written as a TOML list of three integers
    if isinstance(raw, str):
        items: list[Any] = [item.strip() for item in raw.split(",")]
        if any(item == "" for item in items):
            raise SpecError(f"{where}: {raw!r} is not a comma-separated list (empty item)")
    elif isinstance(raw, list):
        items = list(raw)
    else:
        items = [raw]
    if not items:
        raise SpecError(f"{where}: empty list")
    parse = _ITEM_PARSERS[axis]
    out = []
    for item in items:
        try:
            out.append(parse(item, axis.replace("_", "-")))
        except SpecError as exc:
            raise SpecError(f"{where}: {exc}") from None
    return out


# ---------------------------------------------------------------------------------------------
# Spec files and presets
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Expansion and validation
# ---------------------------------------------------------------------------------------------


def _expand(grid: Mapping[str, list[Any]], default_threads: int, source: str) -> Iterable[Case]:
    modes = grid.get("mode", AXIS_DEFAULTS["mode"])
    if "optimizer" in grid and "training" not in modes:
        raise SpecError(
            f"{source}: --optimizer applies to --mode training, and this sweep measures "
            f"{', '.join(map(str, modes))} only"
        )
    if grid.get("model"):
        yield from _expand_models(grid, default_threads, source)
        return
    stray = [a for a in MODEL_AXES if a in grid and grid[a] != AXIS_DEFAULTS[a]]
    if stray:
        flags = ", ".join(f"--{a.replace('_', '-')}" for a in stray)
        raise SpecError(f"{source}: {flags}: model options, used only with --model")
    axes = {axis: grid.get(axis, AXIS_DEFAULTS[axis]) for axis in AXES}
    for axis in ("in_channels", "size"):
        if axes[axis] is None:
            raise SpecError(f"{source}: no {axis.replace('_', '-')} given")
    out_channels = axes["out_channels"] or [None]
    product = itertools.product(
        axes["batch"],
        axes["in_channels"],
        out_channels,
        axes["size"],
        axes["kernel"],
        axes["stride"],
        axes["dtype"],
        axes["mode"],
        axes["threads"],
        axes["memory_format"],
        axes["bias"],
        axes["backend"],
    )
    for batch, cin, cout, (h, w), k, s, dtype, mode, threads, fmt, bias, backend in product:
        for optimizer in axes["optimizer"] if mode == "training" else [""]:
            spec = ConvSpec(
                batch=batch,
                in_channels=cin,
                out_channels=cin if cout is None else cout,
                spatial=(h, w),
                kernel=k,
                stride=s,
                dtype=dtype,
                mode=mode,
                threads=default_threads if threads is None else threads,
                memory_format=fmt,
                bias=bias,
                optimizer=optimizer,
            )
            yield Case(spec, backend)


def _expand_models(
    grid: Mapping[str, list[Any]], default_threads: int, source: str
) -> Iterable[Case]:
    """Model cases: each model with the knobs that apply to it (models.CATALOG); a knob or
    input shape that applies to none of the grid's models is an error, not ignored."""
    from dscbench.models import CATALOG, KNOB_FLAGS, is_user_model

    stray = [a for a in CONV_AXES if a in grid and grid[a] not in ([None], [False])]
    if stray:
        flags = ", ".join(f"--{a.replace('_', '-')}" for a in stray)
        raise SpecError(f"{source}: {flags}: single-layer options, not used by --model runs")
    axes = {axis: grid.get(axis, AXIS_DEFAULTS[axis]) for axis in AXES}
    models = axes["model"]
    for name in models:
        if not is_user_model(name) and name not in CATALOG:
            raise SpecError(
                f"{source}: unknown model {name!r} (built-in: {', '.join(CATALOG)}; a model "
                "of your own is package.module:callable)"
            )
    infos = {m: CATALOG.get(m) for m in models}
    for knob, flag in KNOB_FLAGS.items():
        given = [v for v in axes[knob] if v not in (None, 1.0)]
        if given and not any(i is not None and knob in i.knobs for i in infos.values()):
            takers = [i.name for i in CATALOG.values() if knob in i.knobs]
            raise SpecError(
                f"{source}: {flag} applies to {', '.join(takers)}, not to {', '.join(models)}"
            )
    bad_depth = [d for d in axes["depth"] if d is not None and d < 1]
    if bad_depth:
        raise SpecError(f"{source}: --depth {bad_depth[0]}: a model has at least 1 block")
    users = [m for m, info in infos.items() if info is None]
    if [t for t in axes["twin"] if t != AXIS_DEFAULTS["twin"][0]] and not users:
        raise SpecError(
            f"{source}: --twin {axes['twin'][-1]} applies to models of your own "
            "(package.module:callable); a built-in model's twin is fixed"
        )
    if axes["input_shape"] != [None] and not users:
        raise SpecError(
            f"{source}: --input-shape applies to models of your own; the built-in models "
            "have their own (use --resolution for the MobileNets)"
        )
    if users and None in axes["input_shape"]:
        raise SpecError(f"{source}: model {users[0]!r} needs --input-shape C,H,W")
    product = itertools.product(
        axes["batch"],
        models,
        axes["width_mult"],
        axes["resolution"],
        axes["depth"],
        axes["input_shape"],
        axes["twin"],
        axes["dtype"],
        axes["mode"],
        axes["threads"],
        axes["memory_format"],
        axes["backend"],
    )
    for batch, name, mult, res, depth, shape, twin, dtype, mode, threads, fmt, backend in product:
        info = infos[name]
        if info is None:
            fields_: dict[str, Any] = dict(input_shape=shape, twin=twin)
        else:
            fields_ = dict(
                input_shape=info.input_shape(res),
                width_mult=mult if "width_mult" in info.knobs else 1.0,
                depth=(info.default_depth if depth is None else depth)
                if "depth" in info.knobs
                else 0,
            )
        for optimizer in axes["optimizer"] if mode == "training" else [""]:
            spec = ModelSpec(
                batch=batch,
                model=name,
                dtype=dtype,
                mode=mode,
                threads=default_threads if threads is None else threads,
                memory_format=fmt,
                optimizer=optimizer,
                **fields_,
            )
            yield Case(spec, backend)


def _common_problems(spec: Spec) -> list[str]:
    problems = []
    if spec.dtype not in DTYPE_BYTES:
        problems.append(f"unknown dtype {spec.dtype!r}")
    if spec.mode not in MODES:
        problems.append(f"unknown mode {spec.mode!r} (known: {', '.join(MODES)})")
    if spec.memory_format not in MEMORY_FORMATS:
        problems.append(f"unknown memory format {spec.memory_format!r}")
    if spec.mode == "training" and spec.optimizer not in OPTIMIZERS:
        problems.append(f"unknown optimizer {spec.optimizer!r} (known: {', '.join(OPTIMIZERS)})")
    return problems


def model_problems(spec: ModelSpec) -> list[str]:
    """Everything wrong with one model spec that shows without building it."""
    problems = []
    for name, value in (("batch", spec.batch), ("threads", spec.threads)):
        if value <= 0:
            problems.append(f"{name} {value} must be positive")
    if any(d <= 0 for d in spec.input_shape):
        c, h, w = spec.input_shape
        problems.append(f"input shape {c},{h},{w} must be positive")
    if not spec.width_mult > 0:
        problems.append(f"width-mult {spec.width_mult:g} must be positive")
    if spec.model in ("mobilenet-v1", "mobilenet-v2") and min(spec.input_shape[1:]) < 32:
        problems.append(f"resolution {spec.height} is below 32 (the MobileNets downsample 32x)")
    if spec.depth < 0:
        problems.append(f"depth {spec.depth} must be positive")
    return problems + _common_problems(spec)


def spec_problems(spec: Spec) -> list[str]:
    """Everything wrong with one spec, each naming the offending value. Empty when valid."""
    if isinstance(spec, ModelSpec):
        return model_problems(spec)
    problems = []
    sizes = dict(zip(SPATIAL_NAMES.get(len(spec.spatial), ()), spec.spatial, strict=False))
    for name in ("batch", "in_channels", "out_channels", *sizes, "kernel", "stride"):
        value = sizes[name] if name in sizes else getattr(spec, name)
        if value <= 0:
            problems.append(f"{name.replace('_', '-')} {value} must be positive")
    if spec.threads <= 0:
        problems.append(f"threads {spec.threads} must be positive")
    if problems:
        return problems
    if spec.kernel % 2 == 0:
        problems.append(
            f"kernel {spec.kernel} is even; 'same' padding (kernel // 2) needs an odd kernel"
        )
    padded = [s + 2 * spec.padding for s in spec.spatial]
    shown = "x".join(map(str, spec.spatial))
    if spec.kernel > min(padded):
        problems.append(
            f"kernel {spec.kernel} is larger than the padded input {'x'.join(map(str, padded))}"
        )
    elif spec.kernel > min(spec.spatial):
        problems.append(
            f"kernel {spec.kernel} is larger than the {shown} input "
            "(the window would be mostly padding)"
        )
    return problems + _common_problems(spec)
