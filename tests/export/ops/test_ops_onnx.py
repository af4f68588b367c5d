"""ONNX translations of the custom ops: the portable flavour run in onnxruntime against the reference
kernels, and the TensorRT flavour's plugin nodes against the contract in plugins/README.md."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from edgercnn.export.ops import batched_nms, multi_level_roi_align, onnx_translation, translation_table

from tests.builders.op_inputs import STRIDES, random_boxes, random_features, random_rois
from tests.paths import REPO_ROOT

pytestmark = pytest.mark.filterwarnings("ignore:# The axis name:UserWarning")  # dynamic batch naming

CONTRACT = REPO_ROOT / "plugins" / "README.md"


class RoIAlignModule(torch.nn.Module):
    def __init__(
        self, levels: int, output_size, sampling_ratio: int, aligned: bool, mode: str, canonical: int
    ):
        super().__init__()
        self.scales = [1.0 / s for s in STRIDES[:levels]]
        self.kwargs = dict(aligned=aligned, mode=mode, canonical_scale=canonical)
        self.output_size, self.sampling_ratio = output_size, sampling_ratio

    def forward(self, rois, *features):
        return multi_level_roi_align(
            rois, features, self.output_size, self.scales, self.sampling_ratio, **self.kwargs
        )


class NMSModule(torch.nn.Module):
    def __init__(self, iou: float, score_threshold: float, max_output: int, pre_nms_top_n: int):
        super().__init__()
        self.args = (iou, score_threshold, max_output, pre_nms_top_n)

    def forward(self, boxes, scores, idxs):
        return batched_nms(boxes, scores, idxs, *self.args)


def export_onnx(
    module: torch.nn.Module, example: tuple, flavour: str, path: Path, fixed_args: int
) -> onnx.ModelProto:
    """dynamo=True export with the custom translation table and a dynamic batch dimension;
    ``forward`` takes ``fixed_args`` named tensors, then ``*features``."""
    batch = torch.export.Dim("batch", min=1, max=8)
    dynamic = [{0: batch} for _ in example[:fixed_args]]
    if len(example) > fixed_args:
        dynamic.append(tuple({0: batch} for _ in example[fixed_args:]))
    with contextlib.redirect_stdout(io.StringIO()):
        program = torch.onnx.export(
            module.eval(),
            example,
            dynamo=True,
            custom_translation_table=translation_table(flavour),
            dynamic_shapes=tuple(dynamic),
        )
    program.save(str(path))
    return onnx.load(str(path))


ROI_CONFIGS = {
    "4 levels, adaptive sampling": dict(
        levels=4, output_size=(7, 7), sampling_ratio=0, aligned=False, mode="avg"
    ),
    "5 levels, aligned, 14x14": dict(
        levels=5, output_size=(14, 14), sampling_ratio=2, aligned=True, mode="avg"
    ),
    "1 level, aligned, adaptive": dict(
        levels=1, output_size=(7, 7), sampling_ratio=-1, aligned=True, mode="avg"
    ),
    "4 levels, non-square, ratio 2": dict(
        levels=4, output_size=(14, 10), sampling_ratio=2, aligned=False, mode="avg"
    ),
    "4 levels, roi_pool": dict(levels=4, output_size=(7, 7), sampling_ratio=0, aligned=False, mode="max"),
    "1 level, roi_pool": dict(levels=1, output_size=(7, 7), sampling_ratio=0, aligned=False, mode="max"),
}


@pytest.fixture(scope="module", params=list(ROI_CONFIGS), ids=list(ROI_CONFIGS))
def portable_roi_align(request, tmp_path_factory):
    config = ROI_CONFIGS[request.param]
    module = RoIAlignModule(canonical=56, **config)
    example = (random_rois(2, 300), *random_features(2, config["levels"]))
    path = tmp_path_factory.mktemp("roi") / "roi_align.onnx"
    model = export_onnx(module, example, "portable", path, fixed_args=1)
    return module, config, model, ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("batch", [1, 3])
def test_portable_roi_align_in_onnxruntime_matches_reference(portable_roi_align, batch):
    module, config, _, session = portable_roi_align
    torchvision_defined = config["levels"] > 1 or not config["aligned"] or config["sampling_ratio"] > 0
    rois = random_rois(batch, 300, seed=batch + 20, negative_area=torchvision_defined)
    features = random_features(batch, config["levels"], channels=3, seed=batch + 30)
    expected = module(rois, *features).numpy()
    names = [i.name for i in session.get_inputs()]
    got = session.run(None, dict(zip(names, [t.numpy() for t in (rois, *features)], strict=True)))[0]
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-5


def test_portable_roi_align_uses_only_standard_onnx_ops(portable_roi_align):
    _, config, model, _ = portable_roi_align
    onnx.checker.check_model(model, full_check=True)
    assert {node.domain for node in model.graph.node} <= {"", "ai.onnx"}
    op_types = {node.op_type for node in model.graph.node}
    assert ("MaxRoiPool" if config["mode"] == "max" else "RoiAlign") in op_types


def test_portable_roi_align_select_strategy_matches_reference(tmp_path, monkeypatch):
    """The alternative per-level strategy (pool every level, pick with Where) gives the same numbers.
    It pools every RoI on every level, so a fixed sampling ratio (adaptive sampling of large boxes
    on fine levels, or of negative-size boxes with aligned=True, is what makes it slow or fail)."""
    monkeypatch.setattr(onnx_translation, "PORTABLE_LEVEL_STRATEGY", "select")
    module = RoIAlignModule(4, (7, 7), 2, True, "avg", 56)
    example = (random_rois(3, 100, seed=50), *random_features(3, 4, seed=51))
    model = export_onnx(module, example, "portable", tmp_path / "select.onnx", fixed_args=1)
    assert "NonZero" not in {node.op_type for node in model.graph.node}
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {i.name: t.numpy() for i, t in zip(session.get_inputs(), example, strict=True)})[
        0
    ]
    assert np.abs(got - module(*example).numpy()).max() <= 1e-5


def test_portable_roi_align_float16_matches_reference_computed_in_float32(tmp_path):
    module = RoIAlignModule(4, (7, 7), 2, False, "avg", 56)
    example = (random_rois(2, 100, seed=52).half(), *(f.half() for f in random_features(2, 4, seed=53)))
    model = export_onnx(module, example, "portable", tmp_path / "fp16.onnx", fixed_args=1)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {i.name: t.numpy() for i, t in zip(session.get_inputs(), example, strict=True)})[
        0
    ]
    expected = module(*example)
    assert got.dtype == np.float16 and expected.dtype == torch.float16
    # both round the same float32 result to float16: at most one float16 step apart
    np.testing.assert_allclose(got.astype(np.float32), expected.float().numpy(), rtol=1e-3, atol=1e-4)


class LevelProbe(torch.nn.Module):
    """Pools 1x1 (one sample, at the box centre) from constant maps holding the level index."""

    def forward(self, rois, *features):
        return multi_level_roi_align(rois, features, (1, 1), [1 / 4, 1 / 8, 1 / 16, 1 / 32], 1)


def test_portable_level_mapping_differs_from_torchvision_only_within_1e5_of_a_level_boundary(tmp_path):
    """Boxes around the level boundaries (sqrt(area) = 112, 224, 448 px): torch's CPU vector sqrt
    and log2 are not correctly rounded, so within ~1e-6 of a boundary torchvision's own level
    depends on the CPU; ONNX (correctly rounded sqrt, log in float64) may differ only there."""
    gen = torch.Generator().manual_seed(60)
    count = 30000
    boundary = torch.tensor([112.0, 224.0, 448.0]).repeat(count // 3)
    relative = (torch.rand(count, generator=gen) - 0.5) * 2e-4 * torch.rand(count, generator=gen) ** 4
    side = boundary * (1 + relative)
    width = side * torch.exp(torch.rand(count, generator=gen) - 0.5)  # non-square, same area
    rois = torch.stack([torch.zeros(count), torch.zeros(count), width, side * side / width], dim=-1)[None]
    features = [torch.full((1, 1, 100, 100), float(level)) for level in range(4)]  # cover every centre
    expected = LevelProbe()(rois, *features).reshape(-1).round()  # bilinear weights sum to 1 - ulp
    assert set(expected.tolist()) == {0.0, 1.0, 2.0, 3.0}
    model = export_onnx(LevelProbe(), (rois, *features), "portable", tmp_path / "levels.onnx", fixed_args=1)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {i.name: t.numpy() for i, t in zip(session.get_inputs(), (rois, *features), strict=True)}
    got = np.round(session.run(None, feeds)[0].reshape(-1))
    area = (rois[0, :, 2] * rois[0, :, 3]).double()
    distance = (torch.log2(area.sqrt() / 224) + 1e-6).remainder(1.0)  # to the boundary below
    distance = torch.minimum(distance, 1 - distance).numpy()
    differs = got != expected.numpy()
    assert (distance < 1e-5).sum() > 100 and (distance >= 1e-5).sum() > 10000  # both kinds present
    assert (distance[differs] < 1e-5).all()


NMS_CONFIGS = {
    "iou 0.2": (0.2, 0.05, 100, -1),
    "iou 0.5": (0.5, 0.05, 100, -1),
    "iou 0.8": (0.8, 0.05, 100, -1),
    "iou 0.7, pre_nms_top_n 300": (0.7, 0.0, 200, 300),
}


@pytest.fixture(scope="module", params=list(NMS_CONFIGS), ids=list(NMS_CONFIGS))
def portable_nms(request, tmp_path_factory):
    module = NMSModule(*NMS_CONFIGS[request.param])
    example = random_boxes(2, 1000, seed=0)
    path = tmp_path_factory.mktemp("nms") / "nms.onnx"
    model = export_onnx(module, example, "portable", path, fixed_args=3)
    return module, model, ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_nms_and_compare(module, session, boxes, scores, idxs):
    keep, count = module(boxes, scores, idxs)
    feeds = {"boxes": boxes.numpy(), "scores": scores.numpy(), "idxs": idxs.numpy()}
    got_keep, got_count = session.run(None, feeds)
    np.testing.assert_array_equal(got_count, count.numpy())
    np.testing.assert_array_equal(got_keep, keep.numpy())  # valid entries and the -1 padding
    return count


@pytest.mark.parametrize("batch", [1, 3])
def test_portable_nms_in_onnxruntime_matches_reference_on_1000_boxes(portable_nms, batch):
    module, _, session = portable_nms
    boxes, scores, idxs = random_boxes(batch, 1000, seed=batch + 40, classes=5)
    count = run_nms_and_compare(module, session, boxes, scores, idxs)
    assert (count > 0).all()


def test_portable_nms_keeps_tie_order(portable_nms):
    module, _, session = portable_nms
    run_nms_and_compare(module, session, *random_boxes(3, 1000, seed=41, ties=True, classes=2))


def test_portable_nms_with_no_candidates_gives_padding(portable_nms):
    module, _, session = portable_nms
    boxes, scores, idxs = random_boxes(3, 1000, seed=42)
    scores[0] = -torch.inf
    scores[2] = 0.0
    count = run_nms_and_compare(module, session, boxes, scores, idxs)
    assert count[0] == 0 and count[2] == 0


def test_portable_nms_with_many_classes(portable_nms):
    module, _, session = portable_nms
    boxes, scores, idxs = random_boxes(1, 1000, seed=43, classes=90)
    run_nms_and_compare(module, session, boxes * 5 + 100, scores, idxs + 1)


def test_portable_nms_with_pre_nms_top_n_zero_keeps_nothing(tmp_path):
    module = NMSModule(0.5, 0.05, 10, 0)
    example = random_boxes(2, 30, seed=44)
    model = export_onnx(module, example, "portable", tmp_path / "nms0.onnx", fixed_args=3)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    count = run_nms_and_compare(module, session, *example)
    assert (count == 0).all()


def test_portable_nms_uses_only_standard_onnx_ops(portable_nms):
    _, model, _ = portable_nms
    onnx.checker.check_model(model, full_check=True)
    assert {node.domain for node in model.graph.node} <= {"", "ai.onnx"}
    assert "NonMaxSuppression" in {node.op_type for node in model.graph.node}


TENSORRT_ROW = r"ONNX node \(TensorRT flavour\) \| op_type `(\w+)`, domain `([\w.]+)`, attributes (.*) \|"


def contract_nodes() -> dict[str, dict]:
    """Op type, domain, fixed plugin attributes and attribute types of each op, read from the contract."""
    text = CONTRACT.read_text()
    onnx_types = {"int": onnx.AttributeProto.INT, "float": onnx.AttributeProto.FLOAT}
    nodes = {}
    for section in re.split(r"\n## ", text)[1:3]:
        header = re.search(TENSORRT_ROW, section)
        assert header, "contract section without a TensorRT node row"
        fixed = dict(re.findall(r'`(\w+)="([^"]*)"`', header.group(3)))
        table = section.split("\nAttributes\n", 1)[1].strip().split("\n\n")[0]
        attributes = {}
        for row in table.splitlines()[2:]:
            names, kind = (cell.strip() for cell in row.strip("|").split("|")[:2])
            kind_type = (
                onnx.AttributeProto.FLOATS if kind.startswith("floats") else onnx_types[kind.split()[0]]
            )
            attributes.update(dict.fromkeys(re.findall(r"`(\w+)`", names), kind_type))
        attributes.update(dict.fromkeys(fixed, onnx.AttributeProto.STRING))
        nodes[header.group(1)] = {"domain": header.group(2), "fixed": fixed, "attributes": attributes}
    return nodes


class BothOpsModule(torch.nn.Module):
    def forward(self, rois, scores, idxs, *features):
        pooled = multi_level_roi_align(
            rois, features, (7, 7), [0.25, 0.125, 0.0625, 0.03125], 0, aligned=True
        )
        keep, count = batched_nms(rois, scores, idxs, 0.5, 0.05, 20, 30)
        return pooled, keep, count


@pytest.fixture(scope="module")
def tensorrt_model(tmp_path_factory) -> onnx.ModelProto:
    rois = random_rois(2, 40)
    _, scores, idxs = random_boxes(2, 40, seed=1)
    example = (rois, scores, idxs, *random_features(2, 4))
    return export_onnx(BothOpsModule(), example, "tensorrt", tmp_path_factory.mktemp("trt") / "trt.onnx", 3)


def test_tensorrt_flavour_has_one_plugin_node_per_op_as_in_the_contract(tensorrt_model):
    contract = contract_nodes()
    plugin_nodes = [node for node in tensorrt_model.graph.node if node.domain != ""]
    assert sorted(node.op_type for node in plugin_nodes) == sorted(contract)
    for node in plugin_nodes:
        spec = contract[node.op_type]
        assert node.domain == spec["domain"]
        attributes = {a.name: a for a in node.attribute}
        assert {name: a.type for name, a in attributes.items()} == spec["attributes"]
        for name, value in spec["fixed"].items():
            assert onnx.helper.get_attribute_value(attributes[name]).decode() == value


def test_tensorrt_flavour_carries_the_op_arguments_as_attributes(tensorrt_model):
    nodes = {node.op_type: node for node in tensorrt_model.graph.node if node.domain != ""}
    roi = {a.name: onnx.helper.get_attribute_value(a) for a in nodes["EdgeRCNN_MultiLevelRoIAlign"].attribute}
    nms = {a.name: onnx.helper.get_attribute_value(a) for a in nodes["EdgeRCNN_BatchedNMS"].attribute}
    assert roi["spatial_scales"] == [0.25, 0.125, 0.0625, 0.03125] and roi["aligned"] == 1
    assert (roi["output_height"], roi["output_width"], roi["sampling_ratio"], roi["mode"]) == (7, 7, 0, 0)
    assert (roi["canonical_scale"], roi["canonical_level"]) == (224, 4) and roi["eps"] == pytest.approx(1e-6)
    assert len(nodes["EdgeRCNN_MultiLevelRoIAlign"].input) == 5
    assert nms["iou_threshold"] == pytest.approx(0.5) and nms["score_threshold"] == pytest.approx(0.05)
    assert (nms["max_output"], nms["pre_nms_top_n"]) == (20, 30)


def test_tensorrt_flavour_passes_checker_and_declares_output_types(tensorrt_model):
    onnx.checker.check_model(tensorrt_model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(tensorrt_model)
    outputs = {o.name: o.type.tensor_type for o in inferred.graph.output}
    pooled, keep, count = (outputs[o.name] for o in tensorrt_model.graph.output)
    assert (
        pooled.elem_type == onnx.TensorProto.FLOAT
        and keep.elem_type == count.elem_type == onnx.TensorProto.INT64
    )
    dims = [[d.dim_value or d.dim_param for d in t.shape.dim] for t in (pooled, keep, count)]
    batch = dims[0][0]
    assert isinstance(batch, str)  # the dynamic batch dimension
    assert dims == [[batch, 40, 3, 7, 7], [batch, 20], [batch]]
