"""``edgercnn <command>``: one command, a verb per module, each imported only when asked for.

The dispatcher stays import-light on purpose: ``edgercnn run`` on a camera must not pull in torch
or the exporter. Device-side verbs live in ``edgercnn.runtime.commands`` (so ``python -m runtime``
works with the runtime folder alone); build-host verbs live beside this file. Errors are caught
once, in ``edgercnn.runtime.commands.run_verb``.
"""

from __future__ import annotations

from collections.abc import Sequence

from edgercnn.runtime.commands import Verb, dispatch

_HOST = "pip install 'edgercnn[export]'"
_TRITON = "pip install 'edgercnn[triton]'"
_DEVICE = "edgercnn.runtime.commands."
_CLI = "edgercnn.cli."

VERBS: dict[str, Verb] = {
    "export": Verb(_CLI + "export", "checkpoint -> ONNX files (and engines where TensorRT exists)", _HOST),
    "build": Verb(_DEVICE + "build", "ONNX -> TensorRT engine with a sidecar"),
    "parity": Verb(_CLI + "parity", "detection-level parity: eager vs deploy graph vs ONNX", _HOST),
    "quantize": Verb(_CLI + "quantize", "FP32 ONNX -> INT8 Q/DQ ONNX, calibration cache, report", _HOST),
    "calibrate": Verb(_DEVICE + "calibrate", "build a calibration set from images or videos"),
    "run": Verb(_DEVICE + "run", "run a model on images, videos, cameras or streams"),
    "bench": Verb(_CLI + "bench", "latency and throughput, models side by side"),
    "eval": Verb(_DEVICE + "eval", "COCO AP of a model file on a COCO-format set"),
    "triton": Verb(_CLI + "triton", "write a Triton Inference Server model repository", _TRITON),
    "demo": Verb(_CLI + "demo", "export the bundled model, run it on the sample video", _HOST),
    "synth": Verb(_CLI + "synth", "generate the procedural surveillance data set", _HOST),
    "train": Verb(_CLI + "train", "train a small reference model on the synthetic set", _HOST),
}


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch("edgercnn", VERBS, argv)
