"""The model's configuration, read from the model file itself (docs/model-format.md).

A model file is self-describing: an ONNX file carries ``edgercnn.config`` in its
``metadata_props``, an engine carries it in a JSON sidecar (``model.engine.json``). The ONNX
metadata is read with a tiny protobuf reader rather than the ``onnx`` package (not a runtime
dependency) or an onnxruntime session (a TensorRT-flavour model does not open in a plain one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .errors import ModelFormatError

FORMAT_VERSION = 1
CONFIG_KEY = "edgercnn.config"
ARCHITECTURES = ("fasterrcnn", "maskrcnn", "keypointrcnn")
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
_REEXPORT_HINT = "re-export it with 'edgercnn export' (docs/model-format.md)"


@dataclass(frozen=True)
class InputSpec:
    """What the graph's image input expects, and the resize rule that fills it."""

    name: str
    dtype: str  # "float32" (normalized RGB) or "uint8" (BGR, normalized inside the graph)
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


@dataclass(frozen=True)
class ModelConfig:
    """Everything the runtime needs to know about a model, parsed and validated."""

    path: Path
    architecture: str
    class_names: tuple[str, ...]
    input: InputSpec
    batch: int | None  # None: dynamic batch
    outputs: tuple[str, ...]
    detections_per_img: int
    flavour: str = "portable"
    precision: str = "fp32"
    builder: str = ""
    keypoint_names: tuple[str, ...] = ()
    mask_size: int = 28
    thresholds: dict[str, float] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def has_masks(self) -> bool:
        return "masks" in self.outputs

    @property
    def has_keypoints(self) -> bool:
        return "keypoints" in self.outputs

    @classmethod
    def from_model_file(cls, path: str | Path) -> ModelConfig:
        """Read the config of an ONNX file, an engine (via its sidecar) or a sidecar JSON."""
        path = Path(path)
        if not path.exists():
            raise ModelFormatError(f"{path}: model file does not exist")
        if path.is_dir():
            raise ModelFormatError(f"{path}: is a directory, expected a model file (.onnx or .engine)")
        if path.suffix == ".json":
            return cls.from_dict(_read_json(path), path)
        if path.suffix in ENGINE_SUFFIXES:
            sidecar = path.with_name(path.name + ".json")
            if not sidecar.exists():
                raise ModelFormatError(
                    f"{path}: engine has no sidecar {sidecar.name}; rebuild it with 'edgercnn build'"
                )
            return cls.from_dict(_read_json(sidecar), path)
        props = read_onnx_metadata(path)
        if CONFIG_KEY not in props:
            raise ModelFormatError(f"{path}: no '{CONFIG_KEY}' in the ONNX metadata; {_REEXPORT_HINT}")
        try:
            data = json.loads(props[CONFIG_KEY])
        except json.JSONDecodeError as exc:
            raise ModelFormatError(
                f"{path}: '{CONFIG_KEY}' is not valid JSON ({exc}); {_REEXPORT_HINT}"
            ) from exc
        return cls.from_dict(data, path)

    @classmethod
    def from_dict(cls, data: Any, path: str | Path = "<config>") -> ModelConfig:
        """Validate a config dict; every problem names the file and the key."""
        path = Path(path)

        def fail(what: str) -> ModelFormatError:
            return ModelFormatError(f"{path}: model config {what}; {_REEXPORT_HINT}")

        if not isinstance(data, dict):
            raise fail("is not a JSON object")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise fail(f"has format_version {version!r}, this runtime reads {FORMAT_VERSION}")
        try:
            arch = str(data["architecture"])
            if arch not in ARCHITECTURES:
                raise fail(f"has unknown architecture {arch!r} (expected one of {', '.join(ARCHITECTURES)})")
            inp = data["input"]
            mean = tuple(float(v) for v in inp["mean"])
            std = tuple(float(v) for v in inp["std"])
            if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
                raise fail("has input.mean/std that are not three numbers (std > 0)")
            spec = InputSpec(
                name=str(inp.get("name", "images")),
                dtype=str(inp["dtype"]),
                color=str(inp.get("color", "RGB" if inp["dtype"] == "float32" else "BGR")),
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
            if spec.dtype not in ("float32", "uint8"):
                raise fail(f"has input.dtype {spec.dtype!r} (expected float32 or uint8)")
            if not (0 < spec.valid_height <= spec.height and 0 < spec.valid_width <= spec.width):
                raise fail("has a valid input size that does not fit in the graph input")
            batch_raw = data.get("batch", 1)
            batch = None if batch_raw == "dynamic" else int(batch_raw)
            if batch is not None and batch < 1:
                raise fail(f"has batch {batch_raw!r}")
            outputs = tuple(str(o) for o in data["outputs"])
            for needed in ("num_detections", "boxes", "scores", "labels"):
                if needed not in outputs:
                    raise fail(f"lists no '{needed}' output")
            class_names = tuple(str(c) for c in data["class_names"])
            if len(class_names) < 2:
                raise fail("has fewer than two class_names (background plus one class)")
            return cls(
                path=path,
                architecture=arch,
                class_names=class_names,
                input=spec,
                batch=batch,
                outputs=outputs,
                detections_per_img=int(data["detections_per_img"]),
                flavour=str(data.get("flavour", "portable")),
                precision=str(data.get("precision", "fp32")),
                builder=str(data.get("builder", "")),
                keypoint_names=tuple(str(k) for k in data.get("keypoint_names", ())),
                mask_size=int(data.get("mask_size", 28)),
                thresholds=dict(data.get("thresholds", {})),
                versions=dict(data.get("versions", {})),
                source=dict(data.get("source", {})),
                raw=data,
            )
        except KeyError as exc:
            raise fail(f"has no key {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise fail(f"has a malformed value ({exc})") from None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{path}: cannot read the model config JSON ({exc})") from exc


# --- a minimal protobuf reader for ModelProto.metadata_props (field 14) -------------------------

_METADATA_PROPS_FIELD = 14


def _read_varint(stream: BinaryIO) -> int | None:
    result = shift = 0
    while True:
        byte = stream.read(1)
        if not byte:
            return None if shift == 0 else _truncated()
        result |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return result
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _truncated() -> int:
    raise ValueError("truncated protobuf")


def _varint_from(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated protobuf")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _parse_string_pair(buf: bytes) -> tuple[str, str]:
    key = value = ""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint_from(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire != 2:
            raise ValueError("unexpected wire type in StringStringEntryProto")
        length, pos = _varint_from(buf, pos)
        text = buf[pos : pos + length].decode("utf-8")
        pos += length
        if number == 1:
            key = text
        elif number == 2:
            value = text
    return key, value


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """Return an ONNX file's ``metadata_props`` without loading its graph (seeks past it)."""
    path = Path(path)
    props: dict[str, str] = {}
    try:
        with path.open("rb") as stream:
            size = path.stat().st_size
            if size == 0:
                raise ModelFormatError(f"{path}: is empty (0 bytes), not an ONNX model")
            while True:
                tag = _read_varint(stream)
                if tag is None:
                    break
                number, wire = tag >> 3, tag & 7
                if number == 0:
                    raise ValueError("field number 0")
                if wire == 0:
                    if _read_varint(stream) is None:
                        _truncated()
                elif wire == 1:
                    stream.seek(8, 1)
                elif wire == 5:
                    stream.seek(4, 1)
                elif wire == 2:
                    length = _read_varint(stream)
                    if length is None or stream.tell() + length > size:
                        _truncated()
                    assert length is not None
                    if number == _METADATA_PROPS_FIELD:
                        key, value = _parse_string_pair(stream.read(length))
                        props[key] = value
                    else:
                        stream.seek(length, 1)
                else:
                    raise ValueError(f"unsupported wire type {wire}")
    except OSError as exc:
        raise ModelFormatError(f"{path}: cannot read the model file ({exc})") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{path}: is not a valid ONNX model ({exc})") from exc
    return props
