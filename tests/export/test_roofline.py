"""FLOP counting of ONNX graphs (for the Jetson latency bounds) against torch's own FLOP counter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from edgercnn.export.roofline import count_flops, latency_bounds
from onnx import TensorProto, helper, numpy_helper, save
from torch.utils.flop_counter import FlopCounterMode


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.grouped = torch.nn.Conv2d(8, 8, 3, padding=1, groups=4, bias=False)
        self.up = torch.nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.fc = torch.nn.Linear(4 * 16 * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.up(self.grouped(self.conv(x)))
        z = self.fc(y.flatten(1))
        return z @ torch.ones(10, 5)


def _onnx_of(net: _Net, path: Path, batch: int | str) -> Path:
    """The same network written node by node (weights as initializers)."""
    w = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    inits = [numpy_helper.from_array(v, k) for k, v in w.items()]
    inits += [
        numpy_helper.from_array(np.ones((10, 5), np.float32), "ones"),
        numpy_helper.from_array(np.array([0, -1]), "flat"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv.weight", "conv.bias"], ["a"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["a", "grouped.weight"], ["b"], pads=[1, 1, 1, 1], group=4),
        helper.make_node("ConvTranspose", ["b", "up.weight", "up.bias"], ["c"], strides=[2, 2]),
        helper.make_node("Reshape", ["c", "flat"], ["d"]),
        helper.make_node("Gemm", ["d", "fc.weight", "fc.bias"], ["e"], transB=1),
        helper.make_node("MatMul", ["e", "ones"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes,
        "net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 16, 16])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        inits,
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


@pytest.mark.parametrize(("batch", "onnx_batch"), [(1, 1), (3, "N")])
def test_flops_match_torch_flop_counter(tmp_path: Path, batch: int, onnx_batch: int | str) -> None:
    torch.manual_seed(0)
    net = _Net().eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(torch.zeros(batch, 3, 16, 16))
    report = count_flops(_onnx_of(net, tmp_path / "net.onnx", onnx_batch), batch=batch)
    assert report.flops == counter.get_total_flops()
    assert report.uncounted == {}
    weights = sum(p.numel() for p in net.parameters()) * 4 + (10 * 5 * 4) + 2 * 8
    assert report.weight_bytes == weights


def test_latency_bounds_scale_with_precision(tmp_path: Path) -> None:
    report = count_flops(_onnx_of(_Net().eval(), tmp_path / "net.onnx", 1))
    fp32 = latency_bounds(report, "fp32")
    fp16 = latency_bounds(report, "fp16")
    for module in fp32:
        assert fp16[module][0] < fp32[module][0]
        assert fp16[module][1] == pytest.approx(fp32[module][1] / 2)
