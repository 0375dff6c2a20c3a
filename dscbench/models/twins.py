"""User models and the two twin transforms (README "Your own model").

``--twin separable``: the given model is the ``standard`` variant; every dense KxK conv
(groups 1, a kernel side above 1) becomes a depthwise KxK conv (groups = C_in, same stride,
padding, dilation and padding mode, no bias) followed by a pointwise 1x1 conv (C_in -> C_out,
carrying the original bias).

``--twin dense``: the given model is the ``separable`` variant; every depthwise conv (groups =
C_in > 1, any multiplier) becomes a dense conv of the same shape: same C_in, C_out, kernel,
stride, padding, dilation, padding mode and bias, groups 1.

Both keep every layer's output shape, so the rest of the network is untouched. Grouped convs
that are not depthwise (1 < groups < C_in) and 1x1 convs are left as they are. Replaced layers
get torch's default initialisation under the run's seed.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from dscbench.errors import ModelError
from dscbench.models import caller_directory_on_path


def is_dense_kxk(conv: nn.Conv2d) -> bool:
    return conv.groups == 1 and max(conv.kernel_size) > 1


def is_depthwise(conv: nn.Conv2d) -> bool:
    return conv.groups > 1 and conv.groups == conv.in_channels


def _like(conv: nn.Conv2d, out_channels: int, groups: int, bias: bool) -> nn.Conv2d:
    """A conv with ``conv``'s input channels, kernel, stride, padding, dilation and padding
    mode."""
    return nn.Conv2d(
        conv.in_channels,
        out_channels,
        conv.kernel_size,  # type: ignore[arg-type]
        conv.stride,  # type: ignore[arg-type]
        conv.padding,  # type: ignore[arg-type]
        conv.dilation,  # type: ignore[arg-type]
        groups=groups,
        bias=bias,
        padding_mode=conv.padding_mode,
    )


def separable_of(conv: nn.Conv2d) -> nn.Sequential:
    depthwise = _like(conv, conv.in_channels, groups=conv.in_channels, bias=False)
    pointwise = nn.Conv2d(conv.in_channels, conv.out_channels, 1, bias=conv.bias is not None)
    return nn.Sequential(depthwise, pointwise)


def dense_of(conv: nn.Conv2d) -> nn.Conv2d:
    return _like(conv, conv.out_channels, groups=1, bias=conv.bias is not None)


def replace_convs(
    model: nn.Module, pick: Callable[[nn.Conv2d], bool], make: Callable[[nn.Conv2d], nn.Module]
) -> tuple[nn.Module, int]:
    """A deep copy of ``model`` with every Conv2d that ``pick`` selects replaced by ``make(conv)``
    (in the conv's dtype and device); returns it and the number of replacements."""
    twin = copy.deepcopy(model)
    replaced = 0
    for parent in list(twin.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d) and pick(child):
                new = make(child).to(device=child.weight.device, dtype=child.weight.dtype)
                new.train(child.training)
                setattr(parent, name, new)
                replaced += 1
    return twin, replaced


def to_separable(model: nn.Module) -> tuple[nn.Module, int]:
    return replace_convs(model, is_dense_kxk, separable_of)


def to_dense(model: nn.Module) -> tuple[nn.Module, int]:
    return replace_convs(model, is_depthwise, dense_of)


def load_callable(target: str) -> Callable[[], object]:
    """``package.module:callable`` -> the callable, or a ModelError naming what is missing."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ModelError(f"--model {target!r}: a model of your own is package.module:callable")
    caller_directory_on_path()
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelError(f"--model {target!r}: cannot import {module_name!r} ({exc})") from None
    except Exception as exc:  # the user's module raised while importing
        raise ModelError(
            f"--model {target!r}: importing {module_name!r} raised {type(exc).__name__}: {exc}"
        ) from None
    func = module
    for part in attr.split("."):
        func = getattr(func, part, None)  # type: ignore[assignment]
        if func is None:
            raise ModelError(f"--model {target!r}: {module_name!r} has no attribute {attr!r}")
    if not callable(func):
        raise ModelError(f"--model {target!r}: {attr!r} is not callable")
    return func  # type: ignore[return-value]


def build_user_model(target: str) -> nn.Module:
    """Call the user's builder with no arguments; it must return an nn.Module."""
    build = load_callable(target)
    try:
        model = build()
    except Exception as exc:
        raise ModelError(
            f"--model {target!r}: calling it raised {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(model, nn.Module):
        raise ModelError(
            f"--model {target!r}: returned {type(model).__name__}, not a torch.nn.Module"
        )
    return model


def user_variant(target: str, twin: str, variant: str) -> nn.Module:
    """The ``variant`` of a user model: the model itself, or its twin by ``twin``'s transform.
    A model the transform would leave unchanged is a ModelError (its twin would be itself)."""
    model = build_user_model(target)
    given = "standard" if twin == "separable" else "separable"
    transform = to_separable if twin == "separable" else to_dense
    derived, replaced = transform(model)
    if replaced == 0:
        what = "dense KxK conv (K > 1)" if twin == "separable" else "depthwise conv"
        raise ModelError(
            f"--model {target!r}: has no {what} for --twin {twin} to replace; its twin would "
            "be the same network"
        )
    return model if variant == given else derived


def not_one_tensor(output: Any) -> str:
    """'' when a forward's ``output`` is one tensor, which is all dscbench measures (its parity
    check, loss and ONNX export take one); otherwise what it is, for a message: "a tuple of 2
    (Tensor, Tensor)", "a dict with keys 'out', 'aux'", "None"."""
    if isinstance(output, (torch.Tensor, np.ndarray)):  # onnxruntime's outputs are arrays
        return ""
    if output is None:
        return "None"
    kind = type(output).__name__
    if isinstance(output, (Mapping, tuple, list)):
        if not output:
            return f"an empty {kind}"
        more = ["..."] if len(output) > 4 else []
        if isinstance(output, Mapping):
            return f"a {kind} with keys {', '.join([repr(k) for k in list(output)[:4]] + more)}"
        items = [type(o).__name__ for o in list(output)[:4]] + more
        return f"a {kind} of {len(output)} ({', '.join(items)})"
    return f"an object of type {kind}"


def check_output(target: str, variant: str, output: Any) -> None:
    """A ModelError unless the user model's forward returned one tensor."""
    what = not_one_tensor(output)
    if what:
        raise ModelError(
            f"--model {target!r} ({variant}): its forward returned {what}, not one tensor"
        )
