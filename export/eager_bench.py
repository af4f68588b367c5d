"""torchvision eager as a ``bench`` entry (build host only: imports torch).

``edgercnn bench --eager CHECKPOINT`` (``edgercnn/cli/bench.py``) imports it only when asked, so
the runtime stays torch-free. The adapter has the ``Detector.detect`` shape: BGR images in,
objects with ``timings`` and ``len()`` out. Stages: preprocess is the numpy -> tensor conversion;
infer is the whole eager model, whose own resize/normalize and mask pasting run inside it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from edgercnn.export.eager import bgr_to_tensor
from edgercnn.export.refmodels.architectures import build_from_card, build_model, load_card


class _EagerResult:
    def __init__(self, output: dict[str, torch.Tensor], timings: dict[str, float]) -> None:
        self.output = output
        self.timings = timings

    def __len__(self) -> int:
        return int(self.output["boxes"].shape[0])


def load_eager_model(checkpoint: str | Path, config: Any) -> torch.nn.Module:
    """A model card (.json) or a bare state_dict checkpoint of ``config.builder``."""
    path = Path(checkpoint)
    if path.suffix == ".json":
        model = build_from_card(load_card(path))
    else:
        if not config.builder:
            raise ValueError(f"{path}: the model file names no builder; pass its model card (.json) instead")
        model = build_model(config.builder, len(config.class_names))
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    # the same resize rule the exported graph was made for
    model.transform.min_size = (config.input.min_size,)
    model.transform.max_size = config.input.max_size
    return model.eval()


class EagerRunner:
    """Runs torchvision eager on BGR uint8 frames, timing the stages the runtime reports."""

    def __init__(
        self,
        checkpoint: str | Path,
        config: Any,
        threads: int | None = None,
        score_threshold: float | None = None,
    ) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.model = load_eager_model(checkpoint, config)
        self.score_threshold = score_threshold

    @torch.inference_mode()
    def detect(self, images_bgr: list[np.ndarray]) -> list[_EagerResult]:
        t0 = time.perf_counter()
        tensors = [bgr_to_tensor(im) for im in images_bgr]
        t1 = time.perf_counter()
        outputs = self.model(tensors)
        t2 = time.perf_counter()
        if self.score_threshold is not None:
            outputs = [{k: v[o["scores"] >= self.score_threshold] for k, v in o.items()} for o in outputs]
        t3 = time.perf_counter()
        timings = {"preprocess": t1 - t0, "infer": t2 - t1, "postprocess": t3 - t2}
        return [_EagerResult(o, dict(timings)) for o in outputs]
