"""The TensorRT-flavour ONNX on onnxruntime: the plugin nodes run on the project's CPU kernels.

``model.trt.onnx`` contains ``EdgeRCNN_MultiLevelRoIAlign`` / ``EdgeRCNN_BatchedNMS`` nodes in the
``trt.plugins`` domain (``plugins/README.md``). TensorRT runs them with the plugin library; here the
same arithmetic (``plugins/src/common``) is compiled for the CPU with g++ and reached through ctypes,
and onnxruntime-extensions' Python custom ops (domain ``ai.onnx.contrib``) call it, so that file can
be checked for parity on any machine. Torch-free: numpy, ctypes, onnx and onnxruntime(-extensions).

The C++ library is found in this order: ``$EDGERCNN_PLUGIN_CPU_LIB``; a copy compiled earlier into
the cache directory (keyed by a hash of the sources, so it is never stale); a CMake build directory
``plugins/build*/libedgercnn_cpu.so``; else it is compiled on demand with ``$CXX`` (default ``g++``).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .contract import BATCHED_NMS, CONTRIB_DOMAIN, MAX_LEVELS, PLUGIN_DOMAIN, ROI_ALIGN, AttrType, PluginOp
from .errors import BackendError, EdgercnnError, ModelFormatError
from .sessions import create_session as open_session

__all__ = [
    "CpuKernels",
    "PluginOpsError",
    "create_session",
    "load_cpu_kernels",
    "rewrite_plugin_nodes",
]

ROI_ALIGN_OP = ROI_ALIGN.name
NMS_OP = BATCHED_NMS.name
CPU_API_VERSION = 1  # EDGERCNN_CPU_API_VERSION, the ctypes ABI of plugins/src/common/edgercnn_cpu_api.h

_SOURCE_DIR = Path(__file__).resolve().parents[1] / "plugins" / "src"
_LIB_NAME = "libedgercnn_cpu.dylib" if sys.platform == "darwin" else "libedgercnn_cpu.so"
_CXX_FLAGS = ["-std=c++17", "-O3", "-ffp-contract=off", "-fPIC", "-shared"]


class PluginOpsError(BackendError):
    """The CPU plugin kernels cannot be found, built or called with these inputs."""


# --------------------------------------------------------------------------------------------------
# Locating / building the CPU library
# --------------------------------------------------------------------------------------------------


def _cpu_sources() -> list[Path]:
    sources = sorted((_SOURCE_DIR / "cpu").glob("*.cpp")) + sorted((_SOURCE_DIR / "common").glob("*.h"))
    if not sources:
        raise PluginOpsError(f"plugin sources not found under {_SOURCE_DIR}: cannot build the CPU kernels")
    return sources


def _source_hash() -> str:
    digest = hashlib.sha256()
    for path in _cpu_sources():
        digest.update(path.relative_to(_SOURCE_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    digest.update(" ".join(_CXX_FLAGS).encode())
    return digest.hexdigest()[:16]


def _cache_dir() -> Path:
    root = os.environ.get("EDGERCNN_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    base = Path(root) if root else Path.home() / ".cache"
    return (base if os.environ.get("EDGERCNN_CACHE_DIR") else base / "edgercnn") / "plugins"


def _compile_cpu_library(target: Path) -> Path:
    """Compiles the CPU kernels with g++ into ``target`` (atomically, so parallel workers can race)."""
    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        raise PluginOpsError(
            f"no C++ compiler '{compiler}' on PATH to build the plugin CPU kernels; install g++, set CXX, "
            "or point EDGERCNN_PLUGIN_CPU_LIB at a prebuilt libedgercnn_cpu (cmake -DEDGERCNN_CPU_ONLY=ON)"
        )
    cpp = [str(p) for p in _cpu_sources() if p.suffix == ".cpp"]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(suffix=".so", dir=target.parent)
    except OSError as exc:
        raise PluginOpsError(
            f"cannot write the plugin CPU kernels to {target.parent} ({exc.strerror}); "
            "set EDGERCNN_CACHE_DIR to a writable folder or EDGERCNN_PLUGIN_CPU_LIB to a prebuilt library"
        ) from exc
    os.close(fd)
    cmd = [compiler, *_CXX_FLAGS, "-o", tmp_name, *cpp]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        Path(tmp_name).unlink(missing_ok=True)
        raise PluginOpsError(
            f"building the plugin CPU kernels failed ({' '.join(cmd)}):\n{result.stderr[-2000:]}"
        )
    os.replace(tmp_name, target)
    return target


def find_cpu_library(build: bool = True) -> Path:
    """Path of a CPU kernel library matching these sources (see the module docstring for the order)."""
    env = os.environ.get("EDGERCNN_PLUGIN_CPU_LIB")
    if env:
        path = Path(env)
        if not path.is_file():
            raise PluginOpsError(f"EDGERCNN_PLUGIN_CPU_LIB={env}: no such file")
        return path
    cached = _cache_dir() / f"cpu-{_source_hash()}" / _LIB_NAME
    if cached.is_file():
        return cached
    for candidate in sorted((_SOURCE_DIR.parent).glob(f"build*/{_LIB_NAME}")):
        if _library_version(candidate) == CPU_API_VERSION:
            return candidate
    if not build:
        raise PluginOpsError("no plugin CPU kernel library found (set EDGERCNN_PLUGIN_CPU_LIB or build it)")
    return _compile_cpu_library(cached)


def _library_version(path: Path) -> int | None:
    try:
        return int(ctypes.CDLL(str(path)).edgercnn_cpu_api_version())
    except (OSError, AttributeError):
        return None


# --------------------------------------------------------------------------------------------------
# ctypes wrappers
# --------------------------------------------------------------------------------------------------

_F32P = ctypes.POINTER(ctypes.c_float)
_I64P = ctypes.POINTER(ctypes.c_int64)


def _ptr(array: np.ndarray, ctype: Any) -> Any:
    return array.ctypes.data_as(ctype)


class CpuKernels:
    """The CPU kernels of ``plugins/src/cpu`` on numpy arrays (float32 math; float16 is converted)."""

    def __init__(self, library: Path) -> None:
        try:
            self._lib = ctypes.CDLL(str(library))
        except OSError as exc:
            raise PluginOpsError(f"cannot load plugin CPU library {library}: {exc}") from exc
        self.path = library
        version = int(self._lib.edgercnn_cpu_api_version())
        if version != CPU_API_VERSION:
            raise PluginOpsError(f"{library}: CPU kernel API version {version}, expected {CPU_API_VERSION}")
        roi = self._lib.edgercnn_cpu_multi_level_roi_align_f32
        roi.restype = ctypes.c_int
        roi.argtypes = [
            _F32P,
            ctypes.POINTER(_F32P),
            ctypes.c_int32,
            _I64P,
            _I64P,
            ctypes.c_int64,
            ctypes.c_int64,
            ctypes.c_int64,
            _F32P,
            ctypes.c_int32,
            ctypes.c_int32,
            ctypes.c_int32,
            ctypes.c_int32,
            ctypes.c_int32,
            ctypes.c_int32,
            ctypes.c_int32,
            ctypes.c_float,
            _F32P,
        ]
        nms = self._lib.edgercnn_cpu_batched_nms_f32
        nms.restype = ctypes.c_int
        nms.argtypes = [
            _F32P,
            _F32P,
            _I64P,
            ctypes.c_int64,
            ctypes.c_int64,
            ctypes.c_double,
            ctypes.c_float,
            ctypes.c_int64,
            ctypes.c_int64,
            _I64P,
            _I64P,
        ]

    def multi_level_roi_align(
        self,
        rois: np.ndarray,
        features: Sequence[np.ndarray],
        output_height: int,
        output_width: int,
        spatial_scales: Sequence[float],
        sampling_ratio: int,
        aligned: bool | int,
        mode: int = 0,
        canonical_scale: int = 224,
        canonical_level: int = 4,
        eps: float = 1e-6,
    ) -> np.ndarray:
        """RoIAlign plugin op: rois ``[N, R, 4]``, features ``[N, C, H_l, W_l]`` -> ``[N, R, C, oh, ow]``."""
        out_dtype = np.asarray(features[0]).dtype if len(features) else np.dtype(np.float32)
        rois32 = np.ascontiguousarray(rois, dtype=np.float32)
        feats = [np.ascontiguousarray(f, dtype=np.float32) for f in features]
        levels = len(feats)
        if not 1 <= levels <= MAX_LEVELS:
            raise PluginOpsError(f"{ROI_ALIGN_OP}: {levels} feature levels, expected 1..{MAX_LEVELS}")
        if len(spatial_scales) != levels:
            raise PluginOpsError(f"{ROI_ALIGN_OP}: {len(spatial_scales)} spatial_scales for {levels} levels")
        if rois32.ndim != 3 or rois32.shape[2] != 4:
            raise PluginOpsError(f"{ROI_ALIGN_OP}: rois must be [N, R, 4], got {list(rois32.shape)}")
        n, r, _ = rois32.shape
        for f in feats:
            if f.ndim != 4 or f.shape[0] != n or f.shape[1] != feats[0].shape[1]:
                raise PluginOpsError(
                    f"{ROI_ALIGN_OP}: features must be [N={n}, C, H, W] with one C, got {list(f.shape)}"
                )
        if mode not in (0, 1) or output_height < 1 or output_width < 1:
            raise PluginOpsError(
                f"{ROI_ALIGN_OP}: bad mode {mode} or output size {output_height}x{output_width}"
            )
        c = feats[0].shape[1]
        out = np.empty((n, r, c, output_height, output_width), dtype=np.float32)
        feature_ptrs = (_F32P * levels)(*[_ptr(f, _F32P) for f in feats])
        heights = np.array([f.shape[2] for f in feats], dtype=np.int64)
        widths = np.array([f.shape[3] for f in feats], dtype=np.int64)
        scales = np.asarray(spatial_scales, dtype=np.float32)
        status = self._lib.edgercnn_cpu_multi_level_roi_align_f32(
            _ptr(rois32, _F32P),
            feature_ptrs,
            levels,
            _ptr(heights, _I64P),
            _ptr(widths, _I64P),
            n,
            r,
            c,
            _ptr(scales, _F32P),
            output_height,
            output_width,
            sampling_ratio,
            int(bool(aligned)),
            mode,
            canonical_scale,
            canonical_level,
            eps,
            _ptr(out, _F32P),
        )
        if status != 0:
            raise PluginOpsError(f"{ROI_ALIGN_OP}: the CPU kernel rejected its arguments (status {status})")
        return out if out_dtype == np.float32 else out.astype(out_dtype)

    def batched_nms(
        self,
        boxes: np.ndarray,
        scores: np.ndarray,
        idxs: np.ndarray,
        iou_threshold: float,
        score_threshold: float,
        max_output: int,
        pre_nms_top_n: int = -1,
    ) -> tuple[np.ndarray, np.ndarray]:
        """NMS plugin op: ``[N, B, 4]``, ``[N, B]``, ``[N, B]`` -> keep ``[N, K]`` (-1 pad), count ``[N]``."""
        boxes32 = np.ascontiguousarray(boxes, dtype=np.float32)
        scores32 = np.ascontiguousarray(scores, dtype=np.float32)
        idxs64 = np.ascontiguousarray(idxs, dtype=np.int64)
        if boxes32.ndim != 3 or boxes32.shape[2] != 4:
            raise PluginOpsError(f"{NMS_OP}: boxes must be [N, B, 4], got {list(boxes32.shape)}")
        n, b, _ = boxes32.shape
        if scores32.shape != (n, b) or idxs64.shape != (n, b):
            raise PluginOpsError(
                f"{NMS_OP}: scores {list(scores32.shape)} and idxs {list(idxs64.shape)} must be [{n}, {b}]"
            )
        if max_output < 0:
            raise PluginOpsError(f"{NMS_OP}: max_output must be >= 0, got {max_output}")
        keep = np.empty((n, max_output), dtype=np.int64)
        count = np.empty((n,), dtype=np.int64)
        status = self._lib.edgercnn_cpu_batched_nms_f32(
            _ptr(boxes32, _F32P),
            _ptr(scores32, _F32P),
            _ptr(idxs64, _I64P),
            n,
            b,
            float(iou_threshold),
            float(score_threshold),
            max_output,
            pre_nms_top_n,
            _ptr(keep, _I64P),
            _ptr(count, _I64P),
        )
        if status != 0:
            raise PluginOpsError(f"{NMS_OP}: the CPU kernel rejected its arguments (status {status})")
        return keep, count


_KERNELS: CpuKernels | None = None


def load_cpu_kernels() -> CpuKernels:
    """The process-wide CPU kernels (located or built once)."""
    global _KERNELS
    if _KERNELS is None:
        _KERNELS = CpuKernels(find_cpu_library())
    return _KERNELS


# --------------------------------------------------------------------------------------------------
# onnxruntime custom ops and the model rewrite
# --------------------------------------------------------------------------------------------------

# Attribute names, types and defaults are the contract's; onnxruntime-extensions has no float-list
# attribute, so ``spatial_scales`` travels as a comma-separated string.
_ROI_DEFAULTS: dict[str, Any] = ROI_ALIGN.defaults
_NMS_DEFAULTS: dict[str, Any] = BATCHED_NMS.defaults
_REGISTERED = False


def _roi_op_type(levels: int) -> str:
    # onnxruntime-extensions' Python ops have a fixed input count: one op type per level count.
    return ROI_ALIGN.cpu_op_type(levels)


def _extension_attrs(op: PluginOp, types: dict[AttrType, Any]) -> dict[str, Any]:
    """``{attribute: onnxruntime-extensions type}`` of a contract op."""
    return {a.name: types[a.type] for a in op.attributes}


def _register_custom_ops() -> str:
    """Declares the Python custom ops once per process; returns the extensions library path."""
    global _REGISTERED
    try:
        from onnxruntime_extensions import PyCustomOpDef, get_library_path, onnx_op
    except ImportError as exc:
        raise PluginOpsError(
            "running the TensorRT-flavour ONNX on onnxruntime needs onnxruntime-extensions and onnx: "
            "pip install 'edgercnn[plugins-cpu]'"
        ) from exc
    if _REGISTERED:
        return str(get_library_path())
    f32, i64, string = PyCustomOpDef.dt_float, PyCustomOpDef.dt_int64, PyCustomOpDef.dt_string
    types = {AttrType.INT: i64, AttrType.FLOAT: f32, AttrType.FLOATS: string}
    roi_attrs = _extension_attrs(ROI_ALIGN, types)

    def make_roi_op(levels: int) -> None:
        @onnx_op(op_type=_roi_op_type(levels), inputs=[f32] * (levels + 1), outputs=[f32], attrs=roi_attrs)
        def _roi_align(rois: np.ndarray, *features: np.ndarray, **attrs: Any) -> np.ndarray:
            scales = [float(s) for s in attrs["spatial_scales"].split(",")]
            return load_cpu_kernels().multi_level_roi_align(
                rois,
                features,
                attrs["output_height"],
                attrs["output_width"],
                scales,
                attrs["sampling_ratio"],
                attrs["aligned"],
                attrs["mode"],
                attrs["canonical_scale"],
                attrs["canonical_level"],
                attrs["eps"],
            )

    for levels in range(1, MAX_LEVELS + 1):
        make_roi_op(levels)

    nms_attrs = _extension_attrs(BATCHED_NMS, types)

    @onnx_op(op_type=NMS_OP, inputs=[f32, f32, i64], outputs=[i64, i64], attrs=nms_attrs)
    def _batched_nms(boxes: np.ndarray, scores: np.ndarray, idxs: np.ndarray, **attrs: Any) -> tuple:
        return load_cpu_kernels().batched_nms(
            boxes,
            scores,
            idxs,
            attrs["iou_threshold"],
            attrs["score_threshold"],
            attrs["max_output"],
            attrs["pre_nms_top_n"],
        )

    _REGISTERED = True
    return str(get_library_path())


def _attributes(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _known_elem_types(model: Any) -> dict[str, int]:
    graph = model.graph
    types: dict[str, int] = {t.name: t.data_type for t in graph.initializer}
    for value in (*graph.input, *graph.output, *graph.value_info):
        if value.type.HasField("tensor_type"):
            types[value.name] = value.type.tensor_type.elem_type
    return types


def _elem_types(model: Any, names: Sequence[str]) -> dict[str, int]:
    types = _known_elem_types(model)
    if all(n in types for n in names):
        return types
    try:
        import onnx

        types.update(_known_elem_types(onnx.shape_inference.infer_shapes(model)))
    except Exception:
        pass
    return types


def rewrite_plugin_nodes(model: Any) -> int:
    """Rewrites the ``trt.plugins`` nodes of ``model`` (an ``onnx.ModelProto``, in place) to the custom ops.

    Float16 tensors are cast to float32 around the op (the kernels accumulate in float32 anyway) and
    int32 ``idxs`` to int64. Returns the number of rewritten nodes.
    """
    from onnx import TensorProto, helper

    graph = model.graph
    plugin_nodes = [n for n in graph.node if n.domain == PLUGIN_DOMAIN]
    stray = [n.op_type for n in plugin_nodes if n.op_type not in (ROI_ALIGN_OP, NMS_OP)]
    if stray:
        raise PluginOpsError(f"unknown plugin node types {sorted(set(stray))} in domain {PLUGIN_DOMAIN}")
    names = [name for n in plugin_nodes for name in (*n.input, *n.output)]
    types = _elem_types(model, names)
    new_nodes: list[Any] = []
    for node in graph.node:
        if node.domain != PLUGIN_DOMAIN:
            new_nodes.append(node)
            continue
        attrs = _attributes(node)
        tag = node.name or node.output[0]

        def cast(name: str, to: int, suffix: str, tag: str = tag) -> str:
            out = f"{name}__edgercnn_{suffix}"
            new_nodes.append(helper.make_node("Cast", [name], [out], to=to, name=f"{tag}/cast_{suffix}"))
            return out

        if node.op_type == ROI_ALIGN_OP:
            levels = len(node.input) - 1
            if not 1 <= levels <= MAX_LEVELS:
                raise PluginOpsError(f"node {tag}: {levels} feature inputs, expected 1..{MAX_LEVELS}")
            half = types.get(node.input[0], TensorProto.FLOAT) == TensorProto.FLOAT16
            inputs = [cast(x, TensorProto.FLOAT, f"in{i}") if half else x for i, x in enumerate(node.input)]
            output = f"{node.output[0]}__edgercnn_f32" if half else node.output[0]
            kwargs = {**_ROI_DEFAULTS, **{k: v for k, v in attrs.items() if k in ROI_ALIGN.attribute_names}}
            kwargs["aligned"] = int(kwargs["aligned"])
            if "spatial_scales" not in attrs:
                raise PluginOpsError(f"node {tag}: attribute spatial_scales is missing")
            kwargs["spatial_scales"] = ",".join(repr(float(np.float32(s))) for s in attrs["spatial_scales"])
            new_nodes.append(
                helper.make_node(
                    _roi_op_type(levels), inputs, [output], name=tag, domain=CONTRIB_DOMAIN, **kwargs
                )
            )
            if half:
                new_nodes.append(
                    helper.make_node(
                        "Cast", [output], [node.output[0]], to=TensorProto.FLOAT16, name=f"{tag}/cast_out"
                    )
                )
        else:
            if len(node.input) != 3 or len(node.output) != 2:
                raise PluginOpsError(f"node {tag}: {NMS_OP} needs 3 inputs and 2 outputs")
            boxes, scores, idxs = node.input
            if types.get(boxes, TensorProto.FLOAT) != TensorProto.FLOAT:
                boxes = cast(boxes, TensorProto.FLOAT, "boxes")
            if types.get(scores, TensorProto.FLOAT) != TensorProto.FLOAT:
                scores = cast(scores, TensorProto.FLOAT, "scores")
            if types.get(idxs, TensorProto.INT64) != TensorProto.INT64:
                idxs = cast(idxs, TensorProto.INT64, "idxs")
            missing = [k for k in BATCHED_NMS.required if k not in attrs]
            if missing:
                raise PluginOpsError(f"node {tag}: attributes {missing} are missing")
            kwargs = {**_NMS_DEFAULTS, **{k: v for k, v in attrs.items() if k in BATCHED_NMS.attribute_names}}
            new_nodes.append(
                helper.make_node(
                    NMS_OP,
                    [boxes, scores, idxs],
                    list(node.output),
                    name=tag,
                    domain=CONTRIB_DOMAIN,
                    **kwargs,
                )
            )
    del graph.node[:]
    graph.node.extend(new_nodes)
    opsets = [o for o in model.opset_import if o.domain not in (PLUGIN_DOMAIN, CONTRIB_DOMAIN)]
    del model.opset_import[:]
    model.opset_import.extend(opsets)
    model.opset_import.append(helper.make_opsetid(CONTRIB_DOMAIN, 1))
    return len(plugin_nodes)


def create_session(
    model_path: str | os.PathLike[str],
    sess_options: Any = None,
    providers: Sequence[Any] | None = None,
) -> Any:
    """An ``onnxruntime.InferenceSession`` for a TensorRT-flavour (or portable) ONNX file.

    Plugin nodes are mapped to the CPU kernels; a file without plugin nodes loads unchanged.
    """
    try:
        import onnx
    except ImportError as exc:
        raise PluginOpsError(
            "loading the TensorRT-flavour ONNX needs onnx: pip install 'edgercnn[plugins-cpu]'"
        ) from exc
    path = Path(model_path)
    if not path.is_file():
        raise ModelFormatError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise ModelFormatError(f"{path}: not a readable ONNX model ({exc})") from exc
    register: Callable[[Any], None] | None = None
    source: str | bytes = str(path)  # no plugin nodes: onnxruntime reads the file itself, unchanged
    if any(n.domain == PLUGIN_DOMAIN for n in model.graph.node):
        library = _register_custom_ops()
        load_cpu_kernels()
        rewrite_plugin_nodes(model)
        source = model.SerializeToString()

        def register_cpu_kernels(options: Any) -> None:
            options.register_custom_ops_library(library)

        register = register_cpu_kernels
    try:
        return open_session(source, options=sess_options, providers=providers, register_custom_ops=register)
    except EdgercnnError:
        raise  # e.g. onnxruntime missing: keep its install hint
    except Exception as exc:
        raise ModelFormatError(f"{path}: onnxruntime cannot load the rewritten model ({exc})") from exc
