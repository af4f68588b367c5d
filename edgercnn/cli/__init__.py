"""One command, many subcommands, each imported only when asked for.

The dispatcher stays import-light on purpose: ``edgercnn run`` on a camera must not pull in
torch or ``export/``, so each subcommand's module is imported lazily by name.
"""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module, function, one-line help). Modules under export/ need the
# ``export`` extra (torch); modules under runtime/ need only the base install.
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "export": ("edgercnn.export.cli", "main", "checkpoint -> ONNX files (and engines where TensorRT exists)"),
    "build": ("edgercnn.runtime.commands.build", "main", "ONNX -> TensorRT engine with a sidecar"),
    "parity": ("edgercnn.export.parity", "main", "detection-level parity: eager vs deploy graph vs ONNX"),
    "quantize": ("edgercnn.cli.quantize", "main", "FP32 ONNX -> INT8 Q/DQ ONNX, calibration cache, report"),
    "calibrate": ("edgercnn.runtime.calibration", "main", "build a calibration set from images or videos"),
    "run": ("edgercnn.runtime.commands.run", "main", "run a model on images, videos, cameras or streams"),
    "bench": ("edgercnn.runtime.commands.bench", "main", "latency and throughput, models side by side"),
    "eval": ("edgercnn.runtime.evaluate", "main", "COCO AP of a model file on a COCO-format set"),
    "demo": ("edgercnn.export.refmodels.demo", "main", "export the bundled model, run it on the sample video"),
    "synth": ("edgercnn.export.refmodels.synthdata.cli", "main", "generate the procedural surveillance data set"),
    "train": ("edgercnn.export.refmodels.training", "main", "train a small reference model on the synthetic set"),
}


def _usage() -> str:
    lines = ["usage: edgercnn <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, _, help_) in SUBCOMMANDS.items()]
    lines += ["", "Run 'edgercnn <command> --help' for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"edgercnn: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, func_name, _ = SUBCOMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or "a module"
        hint = "pip install '.[export]'" if module_name.startswith(("edgercnn.export", "edgercnn.cli")) else "pip install ."
        print(f"edgercnn {name}: needs {missing!r}, which is not installed ({hint})", file=sys.stderr)
        return 2
    result = getattr(module, func_name)(rest)
    return int(result or 0)
