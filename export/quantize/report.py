"""The INT8 accuracy report as markdown: FP32 vs each variant, latency, time in float, float layers."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgercnn.export.quantize.pipeline import QuantizeReport

METRICS = ("bbox", "segm", "keypoints")


def _ap(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def report_markdown(report: QuantizeReport) -> str:
    lines = [
        f"# INT8 report: {report.fp32_path.name}",
        "",
        f"- calibration: {report.calibration_images} images from `{report.calib_dir}`, "
        f"method `{report.method}`",
        f"- TensorRT 10 calibration cache: `{report.calibration_cache}` ({report.cache_tensors} tensors)",
        f"- evaluation set: {report.eval_set or 'none given (AP not measured)'}",
        f"- latency: onnxruntime CPU, {report.threads} threads, median end to end",
        "",
    ]
    metrics = [m for m in METRICS if m in report.fp32_ap]
    columns = ["model", "layout", *(f"{m} AP" for m in metrics)]
    columns += ["latency ms", "speed-up", "time in float", "layers int8 / float"]
    header = "| " + " | ".join(columns) + " |"
    lines += [header, "|" + " --- |" * (header.count("|") - 1)]
    fp32_ms = report.fp32_latency_ms or 0.0
    row = [
        "FP32",
        "-",
        *(_ap(report.fp32_ap.get(m)) for m in metrics),
        f"{fp32_ms:.2f}",
        "1.00x",
        "100%",
        "-",
    ]
    lines.append("| " + " | ".join(row) + " |")
    for name, result in report.variants.items():
        aps = []
        for metric in metrics:
            value = result.ap.get(metric)
            drop = None if value is None else report.fp32_ap[metric] - value
            aps.append(f"{_ap(value)} ({-drop:+.1f})" if drop is not None else "-")
        ms = result.latency_ms or 0.0
        speed = f"{fp32_ms / ms:.2f}x" if ms > 0 else "-"
        share = result.time_split.get("float_share")
        float_text = "-" if share is None else f"{100 * float(share):.0f}%"
        row = [f"INT8 {name}", result.layout, *aps, f"{ms:.2f}", speed, float_text]
        row.append(f"{result.quantized_layers} / {len(result.kept_float) + len(report.prediction_layers)}")
        lines.append("| " + " | ".join(row) + " |")
    if report.cpu_layouts_ms:
        lines += [
            "",
            "CPU layouts measured (ms): "
            + ", ".join(f"{k} {v:.1f}" for k, v in report.cpu_layouts_ms.items()),
        ]
    lines += ["", "## Layers kept in float", ""]
    lines.append(
        f"- prediction layers (always float: their outputs feed box decoding, scores, NMS, masks or "
        f"keypoints directly): {', '.join(f'`{n}`' for n in report.prediction_layers) or 'none'}"
    )
    for name, result in report.variants.items():
        if result.kept_float:
            lines.append(f"- {name}:")
            lines += [f"  - `{item['node']}`: {item['why']}" for item in result.kept_float]
        if result.search:
            steps = "; ".join(f"{s['kept_float']} float -> {s['ap']}" for s in result.search)
            lines.append(f"  - search ({name}): {steps}")
        if result.within_budget is False:
            lines.append(f"  - {name}: the AP budget was NOT met even with every ranked layer in float")
    lines += ["", "## Where the INT8 time goes (onnxruntime profiler, ms per run)", ""]
    for name, result in report.variants.items():
        split = result.time_split
        if split:
            top = ", ".join(f"{op} {ms}" for op, ms in split.get("top_float_ops", []))
            lines.append(
                f"- {name}: int8 kernels {split['int8_ms']}, Q/DQ {split['qdq_ms']}, "
                f"float {split['float_ms']} (top float ops: {top})"
            )
    return "\n".join(lines) + "\n"
