"""The ONNX graph of a variant.

Single conv layers: built directly from the torch module's weights, with no exporter
(torch.onnx's dynamo exporter takes seconds per conv, while these graphs are one or two Conv
nodes whose attributes follow from the ConvSpec). Weights are copied bit for bit from the torch
module (same dtype), so the ONNX model computes exactly the module's function.

Whole networks: torch.onnx.export's TorchScript exporter (``dynamo=False``: the dynamo exporter
needs onnxscript, which dscbench does not require), in eval mode with constant folding, which
folds batch norm into the convs as deployment tools do. The parity check compares the result
with the float64 reference like any other row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

if TYPE_CHECKING:
    import torch

    from dscbench.spec import ConvSpec

OPSET = 17  # Conv has not changed since opset 11; 17 is supported by every maintained runtime
IR_VERSION = 8  # the IR of opset 17, so older onnxruntime releases load the model too
ONNX_DTYPES = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16}
NUMPY_DTYPES = {"float32": np.float32, "float16": np.float16}
INPUT, OUTPUT = "x", "y"


def _conv_node(
    conv: torch.nn.Conv1d | torch.nn.Conv2d | torch.nn.Conv3d, source: str, target: str, prefix: str
) -> tuple[onnx.NodeProto, list[onnx.TensorProto]]:
    weight = numpy_helper.from_array(conv.weight.detach().cpu().numpy(), f"{prefix}.weight")
    inputs = [source, weight.name]
    initializers = [weight]
    if conv.bias is not None:
        bias = numpy_helper.from_array(conv.bias.detach().cpu().numpy(), f"{prefix}.bias")
        inputs.append(bias.name)
        initializers.append(bias)
    pads = list(conv.padding)  # type: ignore[arg-type]
    node = helper.make_node(
        "Conv",
        inputs,
        [target],
        name=prefix,
        kernel_shape=list(conv.kernel_size),
        strides=list(conv.stride),
        pads=pads + pads,  # each dimension's start, then each one's end
        dilations=list(conv.dilation),
        group=conv.groups,
    )
    return node, initializers


def export_network(module: torch.nn.Module, x: torch.Tensor) -> onnx.ModelProto:
    """A whole network through torch.onnx.export (module docstring)."""
    import io
    import warnings

    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(
            module,
            (x,),
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT],
            output_names=[OUTPUT],
            do_constant_folding=True,
            training=torch.onnx.TrainingMode.EVAL,
        )
    model = onnx.load_from_string(buffer.getvalue())
    model.ir_version = min(model.ir_version, IR_VERSION)
    return model


def output_shape(model: onnx.ModelProto) -> list[int]:
    dims = model.graph.output[0].type.tensor_type.shape.dim
    return [int(d.dim_value) for d in dims]


def build_model(spec: ConvSpec, variant: str, module: torch.nn.Module) -> onnx.ModelProto:
    """The ONNX model of ``module`` (a Conv1d/2d/3d, or Sequential(depthwise, pointwise))."""
    from dscbench.ops import CONVS

    if spec.dtype not in ONNX_DTYPES:
        raise ValueError(f"dtype {spec.dtype!r} has no ONNX graph here")
    kinds = tuple(CONVS.values())
    convs = [module] if isinstance(module, kinds) else list(module.children())
    if not convs or not all(isinstance(c, kinds) for c in convs):
        raise ValueError(f"{variant}: expected conv layers, got {type(module).__name__}")
    nodes, initializers = [], []
    source = INPUT
    for i, conv in enumerate(convs):
        target = OUTPUT if i == len(convs) - 1 else f"{variant}.{i}.out"
        node, inits = _conv_node(conv, source, target, f"{variant}.{i}")
        nodes.append(node)
        initializers.extend(inits)
        source = target
    elem = ONNX_DTYPES[spec.dtype]
    graph = helper.make_graph(
        nodes,
        f"dscbench_{variant}",
        [helper.make_tensor_value_info(INPUT, elem, [spec.batch, spec.in_channels, *spec.spatial])],
        [
            helper.make_tensor_value_info(
                OUTPUT, elem, [spec.batch, spec.out_channels, *spec.out_spatial]
            )
        ],
        initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="dscbench"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model
