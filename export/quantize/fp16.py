"""FP16 ONNX for TensorRT 11's strongly typed networks, where precision lives in the graph itself.

TensorRT 11 has no FP16 builder flag: a tensor is float16 only if the ONNX says so. The
conversion (onnxruntime's ``transformers.float16``, the maintained descendant of
onnxconverter-common's converter) puts float16 where the FLOPs are, the conv/gemm trunk and
heads of ``export/quantize/qdq.py``'s plan plus the ReLU/Add/pool ops between them,
and keeps float32 for everything whose values are coordinates, counts or thresholds: the
graph's inputs and outputs, box decoding and clipping, score arithmetic, NMS, TopK, RoIAlign
and the custom ops (float16 has 11 bits of mantissa: a 1920-pixel coordinate would move by 1 px,
and ``exp`` of a box delta overflows). The result is checked in onnxruntime against the FP32
model at the level of detections. Both converters cast around every float32 ("blocked") node,
so an edge between two float32 nodes still goes through float16; those round trips are removed
afterwards, or box coordinates would be rounded to float16 between every op of the decoding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from edgercnn.export.quantize.qdq import CPU_REGION_OPS, name_nodes, plan_layers
from edgercnn.runtime.contract import CONFIG_KEY
from edgercnn.runtime.errors import EdgercnnError
from onnxruntime.transformers import float16

# Ops grown into the float16 region from the trunk's outputs (the trunk's own elementwise ops,
# e.g. an unfolded FrozenBatchNorm's Mul and Add). Resize stays float32: its scales input must be.
FP16_REGION_OPS = (CPU_REGION_OPS - {"Resize"}) | {"Mul", "Sub", "Div", "BatchNormalization", "Concat"}


class Fp16Error(EdgercnnError):
    """A model that cannot be converted to float16 as asked."""


def fp16_nodes(model: onnx.ModelProto) -> set[str]:
    """Names of the nodes that compute in float16: every weight layer and the trunk ops between them."""
    plan = plan_layers(model)
    constants = {init.name for init in model.graph.initializer}
    constants |= {n.output[0] for n in model.graph.node if n.op_type == "Constant" and n.output}
    region = {
        out for node in model.graph.node if node.name in set(plan.feature_layers) for out in node.output
    }
    chosen = set(plan.feature_layers) | set(plan.prediction_layers)
    for node in model.graph.node:
        if node.op_type not in FP16_REGION_OPS:
            continue
        data = [name for name in node.input if name and name not in constants]
        if data and all(name in region for name in data):
            chosen.add(node.name)
            region.update(node.output)
    return chosen


def sort_topologically(graph: onnx.GraphProto) -> None:
    """Reorder nodes so each comes after its inputs' producers (the converter appends its casts)."""
    available = {value.name for value in graph.input} | {init.name for init in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        ready = [node for node in pending if all(name in available for name in node.input)]
        if not ready:
            raise Fp16Error("the float16 graph has a cycle or an input nobody produces")
        for node in ready:
            available.update(node.output)
        ids = {id(node) for node in ready}
        ordered += ready
        pending = [node for node in pending if id(node) not in ids]
    del graph.node[:]
    graph.node.extend(ordered)


def remove_fp16_round_trips(model: onnx.ModelProto) -> int:
    """Drop ``Cast(float16) -> Cast(float32)`` pairs between two float32 nodes; returns how many.

    The converter casts around every blocked node, so an edge between two float32 nodes still
    goes through float16, which would round box coordinates between every op of the decoding.
    """
    graph = model.graph
    casts_to = {
        node.name: next((a.i for a in node.attribute if a.name == "to"), None)
        for node in graph.node
        if node.op_type == "Cast"
    }
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {value.name for value in graph.output}
    removed: set[str] = set()
    renames: dict[str, str] = {}
    for node in graph.node:
        if casts_to.get(node.name) != onnx.TensorProto.FLOAT16 or node.output[0] in outputs:
            continue
        users = consumers.get(node.output[0], [])
        if not users or any(casts_to.get(u.name) != onnx.TensorProto.FLOAT for u in users):
            continue
        removed.add(node.name)
        for user in users:
            if user.output[0] in outputs:  # keep the graph output's name: turn the cast into Identity
                user.op_type = "Identity"
                del user.attribute[:]
                user.input[0] = node.input[0]
            else:
                removed.add(user.name)
                renames[user.output[0]] = node.input[0]
    if not removed:
        return 0

    def resolve(name: str) -> str:
        while name in renames:
            name = renames[name]
        return name

    kept = [node for node in graph.node if node.name not in removed]
    for node in kept:
        for i, name in enumerate(node.input):
            node.input[i] = resolve(name)
    del graph.node[:]
    graph.node.extend(kept)
    produced = {out for node in kept for out in node.output}
    value_infos = [v for v in graph.value_info if v.name in produced]
    del graph.value_info[:]
    graph.value_info.extend(value_infos)
    return len(removed)


def convert_to_fp16(fp32_path: str | Path, out_path: str | Path) -> Path:
    """Write the float16 model (I/O stay float32) with ``precision: fp16`` in its metadata."""
    source = Path(fp32_path)
    if not source.is_file():
        raise Fp16Error(f"{source}: FP32 ONNX model not found")
    model = onnx.load(str(source))
    name_nodes(model)
    keep = fp16_nodes(model)
    if not keep:
        raise Fp16Error(f"{source}: no conv/gemm layer with constant weights to run in float16")
    block = [node.name for node in model.graph.node if node.name not in keep]
    converted = float16.convert_float_to_float16(
        model,
        keep_io_types=True,
        op_block_list=list(float16.DEFAULT_OP_BLOCK_LIST),
        node_block_list=block,
    )
    remove_fp16_round_trips(converted)
    sort_topologically(converted.graph)
    onnx.checker.check_model(converted)
    props = {p.key: p.value for p in model.metadata_props}
    if CONFIG_KEY in props:
        config = json.loads(props[CONFIG_KEY])
        config["precision"] = "fp16"
        props[CONFIG_KEY] = json.dumps(config)
    del converted.metadata_props[:]
    for key, value in props.items():
        converted.metadata_props.add(key=key, value=value)
    out = Path(out_path)
    onnx.save(converted, str(out))
    return out


def detection_parity(
    reference_path: str | Path,
    candidate_path: str | Path,
    feeds: list[dict[str, np.ndarray]],
    threads: int = 2,
) -> dict[str, Any]:
    """The runtime's parity tally (``runtime.matching``) of a candidate model against a reference."""
    from edgercnn.export.quantize.measure import open_session, run_outputs
    from edgercnn.runtime.matching import ParityTally, graph_detections

    reference = open_session(reference_path, threads)
    candidate = open_session(candidate_path, threads)
    tally = ParityTally(strict_iou=0.95, score_tolerance=0.01)
    for feed in feeds:
        ref_out, cand_out = run_outputs(reference, feed), run_outputs(candidate, feed)
        for image in range(int(ref_out["num_detections"].shape[0])):
            tally.add(graph_detections(ref_out, image), graph_detections(cand_out, image))
    return tally.summary()
