"""``python -m runtime <verb>`` on a camera with the runtime folder alone (or ``python -m edgercnn.runtime``).

The device-side verbs without the rest of the package: run, bench, eval, calibrate, build.
"""

from __future__ import annotations

import sys

from .commands import Verb, dispatch

VERBS = {
    "run": Verb(".commands.run", "run a model on images, videos, cameras or streams"),
    "bench": Verb(".commands.bench", "latency and throughput, models side by side"),
    "eval": Verb(".commands.eval", "COCO AP of a model file on a COCO-format set"),
    "calibrate": Verb(".commands.calibrate", "build a calibration set from images or videos"),
    "build": Verb(".commands.build", "ONNX -> TensorRT engine with a sidecar"),
}

if __name__ == "__main__":
    sys.exit(dispatch(f"python -m {__package__}", VERBS, package=__package__))
