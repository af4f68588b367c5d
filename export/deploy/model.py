"""The deploy graph: a torchvision R-CNN's inference with every shape fixed.

``DeployRCNN`` wraps a ``FasterRCNN`` / ``MaskRCNN`` / ``KeypointRCNN`` (any backbone returning
an ordered dict of feature maps) for one source size and batch, and returns the padded outputs of
docs/model-format.md: ``num_detections [N]``, ``boxes [N, K, 4]``, ``scores [N, K]``,
``labels [N, K]`` and ``masks [N, K, M, M]`` or ``keypoint_heatmaps [N, K, P, S, S]`` (or,
decoded in the graph, ``keypoints [N, K, P, 3]``), in pixels of the graph input. It reuses the
model's own modules (backbone, heads, box coders), so a checkpoint loaded into the torchvision
model is exactly what the graph computes with.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from edgercnn.export.deploy.errors import UnsupportedModelError
from edgercnn.export.deploy.geometry import InputGeometry, input_geometry
from edgercnn.export.deploy.keypoints import WINDOW_RADIUS
from edgercnn.export.deploy.preprocess import INPUT_DTYPES, InputAdapter
from edgercnn.export.deploy.roi_heads import StaticBoxHead, StaticKeypointHead, StaticMaskHead, StaticRoIPool
from edgercnn.export.deploy.rpn import StaticRPN
from edgercnn.runtime.contract import (
    INPUT_NAME,
    KEYPOINT_HEATMAPS,
    KEYPOINTS,
    PROPOSAL_COUNT_NAME,
    PROPOSAL_SOURCES,
    PROPOSALS_NAME,
    ROI_OPS,
    ProposalSource,
    RoIOp,
    head_of,
)
from torch import nn
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN

# Local maxima of each keypoint heatmap around which the upsampled map is searched.
DEFAULT_KEYPOINT_CANDIDATES = 8
KEYPOINT_DECODES = ("host", "graph")
# P of a Fast R-CNN mode graph when the user names none: torchvision's post-NMS RPN count of 1000
# is far more than a camera's motion regions; 300 is the reference models' RPN count.
DEFAULT_MAX_PROPOSALS = 300


@dataclass(frozen=True)
class DeployOptions:
    """What an export fixes besides the weights: the source size and the input type."""

    source_height: int
    source_width: int
    input_dtype: str = "float32"
    # Where keypoint heatmaps become keypoints: "host" (the runtime, kept detections only: the
    # default, as the in-graph search over every padded row costs more than the network on a CPU)
    # or "graph" (a windowed search in the graph, for consumers that take the graph's outputs raw).
    keypoint_decode: str = "host"
    keypoint_candidates: int = DEFAULT_KEYPOINT_CANDIDATES
    # Heatmap cells searched around each candidate; None searches whole RoIs (exact, costly).
    keypoint_window_radius: float | None = WINDOW_RADIUS
    # Fast R-CNN mode: "external" replaces the RPN by ``proposals [N, P, 4]`` + ``num_proposals [N]``.
    proposals: str = ProposalSource.RPN.value
    max_proposals: int = DEFAULT_MAX_PROPOSALS
    roi_op: str = RoIOp.ALIGN.value


def architecture_kind(model: nn.Module) -> str:
    """``fasterrcnn``, ``maskrcnn`` or ``keypointrcnn`` from the model's heads."""
    if not isinstance(model, GeneralizedRCNN) or not hasattr(model, "roi_heads"):
        raise UnsupportedModelError(
            f"{type(model).__name__} is not a torchvision FasterRCNN, MaskRCNN or KeypointRCNN"
        )
    if model.roi_heads.has_mask():
        return "maskrcnn"
    if model.roi_heads.has_keypoint():
        return "keypointrcnn"
    return "fasterrcnn"


class DeployRCNN(nn.Module):
    """Static-shape inference of a torchvision R-CNN for one source size (see module doc)."""

    def __init__(self, model: GeneralizedRCNN, options: DeployOptions) -> None:
        super().__init__()
        self.kind = architecture_kind(model)
        if options.input_dtype not in INPUT_DTYPES:
            raise UnsupportedModelError(
                f"input dtype must be one of {INPUT_DTYPES}, got {options.input_dtype!r}"
            )
        if options.keypoint_decode not in KEYPOINT_DECODES:
            raise UnsupportedModelError(
                f"keypoint decode must be one of {KEYPOINT_DECODES}, got {options.keypoint_decode!r}"
            )
        _check_proposal_options(options)
        model = model.eval()
        transform = model.transform
        self.geometry: InputGeometry = input_geometry(transform, options.source_height, options.source_width)
        self.options = options
        self.mean = [float(v) for v in transform.image_mean]
        self.std = [float(v) for v in transform.image_std]
        self.adapter = InputAdapter(options.input_dtype, self.mean, self.std, self.geometry)
        self.backbone = model.backbone

        feature_names, feature_shapes = self._probe_features()
        self.rpn: StaticRPN | None = None
        if self.external_proposals:
            num_proposals = options.max_proposals
        else:
            self.rpn = StaticRPN(model.rpn, self.geometry, feature_shapes)
            num_proposals = self.rpn.post_nms_top_n
        heads = model.roi_heads
        self.num_classes = _num_classes(heads)
        roi_op = options.roi_op
        box_pool = StaticRoIPool(heads.box_roi_pool, feature_names, feature_shapes, self.geometry, roi_op)
        self.box_head = StaticBoxHead(heads, box_pool, self.geometry, num_proposals)
        self.mask_head: StaticMaskHead | None = None
        self.keypoint_head: StaticKeypointHead | None = None
        if self.kind == "maskrcnn":
            pool = StaticRoIPool(heads.mask_roi_pool, feature_names, feature_shapes, self.geometry, roi_op)
            self.mask_head = StaticMaskHead(heads, pool)
        elif self.kind == "keypointrcnn":
            pool = StaticRoIPool(
                heads.keypoint_roi_pool, feature_names, feature_shapes, self.geometry, roi_op
            )
            self.keypoint_head = StaticKeypointHead(
                heads, pool, self.geometry, options.keypoint_candidates, options.keypoint_window_radius,
                decode_in_graph=options.keypoint_decode == "graph",
            )  # fmt: skip
            self.num_keypoints = int(heads.keypoint_predictor.kps_score_lowres.out_channels)

    @property
    def output_names(self) -> list[str]:
        """The graph outputs of this kind, as the model-file contract's head table lists them
        (keypoints decoded in the graph replace the heatmaps)."""
        names = list(head_of(self.kind).outputs)
        if self.options.keypoint_decode == "graph":
            names = [KEYPOINTS if n == KEYPOINT_HEATMAPS else n for n in names]
        return names

    @property
    def external_proposals(self) -> bool:
        """Fast R-CNN mode: proposals come in as graph inputs instead of from the RPN."""
        return self.options.proposals == ProposalSource.EXTERNAL.value

    @property
    def input_names(self) -> list[str]:
        if self.external_proposals:
            return [INPUT_NAME, PROPOSALS_NAME, PROPOSAL_COUNT_NAME]
        return [INPUT_NAME]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return 3, self.geometry.height, self.geometry.width

    @property
    def input_dtype(self) -> torch.dtype:
        return torch.uint8 if self.options.input_dtype == "uint8" else torch.float32

    def example_input(self, batch: int = 1) -> torch.Tensor:
        """A zero batch of the graph's input shape and dtype (for tracing and tests)."""
        return torch.zeros((batch, *self.input_shape), dtype=self.input_dtype)

    def example_inputs(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        """Every graph input for tracing: the image batch, plus full-image proposals in Fast R-CNN
        mode (any valid boxes do; the shapes are what tracing fixes)."""
        images = self.example_input(batch)
        if not self.external_proposals:
            return (images,)
        g = self.geometry
        whole = torch.tensor([0.0, 0.0, float(g.valid_width), float(g.valid_height)])
        proposals = whole.expand(batch, self.options.max_proposals, 4).clone()
        count = torch.full((batch,), self.options.max_proposals, dtype=torch.int64)
        return images, proposals, count

    def _probe_features(self) -> tuple[list[str], list[torch.Size]]:
        """Feature map names and shapes for this input size (one backbone run on zeros)."""
        with torch.no_grad():
            features = self.backbone(torch.zeros((1, *self.input_shape)))
        if isinstance(features, torch.Tensor):
            raise UnsupportedModelError(
                "the backbone returns a single tensor; the deploy graph expects torchvision's "
                "ordered dict of feature maps (wrap it as torchvision does for single-map backbones)"
            )
        return list(features.keys()), [f.shape for f in features.values()]

    def forward(
        self,
        images: torch.Tensor,
        proposals: torch.Tensor | None = None,
        proposal_count: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """``proposals [N, P, 4]`` (graph-input pixels) and ``proposal_count [N]`` in Fast R-CNN
        mode only; an RPN graph computes them."""
        x = self.adapter(images)
        features = list(self.backbone(x).values())
        if self.rpn is not None:
            proposals, proposal_count = self.rpn(features)
        elif proposals is None or proposal_count is None:
            raise UnsupportedModelError("this deploy graph takes proposals and their count (Fast R-CNN mode)")
        count, boxes, scores, labels = self.box_head(features, proposals, proposal_count)
        outputs: tuple[torch.Tensor, ...] = (count, boxes, scores, labels)
        if self.mask_head is not None:
            outputs += (self.mask_head(features, boxes, labels),)
        if self.keypoint_head is not None:
            outputs += (self.keypoint_head(features, boxes),)
        return outputs


def _check_proposal_options(options: DeployOptions) -> None:
    if options.proposals not in PROPOSAL_SOURCES:
        raise UnsupportedModelError(
            f"proposals must be one of {', '.join(PROPOSAL_SOURCES)}, got {options.proposals!r}"
        )
    if options.roi_op not in ROI_OPS:
        raise UnsupportedModelError(f"RoI op must be one of {', '.join(ROI_OPS)}, got {options.roi_op!r}")
    if options.max_proposals < 1:
        raise UnsupportedModelError(f"max proposals must be at least 1, got {options.max_proposals}")


def _num_classes(heads: nn.Module) -> int:
    predictor = heads.box_predictor
    if hasattr(predictor, "cls_score"):
        return int(predictor.cls_score.out_features)
    raise UnsupportedModelError(
        f"box predictor {type(predictor).__name__} has no cls_score layer; cannot tell the number of classes"
    )
