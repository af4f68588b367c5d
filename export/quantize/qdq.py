"""Which nodes of an R-CNN graph get INT8, decided from the graph's structure.

The rule: only layers with weights (Conv, ConvTranspose, Gemm, MatMul with a constant weight)
are quantized, and among them only *feature* layers, whose output feeds another weight layer
(backbone, FPN, RPN and RoI head trunks). *Prediction* layers, whose output goes straight into
box decoding, score arithmetic, NMS, RoIAlign sampling or the mask/keypoint outputs (objectness,
box deltas, class logits, mask logits, keypoint heatmaps), stay float: they are a tiny share of
the FLOPs and their rounding would land directly in the boxes and scores. Everything that is
not a weight layer (the custom-op subgraphs, TopK, NMS, Gather, box arithmetic) stays float too.

For the CPU layout, the cheap ops *between* quantized feature layers (ReLU, residual Add,
max-pool, FPN upsampling) are added as well, so onnxruntime can keep the tensors in int8 from
one QLinearConv to the next instead of dequantizing around every ReLU and Add.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field

import onnx
from onnx import numpy_helper

WEIGHT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
# Ops a feature map passes through between two weight layers without becoming something else.
PASS_THROUGH_OPS = frozenset(
    {"Relu", "Clip", "Add", "Sum", "Mul", "MaxPool", "AveragePool", "Resize", "Upsample", "Reshape",
     "Flatten", "Transpose", "Concat", "Identity", "Squeeze", "Unsqueeze", "Pad", "BatchNormalization"}
)  # fmt: skip
# Ops that may join the CPU layout's int8 region (onnxruntime has QLinear kernels or drops them).
CPU_REGION_OPS = frozenset({"Relu", "Clip", "Add", "MaxPool", "Resize"})
SEARCH_DEPTH = 8
# Weight layers onnxruntime's CPU EP runs in float even between Q/DQ (no int8 kernel): measured on
# the Mask R-CNN mask head, a quantized ConvTranspose still ran as a float ConvTranspose.
CPU_FLOAT_OPS = frozenset({"ConvTranspose"})


@dataclass
class LayerPlan:
    """The quantization plan of one graph: feature layers, prediction layers, the CPU int8 region."""

    feature_layers: list[str]
    prediction_layers: list[str]
    cpu_region_ops: list[str]
    op_types: dict[str, str] = field(default_factory=dict)
    # region op -> the nodes producing its data inputs (region ops are listed in graph order)
    region_sources: dict[str, list[str]] = field(default_factory=dict)

    @property
    def cpu_float_layers(self) -> list[str]:
        """Feature layers the CPU variant keeps float: onnxruntime's CPU EP has no int8 kernel for them."""
        return [n for n in self.feature_layers if self.op_types.get(n) in CPU_FLOAT_OPS]

    def region_tensors(self, model: onnx.ModelProto) -> set[str]:
        """Activations that int8 layers read or write: the tensors a TensorRT cache gives ranges to."""
        members = set(self.feature_layers) | set(self.cpu_region_ops)
        tensors: set[str] = set()
        for node in model.graph.node:
            if node.name in members:
                tensors.add(node.input[0])
                tensors.update(node.output)
        return tensors

    def nodes_for(self, variant: str, keep_float: set[str] | frozenset[str] = frozenset()) -> list[str]:
        """Node names to quantize for a variant ('cpu' also takes the ops between int8 layers)."""
        layers = [n for n in self.feature_layers if n not in keep_float]
        if variant == "tensorrt":
            return layers
        cpu_float = set(self.cpu_float_layers)
        chosen = [n for n in layers if n not in cpu_float]
        # A ReLU/Add/pool joins only if everything feeding it is int8: around a float layer it
        # would add a quantization step and no int8 kernel.
        included = set(chosen)
        for op in self.cpu_region_ops:
            sources = self.region_sources.get(op, [])
            if op not in keep_float and sources and all(src in included for src in sources):
                chosen.append(op)
                included.add(op)
        return chosen


def name_nodes(model: onnx.ModelProto) -> int:
    """Give every unnamed node a unique name (the quantizer addresses nodes by name); returns how many."""
    used = {node.name for node in model.graph.node if node.name}
    named = 0
    for index, node in enumerate(model.graph.node):
        if not node.name:
            candidate = f"{node.op_type}_{index}"
            while candidate in used:
                candidate += "_"
            node.name = candidate
            used.add(candidate)
            named += 1
    return named


def _constants(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    consts = {init.name: init for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value":
                    consts[node.output[0]] = attr.t
    return consts


def is_weight_layer(node: onnx.NodeProto, constants: dict[str, onnx.TensorProto]) -> bool:
    if node.op_type not in WEIGHT_OPS or len(node.input) < 2:
        return False
    weight = constants.get(node.input[1])
    if weight is None or weight.data_type != onnx.TensorProto.FLOAT:
        return False
    return len(numpy_helper.to_array(weight).shape) >= 2


def plan_layers(model: onnx.ModelProto) -> LayerPlan:
    """Split the weight layers into feature and prediction layers and find the CPU int8 region."""
    name_nodes(model)
    constants = _constants(model)
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in model.graph.node:
        for name in node.input:
            consumers[name].append(node)
    weights = [node for node in model.graph.node if is_weight_layer(node, constants)]
    weight_names = {node.name for node in weights}

    def feeds_weight_layer(node: onnx.NodeProto) -> bool:
        queue = deque((out, 0) for out in node.output)
        seen: set[str] = set()
        while queue:
            tensor, depth = queue.popleft()
            if tensor in seen or depth > SEARCH_DEPTH:
                continue
            seen.add(tensor)
            for consumer in consumers.get(tensor, []):
                if consumer.name in weight_names and consumer.input[0] == tensor:
                    return True
                if consumer.op_type in PASS_THROUGH_OPS:
                    queue.extend((out, depth + 1) for out in consumer.output)
        return False

    feature = [node.name for node in weights if feeds_weight_layer(node)]
    prediction = [node.name for node in weights if node.name not in set(feature)]

    # The int8 region grows forward from feature-layer outputs through cheap ops whose every
    # non-constant input already lies in it (so box arithmetic, fed by prediction layers, never joins).
    region_tensors = {out for node in weights if node.name in set(feature) for out in node.output}
    producer = {out: node.name for node in model.graph.node for out in node.output}
    region_ops: list[str] = []
    region_sources: dict[str, list[str]] = {}
    for node in model.graph.node:  # ONNX graphs are topologically sorted
        if node.op_type not in CPU_REGION_OPS:
            continue
        data_inputs = [name for name in node.input if name and name not in constants]
        if node.op_type == "Resize":
            data_inputs = data_inputs[:1]
        if data_inputs and all(name in region_tensors for name in data_inputs):
            region_ops.append(node.name)
            region_sources[node.name] = [producer[name] for name in data_inputs]
            region_tensors.update(node.output)
    op_types = {node.name: node.op_type for node in weights}
    return LayerPlan(feature, prediction, region_ops, op_types, region_sources)
