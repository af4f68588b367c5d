"""FLOPs and memory traffic of an ONNX model, and the latency bounds they imply per Jetson Orin.

A detector's engine cannot run faster than its arithmetic at the GPU's peak rate, nor faster than
reading its weights once from DRAM. This script counts the multiply-accumulate work of Conv,
ConvTranspose, Gemm and MatMul nodes (2 FLOPs per MAC, as ``torch.utils.flop_counter`` counts)
from the ONNX graph after shape inference, the weight bytes, and the activation bytes those nodes
read and write, then prints the roofline bounds for each Orin module (docs/jetson.md lists the
spec figures and where they come from). Use the portable ONNX (plugin nodes have no shapes).

    python -m edgercnn.export.roofline model.onnx [--batch 1]
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Module -> (FP16 tensor-core dense TFLOPS, INT8 tensor-core dense TOPS, FP32 CUDA-core TFLOPS, DRAM GB/s).
# Tensor-core rates: NVIDIA's published sparse-INT8 GPU TOPS / 2 (dense) and / 4 (FP16), which equals
# SMs x GPU clock x 2048 FLOP/clock; FP32: CUDA cores x 2 x GPU clock. Sources in docs/jetson.md.
ORIN_SPECS: dict[str, tuple[float, float, float, float]] = {
    "AGX Orin 64GB (MAXN)": (42.5, 85.0, 5.32, 204.8),
    "Orin NX 16GB (MAXN)": (15.0, 30.0, 1.88, 102.4),
    "Orin Nano 8GB (15 W)": (10.0, 20.0, 1.28, 68.0),
    "Orin Nano 8GB Super (MAXN SUPER)": (16.7, 33.4, 2.09, 102.0),
}
_DTYPE_BYTES = {1: 4, 2: 1, 3: 1, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 16: 2}  # onnx TensorProto types


@dataclass
class FlopReport:
    """Per op type: FLOPs; plus weight bytes and the activation bytes of the counted nodes."""

    flops_by_op: dict[str, int] = field(default_factory=dict)
    weight_bytes: int = 0
    activation_bytes: int = 0
    uncounted: dict[str, int] = field(default_factory=dict)  # nodes whose shapes were unknown

    @property
    def flops(self) -> int:
        return sum(self.flops_by_op.values())

    def add(self, op: str, flops: int) -> None:
        self.flops_by_op[op] = self.flops_by_op.get(op, 0) + flops


def _shapes(model: Any, batch: int) -> tuple[dict[str, list[int]], dict[str, int]]:
    shapes: dict[str, list[int]] = {}
    types: dict[str, int] = {}
    graph = model.graph
    for value in [*graph.input, *graph.output, *graph.value_info]:
        tensor = value.type.tensor_type
        if not tensor.HasField("shape"):
            continue
        dims = [
            d.dim_value if d.HasField("dim_value") else (batch if i == 0 else -1)
            for i, d in enumerate(tensor.shape.dim)
        ]
        shapes[value.name] = dims
        types[value.name] = tensor.elem_type
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
        types[init.name] = init.data_type
    return shapes, types


def _attr(node: Any, name: str, default: Any) -> Any:
    for a in node.attribute:
        if a.name == name:
            import onnx

            return onnx.helper.get_attribute_value(a)
    return default


def count_flops(model_path: str | Path, batch: int = 1) -> FlopReport:
    """Count the MAC-class FLOPs of an ONNX model (dynamic batch axes taken as ``batch``)."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(model_path)))
    shapes, types = _shapes(model, batch)
    report = FlopReport()
    report.weight_bytes = sum(
        math.prod(init.dims) * _DTYPE_BYTES.get(init.data_type, 4) for init in model.graph.initializer
    )

    def known(name: str) -> bool:
        return name in shapes and all(d > 0 for d in shapes[name])

    def nbytes(name: str) -> int:
        return math.prod(shapes[name]) * _DTYPE_BYTES.get(types.get(name, 1), 4)

    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            continue
        names = [*node.input[:2], node.output[0]]
        if not all(known(n) for n in names):
            report.uncounted[node.op_type] = report.uncounted.get(node.op_type, 0) + 1
            continue
        x, w, y = (shapes[n] for n in names)
        if node.op_type == "Conv":
            flops = 2 * math.prod(y) * math.prod(w[1:])
        elif node.op_type == "ConvTranspose":
            flops = 2 * x[0] * math.prod(x[2:]) * math.prod(w)
        elif node.op_type == "Gemm":
            k = x[0] if _attr(node, "transA", 0) else x[1]
            flops = 2 * math.prod(y) * k
        else:  # MatMul: output [..., M, N], K = last axis of A
            flops = 2 * math.prod(y) * x[-1]
        report.add(node.op_type, flops)
        report.activation_bytes += nbytes(names[0]) + nbytes(names[2])
    return report


def latency_bounds(report: FlopReport, precision: str) -> dict[str, tuple[float, float]]:
    """Per module: (compute-bound ms, weight-read-bound ms) at ``precision`` (fp32 | fp16 | int8)."""
    scale = {"fp32": 1.0, "fp16": 0.5, "int8": 0.25}[precision]
    out: dict[str, tuple[float, float]] = {}
    for name, (fp16, int8, fp32, bandwidth) in ORIN_SPECS.items():
        peak = {"fp32": fp32, "fp16": fp16, "int8": int8}[precision] * 1e12
        compute_ms = report.flops / peak * 1e3
        weights_ms = report.weight_bytes * scale / (bandwidth * 1e9) * 1e3
        out[name] = (compute_ms, weights_ms)
    return out


def format_report(path: Path, report: FlopReport) -> str:
    lines = [
        f"{path}: {report.flops / 1e9:.2f} GFLOPs ("
        + ", ".join(f"{op} {v / 1e9:.2f}" for op, v in sorted(report.flops_by_op.items()))
        + f"), weights {report.weight_bytes / 1e6:.1f} MB (fp32), conv/gemm activations "
        f"{report.activation_bytes / 1e6:.1f} MB (fp32, read + written once)",
    ]
    if report.uncounted:
        lines.append(f"  not counted (unknown shapes): {report.uncounted}")
    lines.append(
        "| module | precision | compute bound (ms) | weight-read bound (ms) | activation traffic (ms) |"
    )
    lines.append("| --- | --- | ---: | ---: | ---: |")
    for precision in ("fp32", "fp16", "int8"):
        scale = {"fp32": 1.0, "fp16": 0.5, "int8": 0.25}[precision]
        for name, (compute, weights) in latency_bounds(report, precision).items():
            act = report.activation_bytes * scale / (ORIN_SPECS[name][3] * 1e9) * 1e3
            lines.append(f"| {name} | {precision} | {compute:.2f} | {weights:.2f} | {act:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edgercnn.export.roofline", description=__doc__.splitlines()[0]
    )
    parser.add_argument("onnx", type=Path, nargs="+")
    parser.add_argument("--batch", type=int, default=1, help="batch for dynamic-batch graphs (default 1)")
    args = parser.parse_args(argv)
    for path in args.onnx:
        print(format_report(path, count_flops(path, args.batch)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
