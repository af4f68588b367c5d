"""Every model architecture the project knows, by name, built from torchvision's R-CNN classes.

Two families live here:

* the seven torchvision builders (ResNet-50 / MobileNetV3 backbones), always built with
  ``weights=None`` and ``weights_backbone=None`` because nothing can be downloaded; a user's own
  checkpoint of one of them loads into the result;
* three small *reference* models (``ref_*``) that the project trains itself on the synthetic
  surveillance set (see ``export/refmodels/synthdata``) so tests and the demo have real trained weights that
  fit in a few MB and run quickly on a CPU.

Everything returned is a plain ``torchvision.models.detection`` FasterRCNN / MaskRCNN /
KeypointRCNN, so the exporter treats both families the same way.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from edgercnn.export.deploy.errors import ExportError
from torch import nn
from torchvision.models import detection
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.keypoint_rcnn import KeypointRCNNHeads, KeypointRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import AnchorGenerator, RPNHead
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import Conv2dNormActivation

Kind = str  # "fasterrcnn" | "maskrcnn" | "keypointrcnn"

# The synthetic surveillance set's classes (index 0 is background, as torchvision expects).
SYNTH_CLASS_NAMES: list[str] = ["__background__", "person", "car", "plate"]
PERSON_CLASS_NAMES: list[str] = ["__background__", "person"]
COCO_KEYPOINT_NAMES: list[str] = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
]  # fmt: skip

# Image size of the synthetic set; the reference transforms keep it as is (no resize).
REF_IMAGE_HEIGHT = 288
REF_IMAGE_WIDTH = 384
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class UnknownArchitectureError(ExportError):
    """Raised for a name that is not in ``ARCHITECTURES``; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError quotes its message; a plain sentence reads better.
        return str(self.args[0]) if self.args else "unknown architecture"


@dataclass(frozen=True)
class ArchitectureSpec:
    """What a name stands for: its kind, how to build it and its default classes."""

    kind: Kind
    builder: Callable[..., nn.Module]
    default_num_classes: int
    description: str
    class_names: list[str] | None = None
    keypoint_names: list[str] = field(default_factory=list)
    reference: bool = False


# ---------------------------------------------------------------------------------------------
# Reference models: a small from-scratch ResNet-style body + FPN, small heads.
# ---------------------------------------------------------------------------------------------

# Channels of the four body stages (strides 4, 8, 16, 32) and of the FPN outputs. The FPN reads
# strides 8..32 (plus a pooled stride 64): a stride-4 level would double the cost of training on
# two CPU cores, and the smallest objects (plates, ~8 px tall) are still covered by 16 px anchors.
REF_STAGE_CHANNELS = (24, 48, 96, 160)
REF_FPN_CHANNELS = 64
REF_FPN_LAYERS = ("layer2", "layer3", "layer4")
# Anchor sizes per FPN level (strides 8, 16, 32, 64); h/w ratios cover wide plates and tall people.
REF_ANCHOR_SIZES = ((16, 24), (32, 48), (64, 96), (128, 192))
REF_ASPECT_RATIOS = (0.3, 0.6, 1.2, 2.5)
REF_ROI_FEATURES = ["0", "1", "2"]
REF_MASK_HEAD_CHANNELS = (48, 48, 48, 48)
REF_KEYPOINT_HEAD_CHANNELS = (64, 64, 64, 64)


class _ResidualBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity shortcut (ResNet BasicBlock without downsampling)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = Conv2dNormActivation(channels, channels, 3)
        self.conv2 = Conv2dNormActivation(channels, channels, 3, activation_layer=None)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.conv2(self.conv1(x)))


def _stage(in_ch: int, out_ch: int, blocks: int) -> nn.Sequential:
    """A stride-2 conv followed by ``blocks`` residual blocks."""
    layers: list[nn.Module] = [Conv2dNormActivation(in_ch, out_ch, 3, stride=2)]
    layers += [_ResidualBlock(out_ch) for _ in range(blocks)]
    return nn.Sequential(*layers)


def _ref_body() -> nn.Sequential:
    """Reduced-width ResNet-style body whose children ``layer1..layer4`` are strides 4..32."""
    c1, c2, c3, c4 = REF_STAGE_CHANNELS
    return nn.Sequential(
        OrderedDict(
            stem=Conv2dNormActivation(3, 16, 3, stride=2),
            layer1=_stage(16, c1, 1),
            layer2=_stage(c1, c2, 1),
            layer3=_stage(c2, c3, 1),
            layer4=_stage(c3, c4, 1),
        )
    )


def _ref_backbone() -> BackboneWithFPN:
    """The body wrapped in torchvision's FPN (P3..P5 plus a max-pooled P6)."""
    return BackboneWithFPN(
        _ref_body(),
        return_layers={name: str(i) for i, name in enumerate(REF_FPN_LAYERS)},
        in_channels_list=list(REF_STAGE_CHANNELS[1:]),
        out_channels=REF_FPN_CHANNELS,
        extra_blocks=LastLevelMaxPool(),
    )


def _ref_common_kwargs(overrides: dict[str, Any]) -> dict[str, Any]:
    """Defaults shared by the three reference models; explicit overrides win."""
    kwargs: dict[str, Any] = {
        "min_size": REF_IMAGE_HEIGHT,
        "max_size": REF_IMAGE_WIDTH,
        "image_mean": IMAGENET_MEAN,
        "image_std": IMAGENET_STD,
        "rpn_pre_nms_top_n_train": 600,
        "rpn_post_nms_top_n_train": 300,
        "rpn_pre_nms_top_n_test": 500,
        "rpn_post_nms_top_n_test": 300,
        "rpn_batch_size_per_image": 128,
        "box_batch_size_per_image": 64,
        "box_detections_per_img": 100,
    }
    kwargs.update(overrides)
    return kwargs


def _ref_rpn_and_box_parts(num_classes: int) -> dict[str, nn.Module]:
    """Anchor generator, RPN head, box RoI pooler, box head and predictor of the reference models."""
    anchors = AnchorGenerator(REF_ANCHOR_SIZES, (REF_ASPECT_RATIOS,) * len(REF_ANCHOR_SIZES))
    return {
        "rpn_anchor_generator": anchors,
        "rpn_head": RPNHead(REF_FPN_CHANNELS, anchors.num_anchors_per_location()[0]),
        "box_roi_pool": MultiScaleRoIAlign(REF_ROI_FEATURES, output_size=7, sampling_ratio=2),
        "box_head": TwoMLPHead(REF_FPN_CHANNELS * 7 * 7, 256),
        "box_predictor": FastRCNNPredictor(256, num_classes),
    }


def _build_ref_fasterrcnn(num_classes: int, **overrides: Any) -> nn.Module:
    parts = _ref_rpn_and_box_parts(num_classes)
    return detection.FasterRCNN(_ref_backbone(), num_classes=None, **parts, **_ref_common_kwargs(overrides))


def _build_ref_maskrcnn(num_classes: int, **overrides: Any) -> nn.Module:
    parts = _ref_rpn_and_box_parts(num_classes)
    mask_channels = REF_MASK_HEAD_CHANNELS[-1]
    return detection.MaskRCNN(
        _ref_backbone(),
        num_classes=None,
        **parts,
        mask_roi_pool=MultiScaleRoIAlign(REF_ROI_FEATURES, output_size=14, sampling_ratio=2),
        mask_head=MaskRCNNHeads(REF_FPN_CHANNELS, list(REF_MASK_HEAD_CHANNELS), 1),
        mask_predictor=MaskRCNNPredictor(mask_channels, mask_channels, num_classes),
        **_ref_common_kwargs(overrides),
    )


def _build_ref_keypointrcnn(num_classes: int, num_keypoints: int = 17, **overrides: Any) -> nn.Module:
    parts = _ref_rpn_and_box_parts(num_classes)
    kp_channels = REF_KEYPOINT_HEAD_CHANNELS[-1]
    return detection.KeypointRCNN(
        _ref_backbone(),
        num_classes=None,
        **parts,
        keypoint_roi_pool=MultiScaleRoIAlign(REF_ROI_FEATURES, output_size=14, sampling_ratio=2),
        keypoint_head=KeypointRCNNHeads(REF_FPN_CHANNELS, list(REF_KEYPOINT_HEAD_CHANNELS)),
        keypoint_predictor=KeypointRCNNPredictor(kp_channels, num_keypoints),
        **_ref_common_kwargs(overrides),
    )


# ---------------------------------------------------------------------------------------------
# torchvision builders, never with pretrained weights.
# ---------------------------------------------------------------------------------------------


def _torchvision_builder(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Wrap a torchvision builder so that it never tries to download weights."""

    def build(num_classes: int, **overrides: Any) -> nn.Module:
        return fn(weights=None, weights_backbone=None, num_classes=num_classes, **overrides)

    build.__name__ = f"build_{fn.__name__}"
    build.__doc__ = f"torchvision.models.detection.{fn.__name__} with random weights."
    return build


ARCHITECTURES: dict[str, ArchitectureSpec] = {
    "fasterrcnn_resnet50_fpn": ArchitectureSpec(
        "fasterrcnn", _torchvision_builder(detection.fasterrcnn_resnet50_fpn), 91, "ResNet-50 FPN"
    ),
    "fasterrcnn_resnet50_fpn_v2": ArchitectureSpec(
        "fasterrcnn", _torchvision_builder(detection.fasterrcnn_resnet50_fpn_v2), 91, "ResNet-50 FPN v2"
    ),
    "fasterrcnn_mobilenet_v3_large_fpn": ArchitectureSpec(
        "fasterrcnn",
        _torchvision_builder(detection.fasterrcnn_mobilenet_v3_large_fpn),
        91,
        "MobileNetV3-Large FPN",
    ),
    "fasterrcnn_mobilenet_v3_large_320_fpn": ArchitectureSpec(
        "fasterrcnn",
        _torchvision_builder(detection.fasterrcnn_mobilenet_v3_large_320_fpn),
        91,
        "MobileNetV3-Large FPN, 320 px",
    ),
    "maskrcnn_resnet50_fpn": ArchitectureSpec(
        "maskrcnn", _torchvision_builder(detection.maskrcnn_resnet50_fpn), 91, "ResNet-50 FPN"
    ),
    "maskrcnn_resnet50_fpn_v2": ArchitectureSpec(
        "maskrcnn", _torchvision_builder(detection.maskrcnn_resnet50_fpn_v2), 91, "ResNet-50 FPN v2"
    ),
    "keypointrcnn_resnet50_fpn": ArchitectureSpec(
        "keypointrcnn",
        _torchvision_builder(detection.keypointrcnn_resnet50_fpn),
        2,
        "ResNet-50 FPN",
        class_names=PERSON_CLASS_NAMES,
        keypoint_names=COCO_KEYPOINT_NAMES,
    ),
    "ref_fasterrcnn": ArchitectureSpec(
        "fasterrcnn",
        _build_ref_fasterrcnn,
        len(SYNTH_CLASS_NAMES),
        "small from-scratch ResNet-style body + FPN(64), trained on the synthetic set",
        class_names=SYNTH_CLASS_NAMES,
        reference=True,
    ),
    "ref_maskrcnn": ArchitectureSpec(
        "maskrcnn",
        _build_ref_maskrcnn,
        len(SYNTH_CLASS_NAMES),
        "small from-scratch ResNet-style body + FPN(64), 4x48 mask head, trained on the synthetic set",
        class_names=SYNTH_CLASS_NAMES,
        reference=True,
    ),
    "ref_keypointrcnn": ArchitectureSpec(
        "keypointrcnn",
        _build_ref_keypointrcnn,
        len(PERSON_CLASS_NAMES),
        "small from-scratch ResNet-style body + FPN(64), 4x64 keypoint head, trained on the synthetic set",
        class_names=PERSON_CLASS_NAMES,
        keypoint_names=COCO_KEYPOINT_NAMES,
        reference=True,
    ),
}


def get_spec(name: str) -> ArchitectureSpec:
    """The spec for ``name``, or an ``UnknownArchitectureError`` that lists the valid names."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        valid = ", ".join(sorted(ARCHITECTURES))
        raise UnknownArchitectureError(f"unknown architecture {name!r}; valid names: {valid}") from None


def model_kind(name: str) -> Kind:
    """``"fasterrcnn"``, ``"maskrcnn"`` or ``"keypointrcnn"`` for an architecture name."""
    return get_spec(name).kind


def build_model(name: str, num_classes: int | None = None, **overrides: Any) -> nn.Module:
    """Build ``name`` with random weights; ``overrides`` go to the torchvision constructor.

    ``num_classes`` counts the background; ``None`` takes the architecture's default
    (91 for the COCO-shaped torchvision builders, the synthetic set's classes for ``ref_*``).
    """
    spec = get_spec(name)
    return spec.builder(spec.default_num_classes if num_classes is None else num_classes, **overrides)


# ---------------------------------------------------------------------------------------------
# Model cards: the JSON that travels beside each committed weight file.
# ---------------------------------------------------------------------------------------------

CARD_REQUIRED_KEYS = ("architecture", "kind", "num_classes", "class_names", "weights", "constructor_kwargs")


class ModelCardError(ExportError):
    """A model card that cannot be read or lacks what loading a model needs."""


def load_card(path: str | Path) -> dict[str, Any]:
    """Read a model card; ``card["weights_path"]`` is added as an absolute path next to the card."""
    path = Path(path)
    try:
        card = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelCardError(f"{path}: model card not found") from None
    except IsADirectoryError:
        raise ModelCardError(f"{path}: is a directory, expected a model card (models/NAME.json)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelCardError(f"{path}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise ModelCardError(f"{path}: cannot read the model card ({exc.strerror or exc})") from None
    if not isinstance(card, dict):
        raise ModelCardError(f"{path}: a model card must be a JSON object")
    missing = [key for key in CARD_REQUIRED_KEYS if key not in card]
    if missing:
        raise ModelCardError(f"{path}: model card lacks {', '.join(missing)}")
    if card["architecture"] not in ARCHITECTURES:
        valid = ", ".join(sorted(ARCHITECTURES))
        raise ModelCardError(f"{path}: unknown architecture {card['architecture']!r}; valid names: {valid}")
    card["weights_path"] = str((path.parent / card["weights"]).resolve())
    return card


def build_from_card(card: dict[str, Any], load_weights: bool = True) -> nn.Module:
    """Build the card's model (eval mode) and, by default, load its state_dict safely."""
    model = build_model(card["architecture"], card["num_classes"], **card["constructor_kwargs"])
    if load_weights:
        state = torch.load(card["weights_path"], map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    return model.eval()
