"""``edgercnn triton`` writes configs Triton accepts: parsed with Triton's own model-config protobuf
(from tritonclient) and checked against the ONNX graph read with the ``onnx`` package.

The ``onnxruntime`` and ``tensorrt_plan`` models cannot load on this CPU-only server build, so
their configs are checked here; the python models are loaded by a real server in
``test_triton_server.py``.
"""

from __future__ import annotations

import json

import onnx
import pytest
from edgercnn.runtime.config import ModelConfig
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from tests.builders.fixed_onnx import make_tiny_onnx, tiny_config, tiny_outputs
from tests.cli import verb

main = verb("triton")

_ONNX_TO_TRITON = {
    onnx.TensorProto.FLOAT: "TYPE_FP32",
    onnx.TensorProto.UINT8: "TYPE_UINT8",
    onnx.TensorProto.INT64: "TYPE_INT64",
    onnx.TensorProto.INT32: "TYPE_INT32",
}


def _parse(path) -> mc.ModelConfig:
    return text_format.Parse(path.read_text(), mc.ModelConfig())


def _onnx_tensors(path) -> tuple[dict, dict]:
    graph = onnx.load(str(path), load_external_data=False).graph

    def describe(values):
        out = {}
        for v in values:
            t = v.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
            out[v.name] = (_ONNX_TO_TRITON[t.elem_type], dims)
        return out

    return describe(graph.input), describe(graph.output)


def _config_tensors(tensors) -> dict:
    out = {}
    for t in tensors:
        dims = list(t.reshape.shape) if t.HasField("reshape") else list(t.dims)
        out[t.name] = (mc.DataType.Name(t.data_type), dims)
    return out


@pytest.fixture(scope="module")
def gpu_repository(mask_onnx, tmp_path_factory):
    engine = tmp_path_factory.mktemp("engine") / "model.engine"
    engine.write_bytes(b"not a real engine: only copied as model.plan")
    sidecar = ModelConfig.from_model_file(mask_onnx).to_dict()
    sidecar["batch"] = 1  # an engine built for batch 1 from the dynamic-batch ONNX
    engine.with_name("model.engine.json").write_text(json.dumps(sidecar))
    out = tmp_path_factory.mktemp("repo") / "models"
    args = ["--name", "mask", "--onnxruntime", "--engine", str(engine), "--instances", "2", "--gpus", "0,1"]
    assert main([str(mask_onnx), "--out", str(out), *args, "--max-batch", "4"]) == 0
    return out, engine


@pytest.mark.parametrize("model, platform", [("mask_onnx", "onnxruntime"), ("mask_trt", "tensorrt_plan")])
def test_gpu_model_configs_name_the_onnx_tensors_with_their_dtypes_and_dims(gpu_repository, mask_onnx,
                                                                              model, platform):  # fmt: skip
    out, _ = gpu_repository
    cfg = _parse(out / model / "config.pbtxt")
    assert cfg.name == model
    assert (cfg.backend if platform == "onnxruntime" else cfg.platform) == platform
    onnx_inputs, onnx_outputs = _onnx_tensors(mask_onnx)
    assert all(dims[0] == -1 for _, dims in onnx_inputs.values())  # a dynamic-batch export
    strip = {name: (dtype, dims[1:]) for name, (dtype, dims) in onnx_inputs.items()}
    strip_out = {name: (dtype, dims[1:]) for name, (dtype, dims) in onnx_outputs.items()}
    assert _config_tensors(cfg.input) == strip
    assert _config_tensors(cfg.output) == strip_out
    assert cfg.max_batch_size == (4 if platform == "onnxruntime" else 1)  # the engine's sidecar: batch 1
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 2000
    (group,) = cfg.instance_group
    assert group.kind == mc.ModelInstanceGroup.KIND_GPU and group.count == 2 and list(group.gpus) == [0, 1]
    assert "edgercnn.config" in cfg.parameters


def test_the_plan_and_onnx_files_are_copies_of_the_users_files(gpu_repository, mask_onnx):
    out, engine = gpu_repository
    assert (out / "mask_trt" / "1" / "model.plan").read_bytes() == engine.read_bytes()
    assert (out / "mask_onnx" / "1" / "model.onnx").read_bytes() == mask_onnx.read_bytes()
    assert (out / "mask_onnx" / "1" / "model.onnx").stat().st_ino != mask_onnx.stat().st_ino


@pytest.mark.parametrize("suffix", ["onnx", "trt", "python"])
def test_every_ensemble_step_feeds_each_model_the_tensors_its_config_declares(gpu_repository, suffix):
    out, _ = gpu_repository
    ensemble = _parse(out / f"mask_ensemble_{suffix}" / "config.pbtxt")
    assert ensemble.platform == "ensemble"
    produced = _config_tensors(ensemble.input)  # ensemble tensor name -> (dtype, dims)
    for step in ensemble.ensemble_scheduling.step:
        model = _parse(out / step.model_name / "config.pbtxt")
        assert model.max_batch_size >= ensemble.max_batch_size > 0
        assert ensemble.max_batch_size == (1 if suffix == "trt" else 4)
        inputs, outputs = _config_tensors(model.input), _config_tensors(model.output)
        assert set(step.input_map) == set(inputs)
        for model_input, ensemble_tensor in step.input_map.items():
            assert produced[ensemble_tensor] == inputs[model_input], (step.model_name, model_input)
        for model_output, ensemble_tensor in step.output_map.items():
            produced[ensemble_tensor] = outputs[model_output]
    assert {n: produced[n] for n in _config_tensors(ensemble.output)} == _config_tensors(ensemble.output)


def test_a_batch_one_graph_is_served_with_max_batch_size_one(tmp_path):
    raw = tiny_config(detections=8)
    model = make_tiny_onnx(tmp_path / "tiny.onnx", raw, tiny_outputs(raw, 6, seed=3))
    assert main([str(model), "--out", str(tmp_path / "repo")]) == 0
    graph = _parse(tmp_path / "repo" / "tiny_graph" / "config.pbtxt")
    assert graph.max_batch_size == 1
    inputs, _ = _onnx_tensors(model)
    assert _config_tensors(graph.input) == {n: (t, d[1:]) for n, (t, d) in inputs.items()}
    detect = _parse(tmp_path / "repo" / "tiny" / "config.pbtxt")
    assert detect.max_batch_size == 8  # the image-in model batches itself, in the graph's chunks
    assert {t.name for t in detect.input} == {"IMAGE", "FRAME"} and all(t.optional for t in detect.input)


def test_a_fixed_batch_graph_is_served_unbatched_and_gets_no_ensemble(tmp_path):
    raw = tiny_config(detections=8, batch=2)
    model = make_tiny_onnx(tmp_path / "tiny2.onnx", raw, tiny_outputs(raw, 6, seed=3))
    assert main([str(model), "--out", str(tmp_path / "repo")]) == 0
    graph = _parse(tmp_path / "repo" / "tiny2_graph" / "config.pbtxt")
    assert graph.max_batch_size == 0 and not graph.HasField("dynamic_batching")
    inputs, _ = _onnx_tensors(model)
    assert _config_tensors(graph.input) == inputs
    assert not (tmp_path / "repo" / "tiny2_ensemble_python").exists()


def test_an_existing_repository_is_never_overwritten(tmp_path, capsys):
    raw = tiny_config(detections=8)
    model = make_tiny_onnx(tmp_path / "tiny.onnx", raw, tiny_outputs(raw, 6, seed=3))
    out = tmp_path / "repo"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    assert main([str(model), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not empty" in err[0] and str(out) in err[0]
    assert (out / "mine.txt").read_text() == "keep me" and sorted(p.name for p in out.iterdir()) == [
        "mine.txt"
    ]


def test_a_file_that_is_not_onnx_is_refused_in_one_line(tmp_path, capsys):
    bad = tmp_path / "model.engine"
    bad.write_bytes(b"x")
    assert main([str(bad), "--out", str(tmp_path / "repo")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expected the exported ONNX" in err[0]


def test_an_engine_of_another_graph_is_refused_in_one_line(mask_onnx, tmp_path, capsys):
    engine = tmp_path / "other.engine"
    engine.write_bytes(b"x")
    sidecar = ModelConfig.from_model_file(mask_onnx).to_dict()
    sidecar["input"]["height"] = 640
    engine.with_name("other.engine.json").write_text(json.dumps(sidecar))
    assert main([str(mask_onnx), "--out", str(tmp_path / "repo"), "--engine", str(engine)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "built from another graph" in err[0] and "640" in err[0]
    assert not (tmp_path / "repo").exists()
