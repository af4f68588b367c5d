"""Engine parity on the target: the engine's detections vs onnxruntime's on the same images.

Raw tensors are the wrong thing to compare (padded rows are garbage by design), so both models run
through the runtime's own ``Detector`` and ``runtime.matching.ParityTally`` matches detections.
Reduced precision moves boxes and scores a little, so what counts as "the same detection" widens
with the engine's precision (``parity_tolerances``); the report prints the measured errors either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...files import IMAGE_SUFFIXES
from ...matching import ParityTally
from .plan import EngineBuildError

# precision -> (IoU for a reproduced box, score tolerance, share of reference detections to reproduce)
_TOLERANCES = {"fp32": (0.99, 1e-3, 0.99), "fp16": (0.95, 2e-2, 0.97), "int8": (0.85, 8e-2, 0.90)}


def parity_tolerances(precision: str) -> tuple[float, float, float]:
    """(strict IoU, score tolerance, required share) for an engine of ``precision``."""
    try:
        return _TOLERANCES[precision]
    except KeyError:
        raise EngineBuildError(f"no parity tolerances for precision {precision!r}") from None


@dataclass
class EngineParityReport:
    precision: str
    summary: dict[str, Any]
    required_share: float

    @property
    def passed(self) -> bool:
        return float(self.summary["matched_share"]) >= self.required_share

    def text(self) -> str:
        s = self.summary
        verdict = "PASS" if self.passed else "FAIL"
        lines = [
            f"parity engine ({self.precision}) vs onnxruntime on {s['images']} images: "
            f"{s['matched_strict']}/{s['reference_detections']} reproduced "
            f"(IoU >= {s['strict_iou']}, |score err| <= {s['score_tolerance']}), "
            f"share {s['matched_share']:.4f} (need {self.required_share}) -> {verdict}",
            f"  max box error {s['max_box_error_px']:.3f} px, max score error {s['max_score_error']:.4f}",
        ]
        if "mean_mask_iou" in s:
            lines.append(f"  mask IoU mean {s['mean_mask_iou']:.4f}, min {s['min_mask_iou']:.4f}")
        if "max_keypoint_error_px" in s:
            lines.append(f"  max keypoint error {s['max_keypoint_error_px']:.3f} px")
        return "\n".join(lines)


def check_engine_parity(
    engine_path: Path | None, onnx_path: Path, images: Path, plugin_lib: Path | None = None, limit: int = 50
) -> EngineParityReport:
    """Run both models on up to ``limit`` images of the folder ``images`` and compare detections."""
    from ...calibration import read_image_bgr
    from ...config import ModelConfig
    from ...detector import Detector
    from ..base import open_backend
    from .sidecar import read_sidecar

    if engine_path is None:
        raise EngineBuildError("parity needs a built engine")
    paths = sorted(p for p in Path(images).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise EngineBuildError(f"{images}: no images to check parity on")
    precision = read_sidecar(engine_path).engine.precision
    strict_iou, score_tol, share = parity_tolerances(precision)
    engine_config = ModelConfig.from_model_file(engine_path)
    backend = open_backend(engine_path, "tensorrt", config=engine_config, plugin_lib=plugin_lib)
    candidate = Detector(engine_config, backend)
    reference = Detector.open(onnx_path, backend="onnxruntime")
    tally = ParityTally(strict_iou=strict_iou, score_tolerance=score_tol)
    try:
        for path in paths[:limit]:
            image = read_image_bgr(path)
            ref = reference.detect([image])[0]
            cand = candidate.detect([image])[0]
            tally.add(ref, cand)
    finally:
        candidate.close()
        reference.close()
    return EngineParityReport(precision, tally.summary(), share)
