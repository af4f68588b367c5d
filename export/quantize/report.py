"""What an INT8 run asks for and what it measured: the options and report types the quantize modules
share, and the report as markdown (FP32 vs each variant, latency, time in float, float layers).

The types live here, below the pipeline and the sensitivity search that both use them, so that
neither has to import the other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgercnn.export.quantize.trtcache import DEFAULT_TRT_VERSION
from edgercnn.runtime.validators import check_non_negative_float, check_non_negative_int, check_positive_int

VARIANTS = ("cpu", "tensorrt")
CPU_LAYOUTS = ("u8s8", "s8s8")


@dataclass
class QuantizeOptions:
    """Everything ``edgercnn quantize`` and ``export.py --precision int8`` can ask for."""

    method: str = "entropy"  # entropy | minmax | percentile
    variants: tuple[str, ...] = VARIANTS
    cpu_layout: str = "auto"  # auto (measure both) | u8s8 | s8s8
    max_ap_drop: float = 0.5  # box and mask AP points
    max_keypoint_ap_drop: float = 1.0
    eval_images: Path | None = None
    eval_ann: Path | None = None
    eval_limit: int | None = None
    calib_limit: int | None = None
    per_channel: bool = True
    keep_float: tuple[str, ...] = ()  # node names the user keeps in float from the start
    sensitivity_images: int = 4
    threads: int = 2
    bench_runs: int = 5
    trt_version: int = DEFAULT_TRT_VERSION
    progress: bool = True

    def __post_init__(self) -> None:
        """The API refuses what the command line refuses, with the same words."""
        check_non_negative_float(self.max_ap_drop, "max_ap_drop")
        check_non_negative_float(self.max_keypoint_ap_drop, "max_keypoint_ap_drop")
        for name in ("eval_limit", "calib_limit"):
            if getattr(self, name) is not None:
                check_positive_int(getattr(self, name), name)
        check_positive_int(self.threads, "threads")
        check_positive_int(self.bench_runs, "bench_runs")
        check_non_negative_int(self.sensitivity_images, "sensitivity_images")


@dataclass
class VariantResult:
    """One INT8 variant: where it is, how it was made, how accurate and how fast it is."""

    variant: str
    path: Path
    layout: str
    ap: dict[str, float] = field(default_factory=dict)
    latency_ms: float | None = None
    time_split: dict[str, Any] = field(default_factory=dict)
    quantized_layers: int = 0
    kept_float: list[dict[str, Any]] = field(default_factory=list)
    within_budget: bool | None = None
    search: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["path"] = str(self.path)
        return out


@dataclass
class QuantizeReport:
    """What ``quantize_model`` produced and measured; written as JSON and markdown."""

    fp32_path: Path
    calib_dir: Path
    method: str
    calibration_images: int
    fp32_ap: dict[str, float] = field(default_factory=dict)
    fp32_latency_ms: float | None = None
    variants: dict[str, VariantResult] = field(default_factory=dict)
    cpu_layouts_ms: dict[str, float] = field(default_factory=dict)
    prediction_layers: list[str] = field(default_factory=list)
    calibration_cache: Path | None = None
    cache_tensors: int = 0
    ranges_path: Path | None = None
    eval_set: str | None = None
    threads: int = 2

    def to_dict(self) -> dict[str, Any]:
        return {
            "fp32": {"path": str(self.fp32_path), "ap": self.fp32_ap, "latency_ms": self.fp32_latency_ms},
            "calibration": {
                "dir": str(self.calib_dir),
                "method": self.method,
                "images": self.calibration_images,
                "ranges": str(self.ranges_path) if self.ranges_path else None,
                "tensorrt_cache": str(self.calibration_cache) if self.calibration_cache else None,
                "tensorrt_cache_tensors": self.cache_tensors,
            },
            "eval_set": self.eval_set,
            "threads": self.threads,
            "cpu_layouts_ms": self.cpu_layouts_ms,
            "prediction_layers_float": self.prediction_layers,
            "variants": {name: result.to_dict() for name, result in self.variants.items()},
        }

    def to_markdown(self) -> str:
        return report_markdown(self)

    def write(self, out_dir: Path, stem: str) -> tuple[Path, Path]:
        json_path = out_dir / f"{stem}.int8.report.json"
        md_path = out_dir / f"{stem}.int8.report.md"
        json_path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        md_path.write_text(self.to_markdown())
        return json_path, md_path


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
