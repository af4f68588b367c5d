"""FP32 ONNX -> INT8 Q/DQ ONNX (a CPU and a TensorRT variant), TensorRT calibration cache, report.

One calibration pass over ``calib_data`` (through the runtime's own ``prepare_batch``) gives the
ranges every artefact uses:

* ``<stem>.int8.trt.onnx``: symmetric int8 activations and weights (zero point 0, as TensorRT
  requires), Q/DQ only on the inputs and weights of conv/gemm layers, float bias: the placement
  TensorRT fuses. Also what TensorRT 11 (no calibrator, strongly typed) builds from.
* ``<stem>.int8.cpu.onnx``: the layout onnxruntime's CPU kernels run fastest, chosen by measuring
  U8S8 (uint8 activations, int8 weights) against S8S8 on the model itself.
* ``<stem>.calib.cache``: TensorRT 10's implicit-INT8 calibration cache.

Prediction layers and everything after them (box decoding, NMS, RoIAlign, TopK) stay float
(``export/quantize/qdq.py``). When an evaluation set is given, layers are kept in float by
measured sensitivity until the AP drop fits the budget (``export/quantize/sensitivity.py``).
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx
from edgercnn.export.quantize.measure import compare_latency, time_split
from edgercnn.export.quantize.qdq import CPU_REGION_OPS, WEIGHT_OPS, LayerPlan, plan_layers
from edgercnn.export.quantize.ranges import QuantizeError, compute_ranges, tensor_amax
from edgercnn.export.quantize.report import (
    CPU_LAYOUTS,
    VARIANTS,
    QuantizeOptions,
    QuantizeReport,
    VariantResult,
)
from edgercnn.export.quantize.trtcache import graph_tensor_names, write_calibration_cache
from edgercnn.runtime.contract import CONFIG_KEY
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

log = logging.getLogger("edgercnn.quantize")

__all__ = ["QuantizeError", "QuantizeOptions", "QuantizeReport", "VariantResult", "quantize_model"]


# ----------------------------------------------------------------------------- graph preparation


def model_stem(path: Path) -> str:
    name = path.name
    return name[: -len(".onnx")] if name.endswith(".onnx") else path.stem


def prepare_for_quantization(fp32_path: Path, out_path: Path) -> Path:
    """ONNX shape inference and onnxruntime's basic graph optimizations (folds FrozenBatchNorm into conv).

    Without the fold every conv would be followed by a float Mul and Add that keep the tensors
    out of int8. Symbolic shape inference is skipped: the deploy graph has static shapes, and it
    takes seconds even on tiny graphs and gives up on R-CNN graphs anyway.
    """
    model = onnx.load(str(fp32_path), load_external_data=False)
    # onnxruntime's optimizer cannot load a graph with TensorRT plugin nodes; the exporter has
    # already folded batch norms, so the TensorRT-flavour file only gets shape inference.
    has_plugins = any(node.domain not in ("", "ai.onnx") for node in model.graph.node)
    quant_pre_process(str(fp32_path), str(out_path), skip_symbolic_shape=True, skip_optimization=has_plugins)
    return out_path


def copy_metadata(source: Path, target: Path, precision: str, extra: dict[str, Any] | None = None) -> None:
    """Carry ``edgercnn.config`` over to a derived model, with its precision updated."""
    src = onnx.load(str(source), load_external_data=False)
    model = onnx.load(str(target))
    props = {p.key: p.value for p in src.metadata_props}
    if CONFIG_KEY in props:
        config = json.loads(props[CONFIG_KEY])
        config["precision"] = precision
        if extra:
            config.update(extra)
        props[CONFIG_KEY] = json.dumps(config)
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(target))


def quantize_variant(
    prepared: Path,
    out_path: Path,
    variant: str,
    layout: str,
    nodes: list[str],
    ranges_cache: Path,
    method: str,
    per_channel: bool = True,
) -> Path:
    """Write one Q/DQ model from the shared ranges (no calibration pass happens here)."""
    from edgercnn.export.quantize.ranges import calibration_method

    if not nodes:
        raise QuantizeError(f"{prepared}: no layer left to quantize for the {variant} variant")
    extra: dict[str, Any] = {"QDQOpTypePerChannelSupportToAxis": {"MatMul": 1}}
    if variant == "tensorrt":
        activation = QuantType.QInt8
        extra.update(
            {
                "ActivationSymmetric": True,
                "WeightSymmetric": True,
                "OpTypesToExcludeOutputQuantization": list(WEIGHT_OPS),
                "QuantizeBias": False,  # TensorRT takes the bias in float and folds it itself
            }
        )
    else:
        activation = QuantType.QUInt8 if layout == "u8s8" else QuantType.QInt8
        extra.update({"WeightSymmetric": True})
    quantize_static(
        str(prepared),
        str(out_path),
        calibration_data_reader=None,
        quant_format=QuantFormat.QDQ,
        nodes_to_quantize=nodes,
        op_types_to_quantize=sorted({*WEIGHT_OPS, "Relu", "Clip", "Add", "MaxPool", "Resize"}),
        per_channel=per_channel,
        activation_type=activation,
        weight_type=QuantType.QInt8,
        calibrate_method=calibration_method(method),
        calibration_cache_path=str(ranges_cache),
        extra_options=extra,
    )
    return out_path


# ----------------------------------------------------------------------------- the whole job


def _check_inputs(fp32_onnx: Path, calib_dir: Path, options: QuantizeOptions) -> None:
    from edgercnn.export.quantize.ranges import METHODS

    if not fp32_onnx.is_file():
        raise QuantizeError(f"{fp32_onnx}: FP32 ONNX model not found")
    if not calib_dir.is_dir():
        raise QuantizeError(
            f"{calib_dir}: calibration folder not found (build one with 'edgercnn calibrate')"
        )
    if options.method not in METHODS:
        raise QuantizeError(
            f"unknown calibration method {options.method!r}; choose one of {', '.join(METHODS)}"
        )
    unknown = [v for v in options.variants if v not in VARIANTS]
    if unknown or not options.variants:
        raise QuantizeError(
            f"unknown variant(s) {unknown or options.variants}; choose from {', '.join(VARIANTS)}"
        )
    if options.cpu_layout not in ("auto", *CPU_LAYOUTS):
        raise QuantizeError(f"unknown CPU layout {options.cpu_layout!r}; choose auto, u8s8 or s8s8")
    if (options.eval_images is None) != (options.eval_ann is None):
        raise QuantizeError("--eval-images and --eval-ann go together")
    if options.eval_ann is not None and not Path(options.eval_ann).is_file():
        raise QuantizeError(f"{options.eval_ann}: annotation file not found")
    if options.eval_images is not None and not Path(options.eval_images).is_dir():
        raise QuantizeError(f"{options.eval_images}: image folder not found")


def _calibration_feeds(fp32_onnx: Path, calib_dir: Path, limit: int | None) -> list[dict[str, Any]]:
    from edgercnn.runtime.calibration import iter_calibration_batches
    from edgercnn.runtime.config import ModelConfig

    config = ModelConfig.from_model_file(fp32_onnx)
    return [{config.input.name: batch} for batch in iter_calibration_batches(calib_dir, config, limit)]


def ap_evaluator(options: QuantizeOptions) -> Callable[[Path], dict[str, float]] | None:
    """A function model path -> COCO AP (points) on the evaluation set, or None without one."""
    images, ann = options.eval_images, options.eval_ann
    if images is None or ann is None:
        return None
    from edgercnn.runtime.evaluate import evaluate_model

    def evaluate(path: Path) -> dict[str, float]:
        return evaluate_model(
            path,
            images,
            ann,
            limit=options.eval_limit,
            threads=options.threads,
            progress=options.progress,
        ).ap

    return evaluate


def within_budget(fp32_ap: dict[str, float], ap: dict[str, float], options: QuantizeOptions) -> bool:
    for metric in fp32_ap:
        budget = options.max_keypoint_ap_drop if metric == "keypoints" else options.max_ap_drop
        if fp32_ap[metric] - ap.get(metric, 0.0) > budget + 1e-9:
            return False
    return True


def _build(
    prepared: Path,
    fp32_path: Path,
    plan: LayerPlan,
    ranges_path: Path,
    options: QuantizeOptions,
    variant: str,
    layout: str,
    keep: set[str],
    path: Path,
) -> Path:
    """One variant with ``keep`` in float, written to ``path`` with the model's metadata."""
    quantize_variant(
        prepared, path, variant, layout, plan.nodes_for(variant, keep), ranges_path, options.method,
        options.per_channel,
    )  # fmt: skip
    copy_metadata(fp32_path, path, "int8-qdq")
    return path


def quantize_model(
    fp32_onnx: str | Path, calib_dir: str | Path, out_dir: str | Path, options: QuantizeOptions | None = None
) -> QuantizeReport:
    """The INT8 job end to end; see the module docstring. Returns the report (also written to disk)."""
    from edgercnn.export.quantize.sensitivity import keep_float_until_within_budget

    options = options or QuantizeOptions()
    fp32_path, calib_path, out = Path(fp32_onnx), Path(calib_dir), Path(out_dir)
    _check_inputs(fp32_path, calib_path, options)
    out.mkdir(parents=True, exist_ok=True)
    stem = model_stem(fp32_path)
    feeds = _calibration_feeds(fp32_path, calib_path, options.calib_limit)
    report = QuantizeReport(fp32_path, calib_path, options.method, len(feeds), threads=options.threads)
    evaluate = ap_evaluator(options)
    if evaluate is not None:
        report.eval_set = f"{options.eval_ann} ({options.eval_limit or 'all'} images)"

    with tempfile.TemporaryDirectory(prefix="edgercnn-quant-") as tmp_name:
        tmp = Path(tmp_name)
        prepared = prepare_for_quantization(fp32_path, tmp / "prepared.onnx")
        plan: LayerPlan = plan_layers(onnx.load(str(prepared)))
        onnx_model = onnx.load(str(prepared))
        from edgercnn.export.quantize.qdq import name_nodes

        if name_nodes(onnx_model):
            onnx.save(onnx_model, str(prepared))
        report.prediction_layers = plan.prediction_layers
        if not plan.feature_layers:
            raise QuantizeError(f"{fp32_path}: no conv/gemm layer with constant weights to quantize")

        ranges_path = out / f"{stem}.ranges.{options.method}.json"
        log.info("calibrating %d images with %s", len(feeds), options.method)
        ranges = compute_ranges(
            prepared,
            feeds,
            options.method,
            (*WEIGHT_OPS, *CPU_REGION_OPS),
            ranges_path,
            threads=options.threads,
        )
        report.ranges_path = ranges_path

        # TensorRT 10 implicit INT8: the cache names tensors of the FP32 ONNX the engine is built from,
        # and only those of the int8 region (a tensor without a range keeps its layer in float).
        fp32_names = graph_tensor_names(onnx.load(str(fp32_path), load_external_data=False))
        wanted = plan.region_tensors(onnx_model) & fp32_names
        amax = {name: value for name, value in tensor_amax(ranges).items() if name in wanted}
        cache_path = out / f"{stem}.calib.cache"
        write_calibration_cache(amax, cache_path, options.method, options.trt_version)
        report.calibration_cache, report.cache_tensors = cache_path, len(amax)

        feed = feeds[0]
        if evaluate is not None:
            report.fp32_ap = evaluate(fp32_path)

        user_float = set(options.keep_float)
        for variant in options.variants:
            layout = "s8s8-symmetric" if variant == "tensorrt" else options.cpu_layout
            suffix = "trt" if variant == "tensorrt" else "cpu"
            target = out / f"{stem}.int8.{suffix}.onnx"

            if variant == "cpu" and layout == "auto":
                candidates: dict[str, str | Path] = {}
                for candidate in CPU_LAYOUTS:
                    path = tmp / f"cpu_{candidate}.onnx"
                    _build(
                        prepared, fp32_path, plan, ranges_path, options, variant, candidate, user_float, path
                    )
                    candidates[candidate] = path
                report.cpu_layouts_ms = compare_latency(candidates, feed, options.threads, options.bench_runs)
                layout = min(report.cpu_layouts_ms, key=lambda k: report.cpu_layouts_ms[k])
                shutil.copyfile(tmp / f"cpu_{layout}.onnx", target)
            else:
                _build(prepared, fp32_path, plan, ranges_path, options, variant, layout, user_float, target)
            build = functools.partial(
                _build, prepared, fp32_path, plan, ranges_path, options, variant, layout
            )
            result = VariantResult(variant, target, layout)
            result.kept_float = [{"node": n, "why": "kept float by the user"} for n in sorted(user_float)]
            if variant == "cpu":
                result.kept_float += [
                    {"node": n, "why": f"{plan.op_types[n]}: onnxruntime's CPU EP has no int8 kernel for it"}
                    for n in plan.cpu_float_layers
                    if n not in user_float
                ]
            if evaluate is not None:
                result.ap = evaluate(target)
                result.within_budget = within_budget(report.fp32_ap, result.ap, options)
                if not result.within_budget:
                    keep_float_until_within_budget(
                        result, report.fp32_ap, plan, build, evaluate,
                        lambda ap: within_budget(report.fp32_ap, ap, options),
                        prepared, feeds[: options.sensitivity_images], options, tmp, user_float,
                    )  # fmt: skip
            kept = {item["node"] for item in result.kept_float}
            result.quantized_layers = len(set(plan.nodes_for(variant, kept)) & set(plan.feature_layers))
            result.time_split = time_split(target, feed, options.threads).to_dict()
            report.variants[variant] = result
        # Side by side at the end: FP32 and every variant timed in turn under the same load.
        models: dict[str, str | Path] = {"fp32": fp32_path}
        models.update({name: result.path for name, result in report.variants.items()})
        latency = compare_latency(models, feed, options.threads, options.bench_runs)
        report.fp32_latency_ms = latency["fp32"]
        for name, result in report.variants.items():
            result.latency_ms = latency[name]
    report.write(out, stem)
    return report
