"""Shared by the Triton tests: the bundled Mask R-CNN exported once, with a dynamic batch axis."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.paths import REPO_ROOT

SOURCE_HW = (288, 384)  # the sample video's frames


def export_reference(name: str, folder: Path, batch: int | str = "dynamic") -> Path:
    from edgercnn.export import metadata
    from edgercnn.export.deploy import DeployOptions, DeployRCNN
    from edgercnn.export.onnx_export import export_onnx
    from edgercnn.export.refmodels.architectures import SYNTH_CLASS_NAMES, build_from_card, load_card

    model = build_from_card(load_card(REPO_ROOT / "models" / f"{name}.json"))
    deploy = DeployRCNN(model, DeployOptions(*SOURCE_HW))
    config = metadata.build_config(
        deploy, builder=name, class_names=SYNTH_CLASS_NAMES[: deploy.num_classes], batch=batch
    )
    path = folder / "model.onnx"
    export_onnx(deploy, path, config, do_simplify=False, batch=batch)
    return path


@pytest.fixture(scope="session")
def mask_onnx(tmp_path_factory) -> Path:
    return export_reference("ref_maskrcnn", tmp_path_factory.mktemp("triton_mask"))


def sample_frames(count: int, step: int = 7) -> list[np.ndarray]:
    """Frames of the bundled street video: scenes the model finds people, cars and plates in."""
    capture = cv2.VideoCapture(str(REPO_ROOT / "samples" / "synth_street.mp4"))
    frames = []
    index = 0
    while len(frames) < count:
        ok, frame = capture.read()
        assert ok, "the sample video has fewer frames than the test asks for"
        if index % step == 0:
            frames.append(frame)
        index += 1
    capture.release()
    return frames
