"""The model's configuration, read from the model file itself (docs/model-format.md).

A model file is self-describing: an ONNX file carries ``edgercnn.config`` in its
``metadata_props``, an engine carries it in a JSON sidecar (``model.engine.json``). The ONNX
metadata is read with a tiny protobuf reader rather than the ``onnx`` package (not a runtime
dependency) or an onnxruntime session (a TensorRT-flavour model does not open in a plain one).
The schema itself (fields, validation, the JSON the exporter writes) is ``runtime/contract.py``;
this module only finds it in a file, and re-exports the contract's names its importers use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, BinaryIO

from . import contract
from .contract import (
    ARCHITECTURES,
    CONFIG_KEY,
    ENGINE_SUFFIXES,
    FORMAT_KEY,
    FORMAT_VERSION,
    REEXPORT_HINT,
    SIDECAR_SUFFIX,
    InputSpec,
)
from .errors import ModelFormatError

__all__ = [
    "ARCHITECTURES",
    "CONFIG_KEY",
    "ENGINE_SUFFIXES",
    "FORMAT_KEY",
    "FORMAT_VERSION",
    "InputSpec",
    "ModelConfig",
    "read_onnx_metadata",
]


class ModelConfig(contract.ModelConfig):
    """The contract's config (``runtime/contract.py``: fields, ``from_dict``, ``to_dict``) plus
    finding it in a model file, which only readers need: the exporter builds the contract's class."""

    @classmethod
    def from_model_file(cls, path: str | Path) -> ModelConfig:
        """Read the config of an ONNX file, an engine (via its sidecar) or a sidecar JSON."""
        path = Path(path)
        if not path.exists():
            raise ModelFormatError(f"{path}: model file does not exist")
        if path.is_dir():
            raise ModelFormatError(f"{path}: is a directory, expected a model file (.onnx or .engine)")
        if path.suffix == SIDECAR_SUFFIX:
            return cls.from_dict(_read_json(path), path)
        if path.suffix in ENGINE_SUFFIXES:
            sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
            if not sidecar.exists():
                raise ModelFormatError(
                    f"{path}: engine has no sidecar {sidecar.name}; rebuild it with 'edgercnn build'"
                )
            return cls.from_dict(_read_json(sidecar), path)
        props = read_onnx_metadata(path)
        if CONFIG_KEY not in props:
            raise ModelFormatError(f"{path}: no '{CONFIG_KEY}' in the ONNX metadata; {REEXPORT_HINT}")
        try:
            data = json.loads(props[CONFIG_KEY])
        except json.JSONDecodeError as exc:
            raise ModelFormatError(
                f"{path}: '{CONFIG_KEY}' is not valid JSON ({exc}); {REEXPORT_HINT}"
            ) from exc
        return cls.from_dict(data, path)


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
