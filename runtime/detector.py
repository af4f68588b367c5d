"""``Detector``: a model file + a backend -> detections on BGR images, every stage timed."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .backends.base import Backend, is_remote_model, open_backend
from .config import ModelConfig
from .contract import INPUT_NAME
from .detections import Detections, MaskCrop
from .errors import BackendError, UsageError
from .postprocess import class_ids, postprocess
from .preprocess import prepare_batch
from .proposals import pack_proposals
from .validators import check_score

__all__ = ["Detections", "Detector", "MaskCrop"]


class Detector:
    """Runs a self-describing model file; ``detect`` takes any number of images and batches them."""

    def __init__(
        self,
        config: ModelConfig,
        backend: Backend,
        score_threshold: float | None = None,
        classes: Iterable[int | str] | None = None,
    ) -> None:
        if config.wants_proposals and not getattr(backend, "takes_proposals", False):
            raise BackendError(
                f"{config.path}: is a Fast R-CNN mode model (it takes proposals); backend {backend.name} "
                "feeds only images, run it on onnxruntime"
            )
        self.config = config
        self.backend = backend
        self.score_threshold = (
            None if score_threshold is None else check_score(score_threshold, "score_threshold")
        )
        self.classes = class_ids(classes, config.class_names)

    @classmethod
    def open(
        cls,
        path: str | Path,
        backend: str = "auto",
        device: str = "auto",
        threads: int | None = None,
        score_threshold: float | None = None,
        classes: Iterable[int | str] | None = None,
        **backend_options: Any,
    ) -> Detector:
        """``path`` is a model file, or a Triton model URL (grpc:// or http://), whose config comes
        from the server; ``backend_options`` go to the backend (e.g. triton's timeout, retries)."""
        if is_remote_model(path):
            engine = open_backend(path, backend=backend, threads=threads, **backend_options)
            config = engine.config  # type: ignore[attr-defined]
        else:
            config = ModelConfig.from_model_file(path)
            engine = open_backend(path, backend=backend, device=device, threads=threads, config=config,
                                  **backend_options)  # fmt: skip
        return cls(config, engine, score_threshold=score_threshold, classes=classes)

    @property
    def batch_size(self) -> int | None:
        """The graph's fixed batch, or None when it takes any batch."""
        return self.config.batch

    @property
    def wants_proposals(self) -> bool:
        """``detect`` needs ``proposals`` (a Fast R-CNN mode model, docs/model-format.md)."""
        return self.config.wants_proposals

    def detect(
        self,
        images_bgr: list[np.ndarray],
        score_threshold: float | None = None,
        classes: Iterable[int | str] | None = None,
        proposals: list[np.ndarray] | None = None,
    ) -> list[Detections]:
        """Detections per image, in order. ``timings`` hold the seconds of the batch it ran in.

        ``proposals``: for a Fast R-CNN mode model, one ``[k, 4]`` array per image of x1, y1, x2, y2
        in that image's pixels, best first (the graph keeps the first P).
        """
        if isinstance(images_bgr, np.ndarray):
            images_bgr = [images_bgr]
            if proposals is not None and not isinstance(proposals, list):
                proposals = [proposals]
        if self.wants_proposals and proposals is None:
            raise UsageError(
                f"{self.config.path}: this Fast R-CNN mode model needs proposals for every image"
            )
        if not self.wants_proposals and proposals is not None:
            raise UsageError(f"{self.config.path}: this model runs its own RPN; it takes no proposals")
        if proposals is not None and len(proposals) != len(images_bgr):
            raise UsageError(
                f"{len(proposals)} proposal sets for {len(images_bgr)} images; give one per image"
            )
        score = (
            self.score_threshold
            if score_threshold is None
            else check_score(score_threshold, "score_threshold")
        )
        wanted = self.classes if classes is None else class_ids(classes, self.config.class_names)
        step = self.batch_size or max(len(images_bgr), 1)
        results: list[Detections] = []
        for start in range(0, len(images_bgr), step):
            chunk = images_bgr[start : start + step]
            t0 = time.perf_counter()
            batch, transforms = prepare_batch(chunk, self.config, batch_size=self.batch_size)
            feed: np.ndarray | dict[str, np.ndarray] = batch
            if proposals is not None:
                chunk_proposals = proposals[start : start + step]
                feed = {
                    INPUT_NAME: batch,
                    **pack_proposals(chunk_proposals, transforms, self.config, len(batch)),
                }
            t1 = time.perf_counter()
            outputs = self.backend.infer(feed)  # type: ignore[arg-type]
            t2 = time.perf_counter()
            dets = postprocess(outputs, transforms, self.config, score_threshold=score, classes=wanted)
            t3 = time.perf_counter()
            timings = {"preprocess": t1 - t0, "infer": t2 - t1, "postprocess": t3 - t2, "batch": len(chunk)}
            for d in dets:
                d.timings = dict(timings)
            results.extend(dets)
        return results

    def close(self) -> None:
        self.backend.close()
