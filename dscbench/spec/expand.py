"""From grids to cases: each grid's axes multiplied out into ConvSpecs or ModelSpecs on
backends, and the checks of one spec on its own (plan.py checks it against its backend)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from dscbench.errors import SpecError
from dscbench.spec.axes import AXES, AXIS_DEFAULTS, CONV_AXES, MODEL_AXES, spatial_of
from dscbench.spec.specs import (
    CACHES,
    DTYPE_BYTES,
    MEMORY_FORMATS,
    MODES,
    OPTIMIZERS,
    SPATIAL_NAMES,
    Case,
    ConvSpec,
    ModelSpec,
    Spec,
)

if TYPE_CHECKING:
    from dscbench.models import ModelInfo


def expand_grid(grid: Mapping[str, list[Any]], default_threads: int, source: str) -> Iterable[Case]:
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
        axes["dims"],
        axes["kernel"],
        axes["stride"],
        axes["dilation"],
        axes["depth_multiplier"],
        axes["dtype"],
        axes["mode"],
        axes["threads"],
        axes["memory_format"],
        axes["cache"],
        axes["bias"],
        axes["backend"],
    )
    for (batch, cin, cout, size, dims, k, s, dil, mult, dtype, mode, threads, fmt, cache, bias,
         backend) in product:  # fmt: skip
        for optimizer in axes["optimizer"] if mode == "training" else [""]:
            spec = ConvSpec(
                batch=batch,
                in_channels=cin,
                out_channels=cin if cout is None else cout,
                spatial=spatial_of(size, dims, source),
                kernel=k,
                stride=s,
                dilation=dil,
                depth_multiplier=mult,
                dtype=dtype,
                mode=mode,
                threads=default_threads if threads is None else threads,
                memory_format=fmt,
                bias=bias,
                optimizer=optimizer,
                cache=cache,
            )
            yield Case(spec, backend)


def _expand_models(
    grid: Mapping[str, list[Any]], default_threads: int, source: str
) -> Iterable[Case]:
    """Model cases: each model with the knobs that apply to it (models.CATALOG); a knob or
    input shape that applies to none of the grid's models is an error, not ignored."""
    stray = [a for a in CONV_AXES if a in grid and grid[a] not in ([None], [False])]
    if stray:
        flags = ", ".join(f"--{a.replace('_', '-')}" for a in stray)
        raise SpecError(f"{source}: {flags}: single-layer options, not used by --model runs")
    axes = {axis: grid.get(axis, AXIS_DEFAULTS[axis]) for axis in AXES}
    infos = _model_infos(axes["model"], source)
    _check_model_options(axes, infos, source)
    product = itertools.product(
        axes["batch"],
        axes["model"],
        axes["width_mult"],
        axes["resolution"],
        axes["depth"],
        axes["input_shape"],
        axes["twin"],
        axes["dtype"],
        axes["mode"],
        axes["threads"],
        axes["memory_format"],
        axes["cache"],
        axes["backend"],
    )
    for (batch, name, mult, res, depth, shape, twin, dtype, mode, threads, fmt, cache,
         backend) in product:  # fmt: skip
        info = infos[name]
        if info is None:
            fields_: dict[str, Any] = dict(input_shape=shape, twin=twin)
        else:
            fields_ = _builtin_fields(info, mult, res, depth)
        for optimizer in axes["optimizer"] if mode == "training" else [""]:
            spec = ModelSpec(
                batch=batch,
                model=name,
                dtype=dtype,
                mode=mode,
                threads=default_threads if threads is None else threads,
                memory_format=fmt,
                optimizer=optimizer,
                cache=cache,
                **fields_,
            )
            yield Case(spec, backend)


def _model_infos(models: list[str], source: str) -> dict[str, ModelInfo | None]:
    """Each model's catalog entry, None for a model of the user's own;
    an unknown built-in name is an error."""
    from dscbench.models import CATALOG, is_user_model

    for name in models:
        if not is_user_model(name) and name not in CATALOG:
            raise SpecError(
                f"{source}: unknown model {name!r} (built-in: {', '.join(CATALOG)}; a model "
                "of your own is package.module:callable)"
            )
    return {m: CATALOG.get(m) for m in models}


def _check_model_options(
    axes: Mapping[str, list[Any]], infos: Mapping[str, ModelInfo | None], source: str
) -> None:
    """Refuse a knob, twin or input shape that applies to none of the grid's models, a depth
    below 1, and a user model without an input shape."""
    from dscbench.models import CATALOG, KNOB_FLAGS

    models = list(infos)
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


def _builtin_fields(
    info: ModelInfo, mult: float, res: int | None, depth: int | None
) -> dict[str, Any]:
    """A built-in model's ModelSpec fields: its input shape at ``res``, and the width and depth
    knobs where it has them (1.0 and 0 where it has not)."""
    return dict(
        input_shape=info.input_shape(res),
        width_mult=mult if "width_mult" in info.knobs else 1.0,
        depth=(info.default_depth if depth is None else depth) if "depth" in info.knobs else 0,
    )


def _common_problems(spec: Spec) -> list[str]:
    problems = []
    if spec.dtype not in DTYPE_BYTES:
        problems.append(f"unknown dtype {spec.dtype!r}")
    if spec.mode not in MODES:
        problems.append(f"unknown mode {spec.mode!r} (known: {', '.join(MODES)})")
    if spec.memory_format not in MEMORY_FORMATS:
        problems.append(f"unknown memory format {spec.memory_format!r}")
    if spec.cache not in CACHES:
        problems.append(f"unknown cache {spec.cache!r} (known: {', '.join(CACHES)})")
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
    names = ("batch", "in_channels", "out_channels", *sizes, "kernel", "stride", "dilation",
             "depth_multiplier")  # fmt: skip
    for name in names:
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
    kernel = f"kernel {spec.kernel}" + (
        f" at dilation {spec.dilation} (spanning {spec.span})" if spec.dilation != 1 else ""
    )
    if spec.span > min(padded):
        problems.append(f"{kernel} is larger than the padded input {'x'.join(map(str, padded))}")
    elif spec.span > min(spec.spatial):
        problems.append(
            f"{kernel} is larger than the {shown} input (the window would be mostly padding)"
        )
    if spec.dims not in SPATIAL_NAMES:
        problems.append(f"size {shown}: a conv has 1, 2 or 3 spatial dimensions")
    elif spec.dims == 1 and spec.memory_format == "channels_last":
        problems.append(
            f"memory format channels_last applies to 2-D and 3-D inputs, not the 1-D {shown}"
        )
    return problems + _common_problems(spec)
