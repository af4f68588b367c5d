"""Fast R-CNN mode's reference side: torchvision eager fed the proposals the graph is fed.

A Fast R-CNN mode graph (``DeployOptions(proposals="external")``) skips the RPN, so the eager
reference skips it too: ``model.transform`` and ``model.backbone`` as usual, then
``model.roi_heads(features, proposals, image_sizes)`` and ``transform.postprocess``, exactly
torchvision's ``GeneralizedRCNN.forward`` with the RPN's output replaced. For ``roi_op="pool"``
torchvision has no RoIPool box head; the reference is then the same model with every
``MultiScaleRoIAlign`` replaced by ``MultiScaleRoIPool`` below: torchvision's own level mapping
and scales, ``torchvision.ops.roi_pool`` per level (independent of the project's op kernels).
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from edgercnn.export.deploy import DeployOptions, DeployRCNN
from edgercnn.export.deploy.errors import ExportError
from edgercnn.export.eager import Outputs, bgr_to_tensor, eager_detections, reset_pooler_scales
from edgercnn.export.parity import graph_inputs, padded_to_detections
from edgercnn.runtime.contract import INPUT_NAME, PROPOSAL_COUNT_NAME, PROPOSALS_NAME, RoIOp
from edgercnn.runtime.matching import ParityTally
from torch import Tensor
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.poolers import _convert_to_roi_format, _filter_input, _setup_scales

POOLER_ATTRIBUTES = ("box_roi_pool", "mask_roi_pool", "keypoint_roi_pool")


class MultiScaleRoIPool(MultiScaleRoIAlign):
    """``MultiScaleRoIAlign`` with each level max-pooled by ``torchvision.ops.roi_pool``.

    Same feature maps, scales and ``LevelMapper`` as torchvision's pooler; only the per-level
    op differs (``roi_pool`` has no sampling ratio: it takes the max over each quantized bin).
    """

    def forward(
        self, x: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]
    ) -> Tensor:
        features = _filter_input(x, self.featmap_names)
        if self.scales is None or self.map_levels is None:
            self.scales, self.map_levels = _setup_scales(
                features, image_shapes, self.canonical_scale, self.canonical_level
            )
        rois = _convert_to_roi_format(boxes)
        if len(features) == 1:
            return torchvision.ops.roi_pool(features[0], rois, self.output_size, self.scales[0])
        levels = self.map_levels(boxes)
        first = features[0]
        result = first.new_zeros((len(rois), first.shape[1], *self.output_size))
        for level, (feature, scale) in enumerate(zip(features, self.scales, strict=True)):
            rows = torch.where(levels == level)[0]
            result[rows] = torchvision.ops.roi_pool(feature, rois[rows], self.output_size, scale)
        return result


def with_roi_op(model: torch.nn.Module, roi_op: str) -> torch.nn.Module:
    """The model itself for ``align``; for ``pool`` a copy whose RoI poolers are ``MultiScaleRoIPool``."""
    if roi_op == RoIOp.ALIGN.value:
        return model
    pooled = copy.deepcopy(model)
    for name in POOLER_ATTRIBUTES:
        pooler = getattr(pooled.roi_heads, name, None)
        if isinstance(pooler, MultiScaleRoIAlign):
            replacement = MultiScaleRoIPool(
                pooler.featmap_names,
                pooler.output_size,
                pooler.sampling_ratio,
                canonical_scale=pooler.canonical_scale,
                canonical_level=pooler.canonical_level,
            )
            setattr(pooled.roi_heads, name, replacement)
    return pooled


@torch.inference_mode()
def eager_with_proposals(
    model: torch.nn.Module, images: Sequence[np.ndarray], proposals: Sequence[np.ndarray]
) -> Outputs:
    """torchvision inference with ``proposals[i]`` (``[k, 4]``, transformed-image pixels) as the
    RPN's output for ``images[i]``; detections in source pixels, as ``model(images)`` gives them."""
    model.eval()
    reset_pooler_scales(model)
    tensors = [bgr_to_tensor(im) for im in images]
    image_list, _ = model.transform(tensors)
    features = model.backbone(image_list.tensors)
    boxes = [torch.as_tensor(np.asarray(p, dtype=np.float32).reshape(-1, 4)) for p in proposals]
    detections, _ = model.roi_heads(features, boxes, image_list.image_sizes)
    original = [(int(t.shape[-2]), int(t.shape[-1])) for t in tensors]
    detections = model.transform.postprocess(detections, image_list.image_sizes, original)
    return [{k: v.cpu().numpy() for k, v in d.items()} for d in detections]


def pad_proposals(proposals: Sequence[np.ndarray], rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-image ``[k, 4]`` boxes -> ``proposals [N, rows, 4]`` (zero padded) and ``count [N]``."""
    padded = np.zeros((len(proposals), rows, 4), dtype=np.float32)
    count = np.zeros((len(proposals),), dtype=np.int64)
    for i, boxes in enumerate(proposals):
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)[:rows]
        padded[i, : len(boxes)] = boxes
        count[i] = len(boxes)
    return padded, count


Runner = Callable[[dict[str, np.ndarray]], Sequence[np.ndarray]]


def proposal_runners(
    deploy: DeployRCNN, names: Sequence[str], work_dir: Path, batch: int
) -> dict[str, Runner]:
    """One inference function per candidate (``deploy`` in torch, ``portable`` / ``tensorrt`` ONNX)."""
    import onnx
    from edgercnn.export import metadata
    from edgercnn.export.onnx_export import FILE_NAMES, export_onnx, session_for

    runners: dict[str, Runner] = {}
    for name in names:
        if name == "deploy":

            def run_deploy(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
                with torch.inference_mode():
                    inputs = [torch.from_numpy(feed[k]) for k in deploy.input_names]
                    return [t.numpy() for t in deploy(*inputs)]

            runners[name] = run_deploy
            continue
        path = work_dir / FILE_NAMES[name]
        config = metadata.build_config(
            deploy, builder="fast-rcnn-parity", class_names=metadata.default_class_names(deploy.num_classes),
            batch=batch, flavour=name,
        )  # fmt: skip
        export_onnx(deploy, path, config, flavour=name, batch=batch)
        session = session_for(onnx.load(str(path)), name)
        if session is None:
            raise ExportError(f"cannot run {path} here: runtime.plugin_ops (the plugins' CPU ops) is missing")
        runners[name] = lambda feed, s=session: s.run(None, feed)
    return runners


def fast_rcnn_parity(
    model: torch.nn.Module,
    images: Sequence[np.ndarray],
    proposals: Sequence[np.ndarray],
    *,
    roi_op: str = RoIOp.ALIGN.value,
    candidates: Sequence[str] = ("deploy", "portable"),
    batch: int = 1,
    work_dir: Path | None = None,
) -> dict[str, Any]:
    """Eager (fed ``proposals``, in transformed-image pixels) vs each Fast R-CNN mode candidate:
    ``{candidate: ParityTally.summary()}`` over all images, which must share one size."""
    height, width = images[0].shape[:2]
    if any(im.shape[:2] != (height, width) for im in images):
        raise ExportError("fast_rcnn_parity needs images of one size (the graph's source size)")
    rows = max(max((len(p) for p in proposals), default=1), 1)
    options = DeployOptions(height, width, proposals="external", max_proposals=rows, roi_op=roi_op)
    deploy = DeployRCNN(model, options).eval()
    reference = eager_with_proposals(with_roi_op(model, roi_op), images, proposals)
    tmp = None
    if work_dir is None:
        tmp = tempfile.TemporaryDirectory()
        work_dir = Path(tmp.name)
    try:
        runners = proposal_runners(deploy, candidates, work_dir, batch)
        report: dict[str, Any] = {}
        for name, infer in runners.items():
            tally = ParityTally()
            for start in range(0, len(images), batch):
                chunk = list(images[start : start + batch])
                chunk_proposals = list(proposals[start : start + batch])
                real = len(chunk)
                chunk += [chunk[-1]] * (batch - real)
                chunk_proposals += [chunk_proposals[-1]] * (batch - real)
                boxes, count = pad_proposals(chunk_proposals, rows)
                feed = {INPUT_NAME: graph_inputs(model, chunk).numpy(), PROPOSALS_NAME: boxes,
                        PROPOSAL_COUNT_NAME: count}  # fmt: skip
                outputs = padded_to_detections(infer(feed), deploy)[:real]
                for index, out in enumerate(outputs):
                    ref = reference[start + index]
                    size = (height, width)
                    tally.add(eager_detections(ref, size), eager_detections(out, size))
            report[name] = tally.summary()
        return report
    finally:
        if tmp is not None:
            tmp.cleanup()
