"""``runtime/contract.py`` against every place that implements it: the C++ plugin sources, the CPU
custom ops, the ONNX translations, the exporter's config writer and the runtime's postprocess."""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import math
import re
import sys
import types
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from edgercnn.export import metadata, ops
from edgercnn.export.deploy import DeployOptions, DeployRCNN
from edgercnn.runtime import contract, plugin_ops
from edgercnn.runtime import postprocess as postprocess_module
from edgercnn.runtime.config import ModelConfig
from edgercnn.runtime.contract import (
    BATCHED_NMS,
    CPU_OP_TYPES,
    HEADS,
    PLUGIN_DOMAIN,
    PLUGIN_NODE_ATTRIBUTES,
    PLUGIN_OPS,
    ROI_ALIGN,
    AttrType,
    Kind,
    PluginOp,
)
from edgercnn.runtime.detections import Detections
from edgercnn.runtime.preprocess import compute_transform
from onnx import TensorProto, helper

from tests.builders.fixed_onnx import identity_model, tiny_config, tiny_outputs
from tests.builders.op_inputs import random_boxes, random_features, random_rois
from tests.builders.torch_models import tiny_model
from tests.paths import REPO_ROOT

PLUGIN_SRC = REPO_ROOT / "plugins" / "src"
ONNX_TYPES = {
    AttrType.INT: onnx.AttributeProto.INT,
    AttrType.FLOAT: onnx.AttributeProto.FLOAT,
    AttrType.FLOATS: onnx.AttributeProto.FLOATS,
}

# --- (a) the C++ TensorRT plugins -----------------------------------------------------------------

FIELD = re.compile(r'mFields\.emplace_back\("(\w+)",\s*nullptr,\s*PluginFieldType::k(\w+),\s*(\w+)\)')
SERIALIZED = re.compile(r'mSerialized\.emplace_back\("(\w+)",')
PARSED = re.compile(r'(?:get_int|get_float|get_floats|read_int|has)\("(\w+)"')
STRUCT_DEFAULT = re.compile(r"^\s*\w+\s+(\w+)\{([^}]+)\};", re.MULTILINE)


def cpp_plugins() -> dict[str, dict[str, Any]]:
    """Per plugin (by its ``kName``): creator fields, serialized fields, parsed names, header defaults."""
    found = {}
    for source in sorted((PLUGIN_SRC / "trt").glob("*_plugin.cpp")):
        text = source.read_text()
        name = re.search(r'constexpr char const\* kName = "(\w+)";', text)
        assert name, f"{source.name}: no kName"
        header = source.with_suffix(".h").read_text()
        found[name.group(1)] = {
            "fields": FIELD.findall(text),
            "serialized": SERIALIZED.findall(text),
            "parsed": set(PARSED.findall(text)),
            "defaults": dict(STRUCT_DEFAULT.findall(header)),
        }
    return found


def cpp_type(kind: str, length: str) -> AttrType:
    if kind == "INT32" and length == "1":
        return AttrType.INT
    if kind == "FLOAT32":
        return AttrType.FLOAT if length == "1" else AttrType.FLOATS
    raise AssertionError(f"PluginFieldType k{kind}[{length}] is not in the contract")


def cpp_number(text: str) -> float:
    text = text.strip()
    if text == "-std::numeric_limits<float>::infinity()":
        return -math.inf
    return float(text.rstrip("f"))


# Build-time state a plugin serializes into the engine after the contract's attributes; never an
# ONNX attribute, so not in getFieldNames(): the NMS workspace profile (plugins/README.md section 5).
ENGINE_STATE_FIELDS = {
    "EdgeRCNN_BatchedNMS": ["workspace_max_batch", "workspace_min_boxes", "workspace_max_boxes"],
}


def check_cpp_plugin(op: PluginOp, cpp: dict[str, Any]) -> None:
    fields = [(name, cpp_type(kind, length)) for name, kind, length in cpp["fields"]]
    assert fields == [(a.name, a.type) for a in op.attributes], f"{op.name}: getFieldNames()"
    state = ENGINE_STATE_FIELDS.get(op.name, [])
    assert cpp["serialized"] == [*op.attribute_names, *state], f"{op.name}: getFieldsToSerialize()"
    assert cpp["parsed"] == set(op.attribute_names) | set(state), f"{op.name}: createPlugin() reads"
    for name, default in op.defaults.items():
        assert cpp_number(cpp["defaults"][name]) == pytest.approx(default), f"{op.name}.{name} default"


def test_cpp_plugins_implement_the_contracts_ops_and_attributes():
    plugins = cpp_plugins()
    assert sorted(plugins) == sorted(PLUGIN_OPS)
    for name, op in PLUGIN_OPS.items():
        check_cpp_plugin(op, plugins[name])


def test_cpp_plugins_register_the_contracts_namespace_version_and_level_limit():
    common = (PLUGIN_SRC / "trt" / "plugin_common.h").read_text()
    assert re.search(r'kPluginNamespace = "(\w+)"', common).group(1) == contract.PLUGIN_NAMESPACE
    assert re.search(r'kPluginVersion = "(\w+)"', common).group(1) == contract.PLUGIN_VERSION
    cuda_api = (PLUGIN_SRC / "common" / "edgercnn_cuda_api.h").read_text()
    assert int(re.search(r"#define EDGERCNN_MAX_LEVELS (\d+)", cuda_api).group(1)) == contract.MAX_LEVELS
    cpu_api = (PLUGIN_SRC / "common" / "edgercnn_cpu_api.h").read_text()
    assert (
        int(re.search(r"#define EDGERCNN_CPU_API_VERSION (\d+)", cpu_api).group(1))
        == plugin_ops.CPU_API_VERSION
    )


def test_a_plugin_drifting_from_the_contract_is_caught():
    cpp = cpp_plugins()[BATCHED_NMS.name]
    renamed = [("iou", *rest) if name == "iou_threshold" else (name, *rest) for name, *rest in cpp["fields"]]
    with pytest.raises(AssertionError, match="getFieldNames"):
        check_cpp_plugin(BATCHED_NMS, {**cpp, "fields": renamed})
    with pytest.raises(AssertionError, match="default"):
        check_cpp_plugin(BATCHED_NMS, {**cpp, "defaults": {**cpp["defaults"], "pre_nms_top_n": "0"}})


def test_plugins_readme_lists_the_contracts_ops_and_attributes():
    text = (REPO_ROOT / "plugins" / "README.md").read_text()
    for section in re.split(r"\n## ", text)[1:3]:
        row = re.search(r"op_type `(\w+)`, domain `([\w.]+)`, attributes (.*) \|", section)
        op = PLUGIN_OPS[row.group(1)]
        assert row.group(2) == PLUGIN_DOMAIN
        assert dict(re.findall(r'`(\w+)="([^"]*)"`', row.group(3))) == dict(PLUGIN_NODE_ATTRIBUTES)
        table = section.split("\nAttributes\n", 1)[1].strip().split("\n\n")[0]
        names = [n for line in table.splitlines()[2:] for n in re.findall(r"`(\w+)`", line.split("|")[1])]
        assert names == list(op.attribute_names)


# --- (b) the CPU custom ops of runtime/plugin_ops.py ----------------------------------------------


def fake_extensions(registered: dict[str, dict[str, Any]]) -> types.ModuleType:
    """An ``onnxruntime_extensions`` stand-in that records what ``onnx_op`` is asked to register."""
    module = types.ModuleType("onnxruntime_extensions")

    class PyCustomOpDef:
        dt_float, dt_int64, dt_string = "float", "int64", "string"

    def onnx_op(op_type: str, inputs: list, outputs: list, attrs: dict):
        registered[op_type] = {"inputs": len(inputs), "outputs": len(outputs), "attrs": attrs}
        return lambda function: function

    module.PyCustomOpDef = PyCustomOpDef  # type: ignore[attr-defined]
    module.onnx_op = onnx_op  # type: ignore[attr-defined]
    module.get_library_path = lambda: "fake-extensions.so"  # type: ignore[attr-defined]
    return module


def test_cpu_custom_ops_registered_are_the_contracts(monkeypatch):
    registered: dict[str, dict[str, Any]] = {}
    monkeypatch.setitem(sys.modules, "onnxruntime_extensions", fake_extensions(registered))
    monkeypatch.setattr(plugin_ops, "_REGISTERED", False)
    assert plugin_ops._register_custom_ops() == "fake-extensions.so"
    assert sorted(registered) == sorted(CPU_OP_TYPES)
    for op in PLUGIN_OPS.values():
        for levels, op_type in enumerate(op.cpu_op_types, start=1):
            entry = registered[op_type]
            assert list(entry["attrs"]) == list(op.attribute_names)
            assert entry["inputs"] == (levels + 1 if op.cpu_op_per_level else len(op.inputs))
            assert entry["outputs"] == len(op.outputs)


def plugin_model(levels: int = 3) -> onnx.ModelProto:
    """Both plugin nodes as the exporter writes them, built from the contract alone."""
    feats = [f"f{i}" for i in range(levels)]
    roi = helper.make_node(
        ROI_ALIGN.name,
        ["rois", *feats],
        ["pooled"],
        domain=PLUGIN_DOMAIN,
        output_height=7,
        output_width=7,
        spatial_scales=[1 / 4, 1 / 8, 1 / 16][:levels],
        **PLUGIN_NODE_ATTRIBUTES,
    )
    nms = helper.make_node(
        BATCHED_NMS.name,
        ["boxes", "scores", "idxs"],
        ["keep", "count"],
        domain=PLUGIN_DOMAIN,
        iou_threshold=0.5,
        max_output=10,
        **PLUGIN_NODE_ATTRIBUTES,
    )
    f32 = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info(n, f32, None) for n in ("rois", *feats, "boxes", "scores")]
    inputs.append(helper.make_tensor_value_info("idxs", TensorProto.INT64, None))
    outputs = [helper.make_tensor_value_info(n, f32, None) for n in ("pooled", "keep", "count")]
    graph = helper.make_graph([roi, nms], "plugins", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_plugin_nodes_are_rewritten_to_the_contracts_cpu_ops_with_defaults_filled_in():
    model = plugin_model(levels=3)
    assert plugin_ops.rewrite_plugin_nodes(model) == 2
    nodes = {n.op_type: n for n in model.graph.node}
    assert sorted(nodes) == sorted([ROI_ALIGN.cpu_op_type(3), BATCHED_NMS.cpu_op_type()])
    for op, levels in ((ROI_ALIGN, 3), (BATCHED_NMS, 0)):
        node = nodes[op.cpu_op_type(levels)]
        assert node.domain == contract.CONTRIB_DOMAIN
        values = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        assert set(values) == set(op.attribute_names)
        for name, default in op.defaults.items():
            assert values[name] == pytest.approx(default)


# --- (c) the ONNX translations --------------------------------------------------------------------


class BothOps(torch.nn.Module):
    def forward(self, rois, scores, idxs, *features):
        pooled = ops.multi_level_roi_align(rois, features, (7, 7), [0.25, 0.125, 0.0625], 2, aligned=True)
        keep, count = ops.batched_nms(rois, scores, idxs, 0.5, 0.05, 20, 30)
        return pooled, keep, count


LEVELS = 3


@pytest.fixture(scope="module")
def tensorrt_graph() -> onnx.ModelProto:
    _, scores, idxs = random_boxes(1, 30, seed=3)
    example = (random_rois(1, 30), scores, idxs, *random_features(1, LEVELS))
    with contextlib.redirect_stdout(io.StringIO()):
        program = torch.onnx.export(
            BothOps().eval(), example, dynamo=True, custom_translation_table=ops.translation_table("tensorrt")
        )
    return program.model_proto


def test_tensorrt_translation_emits_the_contracts_nodes(tensorrt_graph):
    plugin_nodes = [n for n in tensorrt_graph.graph.node if n.domain != ""]
    assert sorted(n.op_type for n in plugin_nodes) == sorted(PLUGIN_OPS)
    opsets = {o.domain: o.version for o in tensorrt_graph.opset_import}
    assert opsets[PLUGIN_DOMAIN] == contract.PLUGIN_OPSET
    for node in plugin_nodes:
        op = PLUGIN_OPS[node.op_type]
        assert node.domain == PLUGIN_DOMAIN
        attributes = {a.name: a for a in node.attribute}
        expected = {name: onnx.AttributeProto.STRING for name in PLUGIN_NODE_ATTRIBUTES}
        expected.update({a.name: ONNX_TYPES[a.type] for a in op.attributes})
        assert {name: a.type for name, a in attributes.items()} == expected
        for name, value in PLUGIN_NODE_ATTRIBUTES.items():
            assert helper.get_attribute_value(attributes[name]).decode() == value
        fixed = [t for t in op.inputs if not t.variadic]
        assert len(node.input) == len(fixed) + (LEVELS if len(fixed) < len(op.inputs) else 0)
        assert len(node.output) == len(op.outputs)


def test_torch_ops_take_the_contracts_arguments_in_order():
    for op in PLUGIN_OPS.values():
        namespace, name = op.torch_op.split("::")
        schema = getattr(getattr(torch.ops, namespace), name).default._schema
        assert [a.name for a in schema.arguments] == [t.name for t in op.inputs] + list(op.attribute_names)
        assert len(schema.returns) == len(op.outputs)


def test_op_wrapper_defaults_are_the_contracts():
    """The Python wrappers spell their defaults in their signatures: they must be the contract's."""
    as_attribute = {"mode": contract.ROI_ALIGN_MODES.__getitem__, "aligned": int}
    for wrapper, op in ((ops.multi_level_roi_align, ROI_ALIGN), (ops.batched_nms, BATCHED_NMS)):
        defaults = {
            name: as_attribute.get(name, lambda v: v)(p.default)
            for name, p in inspect.signature(wrapper).parameters.items()
            if p.default is not inspect.Parameter.empty
        }
        assert defaults and defaults == {k: v for k, v in op.defaults.items() if k in defaults}
        assert set(op.defaults) - set(defaults) <= {"sampling_ratio", "score_threshold"}  # no default


# --- (d) the config schema: what the exporter writes is what the runtime reads --------------------

CONFIG_KEYS = [
    "format_version",
    "architecture",
    "builder",
    "class_names",
    "keypoint_names",
    "input",
    "batch",
    "outputs",
    "detections_per_img",
    "thresholds",
    "flavour",
    "precision",
    "versions",
    "source",
]
INPUT_KEYS = [
    "name",
    "dtype",
    "color",
    "height",
    "width",
    "valid_height",
    "valid_width",
    "source_height",
    "source_width",
    "min_size",
    "max_size",
    "size_divisible",
    "mean",
    "std",
]


def unusual_config(kind: str) -> dict[str, Any]:
    """A tiny config whose every value differs from the reader's defaults, so a key that
    ``to_dict`` forgot cannot come back by luck."""
    data = tiny_config(kind, valid=(80, 120), dtype="uint8", batch="dynamic")
    data["input"].update(name="frames", size_divisible=16, source_height=70, source_width=100)
    data.update(builder="unusual", flavour="tensorrt", precision="fp16", detections_per_img=7)
    data.update(thresholds={"box_score_thresh": 0.25}, versions={"edgercnn": "9"}, source={"checkpoint": "c"})
    data.pop("mask_size")
    if kind == "maskrcnn":
        data["mask_size"] = 14
    if kind == "keypointrcnn":
        data["num_keypoints"] = 17
    return data


@pytest.mark.parametrize("kind", [k.value for k in Kind])
def test_config_round_trips_through_to_dict(kind):
    raw = unusual_config(kind)
    config = ModelConfig.from_dict(raw, "unusual.onnx")
    written = config.to_dict()
    assert written == raw
    assert json.loads(json.dumps(written)) == written  # plain JSON types only (lists, not tuples)
    assert ModelConfig.from_dict(written, "unusual.onnx") == config


@pytest.fixture(scope="module", params=[k.value for k in Kind])
def exported_config(request, tmp_path_factory):
    """What ``build_config`` writes for a tiny model, attached to an ONNX file the runtime reads."""
    deploy = DeployRCNN(tiny_model(request.param), DeployOptions(90, 120, "uint8"))
    written = metadata.build_config(
        deploy,
        builder=f"tiny_{request.param}",
        class_names=metadata.default_class_names(deploy.num_classes),
        batch="dynamic",
        flavour="tensorrt",
        checkpoint="tiny.pth",
        checkpoint_sha256="0" * 64,
    )
    model = identity_model()
    metadata.attach(model, written)
    path = tmp_path_factory.mktemp(request.param) / "model.onnx"
    onnx.save(model, str(path))
    return request.param, written, path, getattr(deploy, "num_keypoints", None)


def test_exported_config_reads_back_to_what_was_written(exported_config):
    _, written, path, _ = exported_config
    config = ModelConfig.from_model_file(path)
    assert config.to_dict() == written
    assert list(config.to_dict()) == list(written)
    assert json.loads(json.dumps(written)) == written


def test_exported_config_has_the_contracts_layout(exported_config):
    kind, written, _, num_keypoints = exported_config
    head = HEADS[Kind(kind)]
    assert list(written) == CONFIG_KEYS + list(head.config_keys)
    assert list(written["input"]) == INPUT_KEYS
    assert written["outputs"] == list(head.outputs)
    assert (written["batch"], written["input"]["color"]) == (contract.DYNAMIC_BATCH, "BGR")
    assert written["format_version"] == contract.FORMAT_VERSION
    if kind == "maskrcnn":
        assert written["mask_size"] == contract.MASK_SIZE
    if kind == "keypointrcnn":
        assert written["num_keypoints"] == num_keypoints > 0


# --- (e) the head table against the runtime's postprocess -----------------------------------------


class ReadRecorder(dict):
    """The graph outputs, remembering which ones the postprocess reads."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)


@pytest.mark.parametrize("kind", [k.value for k in Kind])
def test_postprocess_reads_exactly_the_heads_outputs_and_runs_its_step(kind, monkeypatch):
    head = HEADS[Kind(kind)]
    raw = tiny_config(kind)
    config = ModelConfig.from_dict(raw)
    outputs = ReadRecorder(tiny_outputs(raw, 3))
    steps = [h.postprocess for h in HEADS.values() if h.postprocess]
    calls = {step: 0 for step in steps}
    for step in steps:
        original = getattr(postprocess_module, step)

        def counted(*args: Any, _step: str = step, _original: Any = original, **kwargs: Any) -> Any:
            calls[_step] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(postprocess_module, step, counted)
    (detections,) = postprocess_module.postprocess(outputs, [compute_transform(96, 128, config)], config)
    assert outputs.read == set(head.outputs)
    assert calls == {step: int(step == head.postprocess) for step in steps}
    assert len(detections.boxes) == 3


def test_head_table_matches_the_evaluation_and_the_reader():
    coco_eval = pytest.importorskip("edgercnn.export.coco_eval")
    gt = {"images": [{"id": 1, "width": 8, "height": 8}], "annotations": [],
          "categories": [{"id": 1, "name": "person", "keypoints": ["nose"]}]}  # fmt: skip
    nothing = Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64),
                         ("__background__", "person"), (8, 8))  # fmt: skip
    for kind, head in HEADS.items():  # the build host's AP scores exactly the head's IoU types
        assert tuple(coco_eval.coco_aps(kind.value, gt, [nothing])) == head.iou_types
    assert set(HEADS) == set(Kind) and tuple(k.value for k in HEADS) == contract.ARCHITECTURES
    for kind, head in HEADS.items():
        assert head.kind == kind and head.outputs[: len(contract.BASE_OUTPUTS)] == contract.BASE_OUTPUTS
        raw = {**tiny_config(kind.value), "outputs": list(head.outputs)}
        assert ModelConfig.from_dict(raw).head == head
    assert all(contract.head_of(k.value) is HEADS[k] for k in Kind)
    with pytest.raises(ValueError):
        contract.head_of("yolo")
