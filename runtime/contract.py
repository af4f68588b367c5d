"""The model-file contract, written once: what the exporter writes and every reader relies on.

Two sides meet here: ``export/`` writes ONNX files (and TensorRT-flavour plugin nodes), and the
runtime, the CPU custom ops and the TensorRT plugins read them. Each fact is spelled in this module
only; the C++ plugins cannot import it, so ``tests/runtime/test_contract.py`` checks their sources
against it. Torch-free and importing nothing but ``.errors``: it must run in the runtime folder
copied alone onto a camera, and the exporter imports it as ``edgercnn.runtime.contract``.

Sections: format constants, enums of the JSON values, the head table (what each architecture
adds), the plugin ops (``plugins/README.md`` sections 1-2) and the config schema
(``docs/model-format.md``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from .errors import ModelFormatError

# --- where the config lives ---------------------------------------------------------------------

FORMAT_VERSION = 2  # bumped only when a reader of version N cannot read the new files
# Versions this runtime reads: 2 moved keypoint decoding out of the graph (``keypoint_heatmaps``),
# which a version-1 reader would silently skip; version-1 files (``keypoints``) still read.
READABLE_FORMAT_VERSIONS = (1, 2)
CONFIG_KEY = "edgercnn.config"  # ONNX metadata_props key holding the config JSON
FORMAT_KEY = "edgercnn.format_version"  # metadata_props key repeating the version, for tools
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")  # serialized TensorRT engines
SIDECAR_SUFFIX = ".json"  # ``model.engine`` carries its config in ``model.engine.json``
INPUT_NAME = "images"  # the graph's image input (the only input of an RPN graph)
# Fast R-CNN mode (``proposals.source == "external"``): two more inputs, in this order.
PROPOSALS_NAME = "proposals"  # [N, P, 4] float32 x1, y1, x2, y2 in graph-input pixels, padded
PROPOSAL_COUNT_NAME = "num_proposals"  # [N] int64: the valid rows of each image's proposals
DYNAMIC_BATCH = "dynamic"  # the ``batch`` value of a graph with a dynamic batch dimension
MASK_SIZE = 28  # torchvision's mask head output, M in ``masks [N, K, M, M]``


class _Value(str, Enum):
    """A JSON string value: compares, hashes, prints and serializes as the plain string."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Kind(_Value):
    """``architecture``: which torchvision R-CNN, hence which heads and outputs."""

    FASTERRCNN = "fasterrcnn"
    MASKRCNN = "maskrcnn"
    KEYPOINTRCNN = "keypointrcnn"


class Flavour(_Value):
    """``flavour``: standard ONNX ops only, or one TensorRT plugin node per data-dependent op."""

    PORTABLE = "portable"
    TENSORRT = "tensorrt"


class Precision(_Value):
    """``precision`` of an ONNX file (an engine's own precision is an ``EnginePrecision``)."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8_QDQ = "int8-qdq"


class EnginePrecision(_Value):
    """What a TensorRT engine computes in (``edgercnn build --precision``, the sidecar)."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


class ProposalSource(_Value):
    """``proposals.source``: the graph's own RPN (Faster R-CNN) or boxes fed in (Fast R-CNN mode)."""

    RPN = "rpn"
    EXTERNAL = "external"


class RoIOp(_Value):
    """``roi_op``: how every RoI is pooled: torchvision's RoIAlign or Fast R-CNN's RoIPool (max)."""

    ALIGN = "align"
    POOL = "pool"


class InputDtype(_Value):
    """``input.dtype``: normalized RGB floats, or camera BGR bytes normalized inside the graph."""

    FLOAT32 = "float32"
    UINT8 = "uint8"


ARCHITECTURES: tuple[str, ...] = tuple(k.value for k in Kind)
FLAVOURS: tuple[str, ...] = tuple(f.value for f in Flavour)
INPUT_DTYPES: tuple[str, ...] = tuple(d.value for d in InputDtype)
PROPOSAL_SOURCES: tuple[str, ...] = tuple(p.value for p in ProposalSource)
ROI_OPS: tuple[str, ...] = tuple(r.value for r in RoIOp)
# The ``multi_level_roi_align`` mode of each ``roi_op``.
ROI_OP_MODES: Mapping[str, str] = MappingProxyType({RoIOp.ALIGN.value: "avg", RoIOp.POOL.value: "max"})
# Channel order each input dtype arrives in (``input.color``).
INPUT_COLORS: Mapping[str, str] = MappingProxyType(
    {InputDtype.FLOAT32.value: "RGB", InputDtype.UINT8.value: "BGR"}
)

# --- the head table -----------------------------------------------------------------------------

BASE_OUTPUTS = ("num_detections", "boxes", "scores", "labels")
KEYPOINTS = "keypoints"  # [N, K, P, 3] decoded in the graph (format 1, ``--keypoint-decode graph``)
KEYPOINT_HEATMAPS = "keypoint_heatmaps"  # [N, K, P, S, S] logits the runtime decodes (the default)


@dataclass(frozen=True)
class Head:
    """What one architecture adds to the common detector: graph outputs, config keys, evaluation."""

    kind: Kind
    outputs: tuple[str, ...]  # graph outputs, in order
    config_keys: tuple[str, ...]  # config keys only this kind writes
    iou_types: tuple[str, ...]  # COCO evaluation types
    postprocess: str | None  # the ``runtime/postprocess.py`` step that decodes the extra output


HEADS: Mapping[Kind, Head] = MappingProxyType(
    {
        Kind.FASTERRCNN: Head(Kind.FASTERRCNN, BASE_OUTPUTS, (), ("bbox",), None),
        Kind.MASKRCNN: Head(
            Kind.MASKRCNN, (*BASE_OUTPUTS, "masks"), ("mask_size",), ("bbox", "segm"), "paste_masks"
        ),
        Kind.KEYPOINTRCNN: Head(
            Kind.KEYPOINTRCNN,
            (*BASE_OUTPUTS, KEYPOINT_HEATMAPS),
            ("num_keypoints",),
            ("bbox", "keypoints"),
            "decode_heatmaps",
        ),
    }
)


def head_of(kind: str) -> Head:
    """The head of an ``architecture`` value; ``ValueError`` for an unknown one."""
    return HEADS[Kind(kind)]


# --- the plugin ops (plugins/README.md sections 1-2) --------------------------------------------

PLUGIN_DOMAIN = "trt.plugins"  # ONNX domain of the plugin nodes; TensorRT's parser maps it to plugins
PLUGIN_OPSET = 1  # opset version of that domain in the model's opset_import
PLUGIN_NAMESPACE = "edgercnn"  # TensorRT plugin registry namespace of both creators
PLUGIN_VERSION = "1"  # TensorRT plugin version of both creators
# String attributes every plugin node carries so that the parser finds the creator.
PLUGIN_NODE_ATTRIBUTES: Mapping[str, str] = MappingProxyType(
    {"plugin_version": PLUGIN_VERSION, "plugin_namespace": PLUGIN_NAMESPACE}
)
CONTRIB_DOMAIN = "ai.onnx.contrib"  # onnxruntime-extensions' domain for the CPU custom ops
MAX_LEVELS = 5  # feature maps a RoIAlign node takes at most (EDGERCNN_MAX_LEVELS in C++)
ROI_ALIGN_MODES: Mapping[str, int] = MappingProxyType({"avg": 0, "max": 1})  # the ``mode`` attribute


class AttrType(_Value):
    """ONNX attribute type of a plugin attribute (TensorRT fields: INT32, FLOAT32, FLOAT32[L])."""

    INT = "int"
    FLOAT = "float"
    FLOATS = "floats"


@dataclass(frozen=True)
class OpAttribute:
    name: str
    type: AttrType
    default: float | None  # None: required (the plugin refuses a node without it)
    meaning: str


@dataclass(frozen=True)
class OpTensor:
    name: str
    shape: str
    dtypes: tuple[str, ...]
    variadic: bool = False  # one or more inputs (the feature maps), after the fixed ones


@dataclass(frozen=True)
class PluginOp:
    """One data-dependent op: its node, its tensors in order, and its attributes in order
    (the torch op's argument order, which the C++ creators advertise too)."""

    name: str  # ONNX op_type and TensorRT creator name
    torch_op: str  # the ``torch.library`` op the exporter traces
    inputs: tuple[OpTensor, ...]
    outputs: tuple[OpTensor, ...]
    attributes: tuple[OpAttribute, ...]
    cpu_op_per_level: bool = False  # onnxruntime-extensions ops have a fixed input count

    @property
    def attribute_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attributes)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attributes if a.default is None)

    @property
    def defaults(self) -> dict[str, float]:
        return {a.name: a.default for a in self.attributes if a.default is not None}

    def names_of(self, kind: AttrType) -> tuple[str, ...]:
        return tuple(a.name for a in self.attributes if a.type == kind)

    def cpu_op_type(self, levels: int = 0) -> str:
        """The onnxruntime custom op type of a node with ``levels`` feature maps."""
        if not self.cpu_op_per_level:
            return self.name
        if not 1 <= levels <= MAX_LEVELS:
            raise ValueError(f"{self.name}: {levels} feature levels, expected 1..{MAX_LEVELS}")
        return f"{self.name}_L{levels}"

    @property
    def cpu_op_types(self) -> tuple[str, ...]:
        if not self.cpu_op_per_level:
            return (self.name,)
        return tuple(self.cpu_op_type(levels) for levels in range(1, MAX_LEVELS + 1))


_FLOATS = ("float32", "float16")
_INT, _FLOAT = AttrType.INT, AttrType.FLOAT

ROI_ALIGN = PluginOp(
    name="EdgeRCNN_MultiLevelRoIAlign",
    torch_op="edgercnn::multi_level_roi_align",
    inputs=(
        OpTensor("rois", "[N, R, 4]", _FLOATS),
        OpTensor("features", "[N, C, H_l, W_l], finest level first", _FLOATS, variadic=True),
    ),
    outputs=(OpTensor("pooled", "[N, R, C, output_height, output_width]", _FLOATS),),
    attributes=(
        OpAttribute("output_height", _INT, None, "pooled height"),
        OpAttribute("output_width", _INT, None, "pooled width"),
        OpAttribute("spatial_scales", AttrType.FLOATS, None, "1/stride per level, powers of two"),
        OpAttribute("sampling_ratio", _INT, 0, "samples per bin side; <= 0: adaptive"),
        OpAttribute("aligned", _INT, 0, "1: torchvision aligned=True (half-pixel shift)"),
        OpAttribute("mode", _INT, ROI_ALIGN_MODES["avg"], "0: RoIAlign average; 1: RoIPool max"),
        OpAttribute("canonical_scale", _INT, 224, "LevelMapper canonical box size"),
        OpAttribute("canonical_level", _INT, 4, "LevelMapper level of that size"),
        OpAttribute("eps", _FLOAT, 1e-6, "LevelMapper epsilon"),
    ),
    cpu_op_per_level=True,
)

BATCHED_NMS = PluginOp(
    name="EdgeRCNN_BatchedNMS",
    torch_op="edgercnn::batched_nms",
    inputs=(
        OpTensor("boxes", "[N, B, 4]", _FLOATS),
        OpTensor("scores", "[N, B]", _FLOATS),
        OpTensor("idxs", "[N, B]", ("int64", "int32")),
    ),
    outputs=(
        OpTensor("keep", "[N, max_output], -1 padded", ("int64",)),
        OpTensor("count", "[N]", ("int64",)),
    ),
    attributes=(
        OpAttribute("iou_threshold", _FLOAT, None, "suppress when IoU > this, same idxs value"),
        OpAttribute("score_threshold", _FLOAT, float("-inf"), "only boxes scoring above it take part"),
        OpAttribute("max_output", _INT, None, "K, the padded output size"),
        OpAttribute("pre_nms_top_n", _INT, -1, "-1: all candidates; else the best n enter NMS"),
    ),
)

PLUGIN_OPS: Mapping[str, PluginOp] = MappingProxyType({op.name: op for op in (ROI_ALIGN, BATCHED_NMS)})
CPU_OP_TYPES: tuple[str, ...] = tuple(t for op in PLUGIN_OPS.values() for t in op.cpu_op_types)

# --- the config schema (docs/model-format.md) ---------------------------------------------------

# How every refusal of a model file ends.
REEXPORT_HINT = "re-export it with 'edgercnn export' (docs/model-format.md)"
_Config = TypeVar("_Config", bound="ModelConfig")


@dataclass(frozen=True)
class InputSpec:
    """What the graph's image input expects, and the resize rule that fills it."""

    name: str
    dtype: str  # an InputDtype value
    color: str
    height: int
    width: int
    valid_height: int
    valid_width: int
    source_height: int
    source_width: int
    min_size: int
    max_size: int
    size_divisible: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def to_dict(self) -> dict[str, Any]:
        """The ``input`` object of the config JSON, keys in the order the exporter writes them."""
        return {
            "name": self.name,
            "dtype": self.dtype,
            "color": self.color,
            "height": self.height,
            "width": self.width,
            "valid_height": self.valid_height,
            "valid_width": self.valid_width,
            "source_height": self.source_height,
            "source_width": self.source_width,
            "min_size": self.min_size,
            "max_size": self.max_size,
            "size_divisible": self.size_divisible,
            "mean": list(self.mean),
            "std": list(self.std),
        }


@dataclass(frozen=True)
class ModelConfig:
    """Everything the runtime needs to know about a model: written by ``to_dict`` (the exporter),
    read and validated by ``from_dict``, so both sides share one definition of the JSON."""

    path: Path
    architecture: str  # a Kind value
    class_names: tuple[str, ...]
    input: InputSpec
    batch: int | None  # None: dynamic batch
    outputs: tuple[str, ...]
    detections_per_img: int
    flavour: str = Flavour.PORTABLE.value
    precision: str = Precision.FP32.value
    builder: str = ""
    keypoint_names: tuple[str, ...] = ()
    mask_size: int = MASK_SIZE
    num_keypoints: int | None = None  # keypointrcnn files from before this key have none
    thresholds: dict[str, float] = field(default_factory=dict)
    proposals: str = ProposalSource.RPN.value  # a ProposalSource value
    max_proposals: int | None = None  # P of the proposals input (external proposals only)
    roi_op: str = RoIOp.ALIGN.value
    versions: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, compare=False)  # the JSON as read, extra keys too

    @property
    def has_masks(self) -> bool:
        return "masks" in self.outputs

    @property
    def has_keypoints(self) -> bool:
        return KEYPOINTS in self.outputs or KEYPOINT_HEATMAPS in self.outputs

    @property
    def wants_proposals(self) -> bool:
        """The graph takes ``proposals`` and ``num_proposals`` inputs (Fast R-CNN mode)."""
        return self.proposals == ProposalSource.EXTERNAL.value

    @property
    def head(self) -> Head:
        return head_of(self.architecture)

    def to_dict(self) -> dict[str, Any]:
        """The ``edgercnn.config`` JSON object: the contract's keys in the exporter's order, plain
        JSON types (``raw`` keeps whatever else a file held, e.g. a sidecar's ``tensorrt``)."""
        data: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "architecture": str(self.architecture),
            "builder": self.builder,
            "class_names": list(self.class_names),
            "keypoint_names": list(self.keypoint_names),
            "input": self.input.to_dict(),
            "batch": DYNAMIC_BATCH if self.batch is None else self.batch,
            "outputs": list(self.outputs),
            "detections_per_img": self.detections_per_img,
            "thresholds": dict(self.thresholds),
            "flavour": str(self.flavour),
            "precision": str(self.precision),
            "versions": dict(self.versions),
            "source": dict(self.source),
        }
        extras = {"mask_size": self.mask_size, "num_keypoints": self.num_keypoints}
        for key in self.head.config_keys:
            if extras[key] is not None:
                data[key] = extras[key]
        # Written only when they differ from an RPN graph's, so older files and readers are unchanged.
        if self.wants_proposals:
            data["proposals"] = {
                "source": str(self.proposals),
                "max_proposals": self.max_proposals,
                "inputs": [PROPOSALS_NAME, PROPOSAL_COUNT_NAME],
                "coordinates": "graph_input",
            }
        if self.roi_op != RoIOp.ALIGN.value:
            data["roi_op"] = str(self.roi_op)
        return data

    @classmethod
    def from_dict(cls: type[_Config], data: Any, path: str | Path = "<config>") -> _Config:
        """Validate a config dict; every problem names the file and the key."""
        path = Path(path)

        def fail(what: str) -> ModelFormatError:
            return ModelFormatError(f"{path}: model config {what}; {REEXPORT_HINT}")

        if not isinstance(data, dict):
            raise fail("is not a JSON object")
        version = data.get("format_version")
        if version not in READABLE_FORMAT_VERSIONS:
            readable = " or ".join(str(v) for v in READABLE_FORMAT_VERSIONS)
            raise fail(f"has format_version {version!r}, this runtime reads {readable}")
        try:
            arch = str(data["architecture"])
            if arch not in ARCHITECTURES:
                raise fail(f"has unknown architecture {arch!r} (expected one of {', '.join(ARCHITECTURES)})")
            inp = data["input"]
            mean = tuple(float(v) for v in inp["mean"])
            std = tuple(float(v) for v in inp["std"])
            if len(mean) != 3 or len(std) != 3:
                raise fail(f"has input.mean {list(mean)} / std {list(std)}: expected three numbers each")
            if not all(math.isfinite(v) for v in mean):
                raise fail(f"has input.mean {list(mean)}: every value must be finite")
            if not all(math.isfinite(v) and v > 0 for v in std):
                raise fail(f"has input.std {list(std)}: every value must be finite and > 0")
            spec = InputSpec(
                name=str(inp.get("name", INPUT_NAME)),
                dtype=str(inp["dtype"]),
                color=str(inp.get("color", INPUT_COLORS.get(str(inp["dtype"]), "BGR"))),
                height=int(inp["height"]),
                width=int(inp["width"]),
                valid_height=int(inp.get("valid_height", inp["height"])),
                valid_width=int(inp.get("valid_width", inp["width"])),
                source_height=int(inp.get("source_height", inp.get("valid_height", inp["height"]))),
                source_width=int(inp.get("source_width", inp.get("valid_width", inp["width"]))),
                min_size=int(inp["min_size"]),
                max_size=int(inp["max_size"]),
                size_divisible=int(inp.get("size_divisible", 32)),
                mean=mean,  # type: ignore[arg-type]
                std=std,  # type: ignore[arg-type]
            )
            if spec.dtype not in INPUT_DTYPES:
                raise fail(f"has input.dtype {spec.dtype!r} (expected {' or '.join(INPUT_DTYPES)})")
            if not (0 < spec.valid_height <= spec.height and 0 < spec.valid_width <= spec.width):
                raise fail("has a valid input size that does not fit in the graph input")
            if not 0 < spec.min_size <= spec.max_size or spec.size_divisible < 1:
                raise fail(
                    f"has input.min_size {spec.min_size}, max_size {spec.max_size}, size_divisible "
                    f"{spec.size_divisible} (need 0 < min_size <= max_size, size_divisible >= 1)"
                )
            batch_raw = data.get("batch", 1)
            batch = None if batch_raw == DYNAMIC_BATCH else int(batch_raw)
            if batch is not None and batch < 1:
                raise fail(f"has batch {batch_raw!r}")
            outputs = tuple(str(o) for o in data["outputs"])
            for needed in BASE_OUTPUTS:
                if needed not in outputs:
                    raise fail(f"lists no '{needed}' output")
            class_names = tuple(str(c) for c in data["class_names"])
            if len(class_names) < 2:
                raise fail("has fewer than two class_names (background plus one class)")
            if len(set(class_names)) != len(class_names):
                raise fail(f"has repeated class_names {list(class_names)}")
            num_keypoints = data.get("num_keypoints")
            detections = int(data["detections_per_img"])
            if detections < 1:
                raise fail(f"has detections_per_img {detections} (must be >= 1)")
            thresholds = dict(data.get("thresholds", {}))
            for key, value in thresholds.items():
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise fail(f"has thresholds.{key} {value!r} (must be a number)")
                if key.endswith("_thresh") and not (math.isfinite(value) and 0 <= value <= 1):
                    raise fail(f"has thresholds.{key} {value!r} (must be finite, in [0, 1])")
            proposals = data.get("proposals", {"source": ProposalSource.RPN.value})
            if not isinstance(proposals, dict):
                raise fail("has a 'proposals' value that is not an object")
            source = str(proposals.get("source", ProposalSource.RPN.value))
            if source not in PROPOSAL_SOURCES:
                raise fail(f"has proposals.source {source!r} (expected {' or '.join(PROPOSAL_SOURCES)})")
            max_proposals = proposals.get("max_proposals")
            if source == ProposalSource.EXTERNAL.value and (max_proposals is None or int(max_proposals) < 1):
                raise fail("has external proposals but no positive proposals.max_proposals")
            roi_op = str(data.get("roi_op", RoIOp.ALIGN.value))
            if roi_op not in ROI_OPS:
                raise fail(f"has roi_op {roi_op!r} (expected {' or '.join(ROI_OPS)})")
            return cls(
                path=path,
                architecture=arch,
                class_names=class_names,
                input=spec,
                batch=batch,
                outputs=outputs,
                detections_per_img=detections,
                flavour=str(data.get("flavour", Flavour.PORTABLE.value)),
                precision=str(data.get("precision", Precision.FP32.value)),
                builder=str(data.get("builder", "")),
                keypoint_names=tuple(str(k) for k in data.get("keypoint_names", ())),
                mask_size=int(data.get("mask_size", MASK_SIZE)),
                num_keypoints=None if num_keypoints is None else int(num_keypoints),
                thresholds=thresholds,
                proposals=source,
                max_proposals=None if max_proposals is None else int(max_proposals),
                roi_op=roi_op,
                versions=dict(data.get("versions", {})),
                source=dict(data.get("source", {})),
                raw=data,
            )
        except KeyError as exc:
            raise fail(f"has no key {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise fail(f"has a malformed value ({exc})") from None
