"""INT8 (CPU and TensorRT Q/DQ variants) and FP16 vs FP32 in onnxruntime on this CPU: AP and latency.

For each FP32 model: ``export.quantize.quantize_model`` (one calibration pass, both variants,
mixed precision if the AP budget is missed, latencies side by side), then the FP16 model's
detection parity against FP32. Writes its section of docs/benchmarks.md (between its own
markers) unless --no-write, with the command that produced it.

    python benchmarks/bench_int8_cpu.py --onnx out/ref_maskrcnn/model.onnx \
        --calib calib_data/synth --eval-images DATA/val --eval-ann DATA/annotations/val.json --eval-limit 100
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shlex
import sys
import tempfile
from pathlib import Path

from doc_sections import write_section
from edgercnn.export.quantize.fp16 import convert_to_fp16, detection_parity
from edgercnn.export.quantize.pipeline import QuantizeOptions, QuantizeReport, quantize_model
from edgercnn.runtime.calibration import iter_calibration_batches
from edgercnn.runtime.config import ModelConfig

REPO = Path(__file__).resolve().parents[1]

MARK_START = "<!-- bench_int8_cpu:start -->"
MARK_END = "<!-- bench_int8_cpu:end -->"
METRICS = ("bbox", "segm", "keypoints")


def model_rows(name: str, report: QuantizeReport, fp16: dict) -> list[str]:
    rows = []
    cpu, trt = report.variants.get("cpu"), report.variants.get("tensorrt")
    for metric in METRICS:
        if metric not in report.fp32_ap:
            continue
        cells = [name, f"{metric} AP", f"{report.fp32_ap[metric]:.1f}"]
        for result in (cpu, trt):
            if result is None or metric not in result.ap:
                cells.append("-")
            else:
                drop = report.fp32_ap[metric] - result.ap[metric]
                cells.append(f"{result.ap[metric]:.1f} (drop {drop:+.2f})")
        rows.append("| " + " | ".join(cells) + " |")
    fp32_ms = report.fp32_latency_ms or 0.0
    cells = [name, "latency ms (speed-up)", f"{fp32_ms:.0f}"]
    for result in (cpu, trt):
        if result is None or not result.latency_ms:
            cells.append("-")
        else:
            cells.append(f"{result.latency_ms:.0f} ({fp32_ms / result.latency_ms:.2f}x)")
    rows.append("| " + " | ".join(cells) + " |")
    cells = [name, "time in float ops", "100%"]
    for result in (cpu, trt):
        share = None if result is None else result.time_split.get("float_share")
        cells.append("-" if share is None else f"{100 * share:.0f}%")
    rows.append("| " + " | ".join(cells) + " |")
    cells = [name, "layers int8 / kept float (+ prediction layers)", "-"]
    for result in (cpu, trt):
        cells.append("-" if result is None else f"{result.quantized_layers} / {len(result.kept_float)}"
                     f" (+{len(report.prediction_layers)})")  # fmt: skip
    rows.append("| " + " | ".join(cells) + " |")
    rows.append(
        f"| {name} | FP16 vs FP32 detections | - | matched {fp16['matched']}/{fp16['reference_detections']}, "
        f"max box err {fp16['max_box_error_px']:.2f} px, max score err {fp16['max_score_error']:.4f} | - |"
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", type=Path, nargs="+", required=True, help="FP32 ONNX models")
    parser.add_argument("--calib", type=Path, default=REPO / "calib_data" / "synth")
    parser.add_argument("--eval-images", type=Path, required=True)
    parser.add_argument("--eval-ann", type=Path, required=True)
    parser.add_argument("--eval-limit", type=int, default=None)
    parser.add_argument("--calib-limit", type=int, default=None)
    parser.add_argument("--method", default="entropy")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=7, help="timed runs per model (round robin)")
    parser.add_argument(
        "--out", type=Path, default=None, help="keep the INT8 files here (default: temporary)"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print only, do not update docs/benchmarks.md"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    logging.getLogger("edgercnn.quantize").setLevel(logging.INFO)
    command = "python benchmarks/bench_int8_cpu.py " + " ".join(
        shlex.quote(a) for a in (argv or sys.argv[1:])
    )
    rows: list[str] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-int8-") as tmp:
        for path in args.onnx:
            name = path.parent.name if path.name == "model.onnx" else path.stem
            out = (args.out or Path(tmp)) / name
            options = QuantizeOptions(
                method=args.method, eval_images=args.eval_images, eval_ann=args.eval_ann,
                eval_limit=args.eval_limit, calib_limit=args.calib_limit, threads=args.threads,
                bench_runs=args.runs,
            )  # fmt: skip
            report = quantize_model(path, args.calib, out, options)
            config = ModelConfig.from_model_file(path)
            feeds = [{config.input.name: b} for b in iter_calibration_batches(args.calib, config, limit=8)]
            fp16_path = convert_to_fp16(path, out / "model.fp16.onnx")
            fp16 = detection_parity(path, fp16_path, feeds, args.threads)
            rows += model_rows(name, report, fp16)
            layouts = ", ".join(f"{k} {v:.0f} ms" for k, v in report.cpu_layouts_ms.items())
            notes.append(
                f"- {name}: CPU layouts measured: {layouts}; chosen `{report.variants['cpu'].layout}`"
            )
            for variant, result in report.variants.items():
                top = ", ".join(f"{op} {ms:.0f} ms" for op, ms in result.time_split.get("top_float_ops", []))
                notes.append(f"- {name} {variant}: float ops per run: {top}")
                for item in result.kept_float:
                    notes.append(f"  - kept float: `{item['node']}`: {item['why']}")
    load = os.getloadavg()[0]
    lines = [
        f"onnxruntime CPU, {args.threads} threads, {platform.machine()} ({os.cpu_count()} CPUs, load average "
        f"{load:.1f} at the end: the machine is shared, timings are medians of round-robin runs), "
        f"calibration `{args.calib}` ({args.method}), evaluation on `{args.eval_ann}` "
        f"(first {args.eval_limit or 'all'} images). AP in points.",
        "",
        f"Command: `{command}`",
        "",
        "| model | figure | FP32 | INT8 CPU variant | INT8 TensorRT variant (run on the CPU) |",
        "| --- | --- | ---: | ---: | ---: |",
        *rows,
        "",
        *notes,
        "",
    ]
    print("\n".join(lines))
    if not args.no_write:
        doc = write_section(MARK_START, MARK_END, "INT8 and FP16 in onnxruntime on the CPU", lines)
        print(f"wrote {doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
