"""The shuffled mask predictor equals torchvision's MaskRCNNPredictor on each detection's label."""

from __future__ import annotations

import torch
from edgercnn.export.deploy.mask_predictor import ShuffledMaskPredictor, is_standard_predictor
from torch import nn
from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor


def test_shuffled_predictor_gives_torchvisions_logits_for_the_label():
    torch.manual_seed(0)
    predictor = MaskRCNNPredictor(16, 12, 5).eval()
    for p in predictor.parameters():  # non-trivial biases too
        nn.init.normal_(p)
    x = torch.randn(7, 16, 14, 14)
    labels = torch.tensor([0, 4, 1, 2, 3, 4, 2])
    with torch.no_grad():
        want = predictor(x)[torch.arange(7), labels][:, None]
        got = ShuffledMaskPredictor(predictor)(x, labels)
    assert got.shape == (7, 1, 28, 28)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_a_changed_predictor_keeps_torchvisions_own_layers():
    predictor = MaskRCNNPredictor(16, 12, 5)
    assert is_standard_predictor(predictor)
    predictor.conv5_mask = nn.ConvTranspose2d(16, 12, 4, stride=2, padding=1)
    assert not is_standard_predictor(predictor)
    extra = MaskRCNNPredictor(16, 12, 5)
    extra.add_module("dropout", nn.Dropout())
    assert not is_standard_predictor(extra)


def test_the_deploy_graph_of_a_torchvision_mask_rcnn_uses_it():
    from edgercnn.export.deploy import DeployOptions, DeployRCNN

    from tests.builders.torch_models import tiny_model

    deploy = DeployRCNN(tiny_model("maskrcnn"), DeployOptions(96, 128))
    assert isinstance(deploy.mask_head.shuffled, ShuffledMaskPredictor)
