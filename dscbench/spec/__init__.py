"""What to measure: ConvSpec, grids, presets, spec files, and validation.

Pure Python on purpose (no torch import): ``dscbench --help``, ``presets`` and validation stay fast.

One job per module; each imports only those above it in this list:
- ``specs``: ConvSpec, ModelSpec, Case, their JSON form and the vocabularies of their fields
- ``settings``: RunSettings and BackendOptions (how to measure), with their choices
- ``axes``: a grid's axes and defaults, parsing an axis from a flag or a spec-file value
- ``expand``: grids to cases (layers and models), and the checks of one spec on its own
- ``sweep``: Sweep, TOML spec files and the presets (package data, dscbench/presets/)

The names below are the package's public face: ``from dscbench.spec import ConvSpec`` and
``from dscbench import spec as specs; specs.load_preset(...)`` keep working.
"""

from dscbench.spec.axes import (
    ALL_BACKENDS,
    AXES,
    AXIS_DEFAULTS,
    CONV_AXES,
    MODEL_AXES,
    parse_axis,
    parse_dtype,
    parse_fraction,
    parse_input_shape,
    parse_memory_format,
    parse_size,
)
from dscbench.spec.expand import expand_grid, model_problems, spec_problems
from dscbench.spec.settings import (
    BOOL_RUN_KEYS,
    COMPILE_MODES,
    ORT_OPT_LEVELS,
    ORT_THREADPOOLS,
    RUN_KEYS,
    BackendOptions,
    CompileMode,
    OrtOptLevel,
    OrtThreadpool,
    RunSettings,
)
from dscbench.spec.specs import (
    CACHES,
    DTYPE_ALIASES,
    DTYPE_BYTES,
    MEMORY_FORMATS,
    MODES,
    OPTIMIZERS,
    SPATIAL_NAMES,
    TWINS,
    VARIANTS,
    Case,
    ConvSpec,
    ModelSpec,
    Spec,
    spec_from_json,
    spec_to_json,
)
from dscbench.spec.sweep import Sweep, load_preset, load_spec_file, parse_spec_text, preset_names

__all__ = [
    "ALL_BACKENDS",
    "AXES",
    "AXIS_DEFAULTS",
    "BOOL_RUN_KEYS",
    "CACHES",
    "COMPILE_MODES",
    "CONV_AXES",
    "DTYPE_ALIASES",
    "DTYPE_BYTES",
    "MEMORY_FORMATS",
    "MODEL_AXES",
    "MODES",
    "OPTIMIZERS",
    "ORT_OPT_LEVELS",
    "ORT_THREADPOOLS",
    "RUN_KEYS",
    "SPATIAL_NAMES",
    "TWINS",
    "VARIANTS",
    "BackendOptions",
    "Case",
    "CompileMode",
    "ConvSpec",
    "ModelSpec",
    "OrtOptLevel",
    "OrtThreadpool",
    "RunSettings",
    "Spec",
    "Sweep",
    "expand_grid",
    "load_preset",
    "load_spec_file",
    "model_problems",
    "parse_axis",
    "parse_dtype",
    "parse_fraction",
    "parse_input_shape",
    "parse_memory_format",
    "parse_size",
    "parse_spec_text",
    "preset_names",
    "spec_from_json",
    "spec_problems",
    "spec_to_json",
]
