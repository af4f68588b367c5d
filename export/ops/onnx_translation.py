"""ONNX translations of the ``edgercnn`` custom ops for ``torch.onnx.export(dynamo=True)``.

Two flavours (see ``plugins/README.md``):
- ``portable``: standard ONNX ops (opset 18) that onnxruntime or any runtime runs. ONNX ``RoiAlign``
  and ``MaxRoiPool`` are torchvision's ``roi_align`` / ``roi_pool`` once ``aligned`` is mapped to
  ``coordinate_transformation_mode`` and the sampling ratio clamped at 0 (ONNX's "adaptive");
  Candidates above the score threshold are compacted with ``TopK``, ``NonMaxSuppression`` runs
  class-aware on an ``[N, classes, candidates]`` score layout, then the kept boxes are merged by
  score with ``TopK`` (ties: lower index first, as torchvision's stable ``nms``).
- ``tensorrt``: one plugin node per op, exactly the contract's op type, domain and attributes.

The functions are traced by the exporter (plain Python calling onnxscript ops), so attributes
arrive as Python values and the variable number of feature maps as a Python list.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import onnx
import onnx.defs
import onnxscript
import torch
from edgercnn.export.ops.arguments import Flavour, OpArgumentError
from edgercnn.runtime.contract import (
    BATCHED_NMS,
    PLUGIN_DOMAIN,
    PLUGIN_NODE_ATTRIBUTES,
    PLUGIN_OPSET,
    ROI_ALIGN,
    AttrType,
    PluginOp,
)
from onnxscript import FLOAT, INT64, ir

# The exporter traces these functions with graph values, not the eager tensors onnxscript's typed
# opset stubs describe; the FLOAT / INT64 annotations below are what the exporter reads.
op: Any = onnxscript.opset18

# Per-level pooling strategy of the portable RoIAlign: "gather" pools each RoI once, from its
# level only (NonZero/Gather/ScatterND); "select" pools every RoI on every level and keeps the
# right one with Where (L times the pooling work, no data-dependent shapes; with adaptive sampling
# a large box pooled on a fine level costs many samples, and onnxruntime's RoiAlign overflows on
# negative-size boxes with aligned=True, which "gather" never pools).
PORTABLE_LEVEL_STRATEGY: Literal["gather", "select"] = "gather"


def _const_i64(values: Sequence[int]) -> INT64:
    return op.Constant(value_ints=list(values))


def _const_f32(value: float) -> FLOAT:
    return op.Constant(value_float=float(value))


def _to_float32(value):
    """ONNX runtimes implement RoiAlign / NonMaxSuppression in float32; fp16 graphs cast around them."""
    if value.dtype == ir.DataType.FLOAT:
        return value
    return op.Cast(value, to=onnx.TensorProto.FLOAT)


def _levels_as_float(
    flat_rois, spatial_scales: Sequence[float], canonical_scale: int, canonical_level: int, eps: float
):
    """torchvision LevelMapper as ONNX ops, level index as float ``[NR]``; NaN for boxes with a
    negative area, which (as in torchvision) then match no level and pool to zeros."""
    k_min = round(-math.log2(spatial_scales[0]))
    k_max = round(-math.log2(spatial_scales[-1]))
    x1 = op.Gather(flat_rois, _const_i64([0]), axis=1)
    y1 = op.Gather(flat_rois, _const_i64([1]), axis=1)
    x2 = op.Gather(flat_rois, _const_i64([2]), axis=1)
    y2 = op.Gather(flat_rois, _const_i64([3]), axis=1)
    size = op.Sqrt(op.Mul(op.Sub(x2, x1), op.Sub(y2, y1)))
    # ONNX has no Log2: log(x)/log(2), in float32 like everything else here (float64 would match
    # torch's log2 more often, but TensorRT has no float64, and torch's own vector sqrt/log2 are
    # not correctly rounded anyway: near a level boundary torchvision's level depends on the CPU).
    log2 = op.Div(op.Log(op.Div(size, _const_f32(canonical_scale))), _const_f32(math.log(2.0)))
    level = op.Floor(op.Add(op.Add(_const_f32(canonical_level), log2), _const_f32(eps)))
    level = op.Clip(level, _const_f32(k_min), _const_f32(k_max))
    return op.Reshape(op.Sub(level, _const_f32(k_min)), _const_i64([-1]))


def _pool(
    feature,
    rois,
    batch_index,
    output_height: int,
    output_width: int,
    scale: float,
    sampling_ratio: int,
    aligned: bool,
    mode: int,
):
    """One level: torchvision ``roi_align`` (mode 0) or ``roi_pool`` (mode 1) as an ONNX op."""
    if mode == 1:
        rois5 = op.Concat(
            op.Unsqueeze(op.Cast(batch_index, to=onnx.TensorProto.FLOAT), _const_i64([1])), rois, axis=1
        )
        return op.MaxRoiPool(feature, rois5, pooled_shape=[output_height, output_width], spatial_scale=scale)
    return op.RoiAlign(
        feature,
        rois,
        batch_index,
        coordinate_transformation_mode="half_pixel" if aligned else "output_half_pixel",
        mode="avg",
        output_height=output_height,
        output_width=output_width,
        sampling_ratio=max(int(sampling_ratio), 0),
        spatial_scale=float(scale),
    )


def multi_level_roi_align_portable(
    rois: FLOAT,
    features: Sequence[FLOAT],
    output_height: int,
    output_width: int,
    spatial_scales: Sequence[float],
    sampling_ratio: int,
    aligned: bool,
    mode: int,
    canonical_scale: int,
    canonical_level: int,
    eps: float,
) -> FLOAT:
    """``[N, R, 4]`` RoIs and L feature maps -> ``[N, R, C, oh, ow]`` with standard ONNX ops."""
    out_dtype = features[0].dtype
    rois32 = _to_float32(rois)
    feats32 = [_to_float32(f) for f in features]
    n = op.Shape(rois32, start=0, end=1)
    r = op.Shape(rois32, start=1, end=2)
    c = op.Shape(feats32[0], start=1, end=2)
    flat = op.Reshape(rois32, _const_i64([-1, 4]))
    image = op.Range(op.Constant(value_int=0), op.Squeeze(n, _const_i64([0])), op.Constant(value_int=1))
    batch_index = op.Reshape(
        op.Expand(op.Unsqueeze(image, _const_i64([1])), op.Concat(n, r, axis=0)), _const_i64([-1])
    )
    args = (output_height, output_width)
    if len(feats32) == 1:
        pooled = _pool(feats32[0], flat, batch_index, *args, spatial_scales[0], sampling_ratio, aligned, mode)
    else:
        level = _levels_as_float(flat, spatial_scales, canonical_scale, canonical_level, eps)
        out_shape = op.Concat(op.Mul(n, r), c, _const_i64([output_height, output_width]), axis=0)
        pooled = op.ConstantOfShape(out_shape, value=ir.tensor([0.0], dtype=ir.DataType.FLOAT))
        if PORTABLE_LEVEL_STRATEGY == "select":
            for index, (feature, scale) in enumerate(zip(feats32, spatial_scales, strict=True)):
                at_level = op.Reshape(op.Equal(level, _const_f32(index)), _const_i64([-1, 1, 1, 1]))
                candidate = _pool(feature, flat, batch_index, *args, scale, sampling_ratio, aligned, mode)
                pooled = op.Where(at_level, candidate, pooled)
        else:
            rows_per_level, pooled_per_level = [], []
            for index, (feature, scale) in enumerate(zip(feats32, spatial_scales, strict=True)):
                rows = op.Reshape(op.NonZero(op.Equal(level, _const_f32(index))), _const_i64([-1]))
                rows_per_level.append(rows)
                pooled_per_level.append(
                    _pool(
                        feature,
                        op.Gather(flat, rows, axis=0),
                        op.Gather(batch_index, rows, axis=0),
                        *args,
                        scale,
                        sampling_ratio,
                        aligned,
                        mode,
                    )
                )
            rows = op.Unsqueeze(op.Concat(*rows_per_level, axis=0), _const_i64([1]))
            pooled = op.ScatterND(pooled, rows, op.Concat(*pooled_per_level, axis=0))
    out = op.Reshape(pooled, op.Concat(n, r, c, _const_i64([output_height, output_width]), axis=0))
    if out_dtype != ir.DataType.FLOAT:
        out = op.Cast(out, to=out_dtype.value)
    return out


def batched_nms_portable(
    boxes: FLOAT,
    scores: FLOAT,
    idxs: INT64,
    iou_threshold: float,
    score_threshold: float,
    max_output: int,
    pre_nms_top_n: int,
) -> tuple[INT64, INT64]:
    """Class-aware NMS per image with ``NonMaxSuppression``, merged by score into a padded top-K.

    The candidates are first compacted with ``TopK`` to the largest per-image candidate count
    (and ``pre_nms_top_n``): the ``[N, classes, candidates]`` score layout NonMaxSuppression needs
    then stays small (1000 proposals x 90 classes would otherwise be 8 M scores). TopK orders equal
    scores by index, so compacted positions keep the original index order among ties.
    """
    boxes32 = _to_float32(boxes)
    scores32 = _to_float32(scores)
    if idxs.dtype != ir.DataType.INT64:
        idxs = op.Cast(idxs, to=onnx.TensorProto.INT64)
    neg_inf = _const_f32(-math.inf)
    zero, one = _const_f32(0.0), _const_f32(1.0)
    axis1 = _const_i64([1])
    valid = op.Greater(scores32, _const_f32(score_threshold))
    # k = max over images of the candidate count, capped by B and pre_nms_top_n; at least 1 so
    # that no tensor is empty (an all-invalid column scores -inf and is never kept).
    most = op.ReduceMax(
        op.ReduceSum(op.Cast(valid, to=onnx.TensorProto.INT64), axis1, keepdims=0), keepdims=1
    )
    k = op.Max(op.Min(most, op.Shape(scores32, start=1, end=2)), _const_i64([1]))
    if pre_nms_top_n >= 0:
        k = op.Min(k, _const_i64([max(pre_nms_top_n, 1)]))
    cand_scores, cand = op.TopK(op.Where(valid, scores32, neg_inf), k, axis=1, largest=1, sorted=1)
    if pre_nms_top_n == 0:
        cand_scores = op.Expand(neg_inf, op.Shape(cand_scores))  # nothing enters NMS
    cand_boxes = op.GatherElements(
        boxes32,
        op.Expand(op.Unsqueeze(cand, _const_i64([2])), op.Concat(op.Shape(cand), _const_i64([4]), axis=0)),
        axis=1,
    )
    cand_idxs = op.GatherElements(idxs, cand, axis=1)
    # One NMS "class" per idxs value in [min, max]: boxes of different values never interact.
    lowest = op.ReduceMin(cand_idxs, keepdims=0)
    classes = op.Range(
        lowest,
        op.Add(op.ReduceMax(cand_idxs, keepdims=0), op.Constant(value_int=1)),
        op.Constant(value_int=1),
    )
    member = op.Equal(op.Unsqueeze(cand_idxs, axis1), op.Reshape(classes, _const_i64([1, -1, 1])))
    class_scores = op.Where(member, op.Unsqueeze(cand_scores, axis1), neg_inf)
    selected = op.NonMaxSuppression(
        cand_boxes,
        class_scores,
        _const_i64([max_output]),
        op.Constant(value_floats=[float(iou_threshold)]),
        op.Constant(value_floats=[float(score_threshold)]),
        center_point_box=0,
    )
    image_and_position = op.Gather(selected, _const_i64([0, 2]), axis=1)
    ones = op.Expand(one, op.Shape(selected, start=0, end=1))
    zeros = op.ConstantOfShape(op.Shape(cand_scores), value=ir.tensor([0.0], dtype=ir.DataType.FLOAT))
    kept = op.ScatterND(zeros, image_and_position, ones)
    kept_scores = op.Where(op.Greater(kept, zero), cand_scores, neg_inf)
    top = op.Min(k, _const_i64([max_output]))
    _, order = op.TopK(kept_scores, top, axis=1, largest=1, sorted=1)
    count = op.Cast(
        op.Min(op.ReduceSum(kept, axis1, keepdims=0), _const_f32(max_output)), to=onnx.TensorProto.INT64
    )
    position = op.Range(op.Constant(value_int=0), op.Squeeze(top, _const_i64([0])), op.Constant(value_int=1))
    minus_one = op.Constant(value_int=-1)
    keep = op.Where(
        op.Less(op.Unsqueeze(position, _const_i64([0])), op.Unsqueeze(count, axis1)),
        op.GatherElements(cand, order, axis=1),
        minus_one,
    )
    pad = op.Concat(_const_i64([0, 0, 0]), op.Sub(_const_i64([max_output]), top), axis=0)
    return op.Pad(keep, pad, minus_one, mode="constant"), count


def _register_plugin_schemas() -> None:
    """Declare the plugin ops to ONNX (domain ``trt.plugins``) so onnxscript can emit them."""
    attr = onnx.defs.OpSchema.Attribute
    kind = onnx.defs.OpSchema.AttrType
    param = onnx.defs.OpSchema.FormalParameter
    variadic = onnx.defs.OpSchema.FormalParameterOption.Variadic
    onnx_kind = {AttrType.INT: kind.INT, AttrType.FLOAT: kind.FLOAT, AttrType.FLOATS: kind.FLOATS}

    def attributes(op: PluginOp) -> list:
        """The contract's attributes of ``op``, plus the string ones naming the plugin creator."""
        fixed = [attr(name, kind.STRING, "") for name in PLUGIN_NODE_ATTRIBUTES]
        return fixed + [attr(a.name, onnx_kind[a.type], "") for a in op.attributes]

    floats = ["tensor(float)", "tensor(float16)"]
    schemas = [
        onnx.defs.OpSchema(
            ROI_ALIGN.name,
            PLUGIN_DOMAIN,
            PLUGIN_OPSET,
            "Fused multi-level RoIAlign (plugins/README.md section 1).",
            # rois then the L feature maps, as one variadic input: torch's exporter hands every positional
            # argument to a variadic parameter, so a single input before it would be passed twice.
            inputs=[param("rois_and_features", "T", param_option=variadic, min_arity=2)],
            outputs=[param("pooled", "T")],
            type_constraints=[("T", floats, "")],
            attributes=attributes(ROI_ALIGN),
        ),
        onnx.defs.OpSchema(
            BATCHED_NMS.name,
            PLUGIN_DOMAIN,
            PLUGIN_OPSET,
            "Batched class-aware NMS, padded output (plugins/README.md section 2).",
            inputs=[param("boxes", "T"), param("scores", "T"), param("idxs", "I")],
            outputs=[param("keep", "tensor(int64)"), param("count", "tensor(int64)")],
            type_constraints=[("T", floats, ""), ("I", ["tensor(int64)", "tensor(int32)"], "")],
            attributes=attributes(BATCHED_NMS),
        ),
    ]
    for schema in schemas:
        if not onnx.defs.has(schema.name, schema.domain):
            onnx.defs.register_schema(schema)


_TRT = onnxscript.values.Opset(PLUGIN_DOMAIN, PLUGIN_OPSET)


def multi_level_roi_align_tensorrt(
    rois: FLOAT,
    features: Sequence[FLOAT],
    output_height: int,
    output_width: int,
    spatial_scales: Sequence[float],
    sampling_ratio: int,
    aligned: bool,
    mode: int,
    canonical_scale: int,
    canonical_level: int,
    eps: float,
) -> FLOAT:
    """One ``EdgeRCNN_MultiLevelRoIAlign`` plugin node."""
    return getattr(_TRT, ROI_ALIGN.name)(
        rois,
        *features,
        output_height=int(output_height),
        output_width=int(output_width),
        spatial_scales=[float(s) for s in spatial_scales],
        sampling_ratio=int(sampling_ratio),
        aligned=int(bool(aligned)),
        mode=int(mode),
        canonical_scale=int(canonical_scale),
        canonical_level=int(canonical_level),
        eps=float(eps),
        **PLUGIN_NODE_ATTRIBUTES,
    )


def batched_nms_tensorrt(
    boxes: FLOAT,
    scores: FLOAT,
    idxs: INT64,
    iou_threshold: float,
    score_threshold: float,
    max_output: int,
    pre_nms_top_n: int,
) -> tuple[INT64, INT64]:
    """One ``EdgeRCNN_BatchedNMS`` plugin node with two outputs."""
    keep, count = getattr(_TRT, BATCHED_NMS.name)(
        boxes,
        scores,
        idxs,
        iou_threshold=float(iou_threshold),
        score_threshold=float(score_threshold),
        max_output=int(max_output),
        pre_nms_top_n=int(pre_nms_top_n),
        **PLUGIN_NODE_ATTRIBUTES,
    )
    return keep, count


def _torch_op(op: PluginOp) -> Callable:
    """The traced overload of the contract's torch op (registered by ``edgercnn.export.ops``)."""
    namespace, name = op.torch_op.split("::")
    return getattr(getattr(torch.ops, namespace), name).default


def build_translation_table(flavour: Flavour) -> dict[Callable, Callable]:
    """``{torch op overload: ONNX translation}`` for the requested flavour."""
    roi_align, nms = _torch_op(ROI_ALIGN), _torch_op(BATCHED_NMS)
    if flavour == "portable":
        return {roi_align: multi_level_roi_align_portable, nms: batched_nms_portable}
    if flavour == "tensorrt":
        _register_plugin_schemas()
        return {roi_align: multi_level_roi_align_tensorrt, nms: batched_nms_tensorrt}
    raise OpArgumentError(f"unknown ONNX flavour {flavour!r}: expected 'portable' or 'tensorrt'")
