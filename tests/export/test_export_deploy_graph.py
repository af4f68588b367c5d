"""The static-shape deploy graph (in torch) against torchvision eager, detection by detection."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from edgercnn.export.deploy import DeployOptions, DeployRCNN, UnsupportedInputSizeError, input_geometry
from edgercnn.export.deploy.keypoints import heatmaps_to_keypoints_static
from edgercnn.export.parity import padded_to_detections
from edgercnn.runtime.matching import ParityTally
from torchvision.models.detection.roi_heads import heatmaps_to_keypoints

from tests.builders.torch_models import KINDS, random_bgr_images, random_images, tiny_model

# Random-weight heatmaps are noise with many near-equal peaks; a windowed search would be judged
# on a case no trained model produces, so the model-level tests search every pixel (exact for any
# heatmap) and the windowed search is checked on peaked heatmaps below.
EXHAUSTIVE_KEYPOINTS = None


def compare(model, images, input_dtype="float32", bgr=None, keypoint_decode="host"):
    """Eager vs deploy graph on ``images`` (same size); returns the tally and the raw outputs."""
    height, width = images[0].shape[-2:]
    options = DeployOptions(
        height, width, input_dtype, keypoint_decode, keypoint_window_radius=EXHAUSTIVE_KEYPOINTS
    )
    deploy = DeployRCNN(model, options).eval()
    with torch.inference_mode():
        reference = model(images)
        if input_dtype == "uint8":
            batch = torch.zeros((len(images), *deploy.input_shape), dtype=torch.uint8)
            for i, image in enumerate(bgr):
                batch[i, :, :height, :width] = torch.from_numpy(image).permute(2, 0, 1)
        else:
            batch = model.transform(images)[0].tensors
        outputs = [t.numpy() for t in deploy(batch)]
    tally = ParityTally()
    for ref, cand in zip(reference, padded_to_detections(outputs, deploy), strict=True):
        ref = {k: v.numpy() for k, v in ref.items()}
        if "masks" in ref:
            ref["masks"], cand["masks"] = ref["masks"][:, 0], cand["masks"][:, 0]
        tally.add(ref, cand)
    return tally, outputs, reference


def assert_parity(tally: ParityTally, kind: str) -> None:
    summary = tally.summary()
    assert tally.reference_detections > 0, "the comparison needs detections to mean anything"
    assert tally.matched_share >= 0.995, summary
    assert tally.max_score_error <= 1e-3, summary
    if kind == "maskrcnn":
        assert summary["mean_mask_iou"] >= 0.99, summary
    if kind == "keypointrcnn":
        assert summary["max_keypoint_error_px"] <= 1e-3, summary


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch", [1, 4])
def test_deploy_graph_matches_eager_at_batch_1_and_4(kind, batch):
    model = tiny_model(kind)
    tally, outputs, _ = compare(model, random_images(batch, 96, 128, seed=batch))
    assert outputs[0].shape == (batch,)
    assert_parity(tally, kind)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "size", [(101, 75), (90, 160), (131, 131)], ids=["odd-portrait", "wide", "odd-square"]
)
def test_deploy_graph_matches_eager_on_non_square_and_odd_sizes(kind, size):
    height, width = size
    model = tiny_model(kind, seed=1)
    tally, _, _ = compare(model, random_images(2, height, width, seed=3))
    assert_parity(tally, kind)


@pytest.mark.parametrize("decode", ["host", "graph"])
def test_keypoints_decoded_in_the_graph_or_on_the_host_both_match_eager(decode):
    model = tiny_model("keypointrcnn", seed=2)
    tally, outputs, _ = compare(model, random_images(2, 96, 128, seed=4), keypoint_decode=decode)
    # host: [N, K, P, S, S] heatmaps for the runtime; graph: [N, K, P, 3] keypoints
    assert outputs[4].ndim == (5 if decode == "host" else 4)
    assert_parity(tally, "keypointrcnn")


@pytest.mark.parametrize("kind", KINDS)
def test_image_with_no_detections_gives_zero_count(kind):
    model = tiny_model(kind, box_score_thresh=0.999)
    _tally, outputs, reference = compare(model, random_images(2, 96, 128))
    assert all(len(r["scores"]) == 0 for r in reference)
    assert outputs[0].tolist() == [0, 0]
    assert all(np.isfinite(o).all() for o in outputs[1:])


def test_padded_proposals_never_become_detections():
    # A strict RPN NMS leaves far fewer than 100 proposals, so most proposal rows are padding.
    model = tiny_model("fasterrcnn", rpn_nms_thresh=0.1, box_score_thresh=0.0)
    images = random_images(2, 96, 128, seed=5)
    deploy = DeployRCNN(model, DeployOptions(96, 128)).eval()
    with torch.inference_mode():
        batch = model.transform(images)[0].tensors
        features = list(deploy.backbone(batch).values())
        _, proposal_count = deploy.rpn(features)
    assert int(proposal_count.max()) < deploy.rpn.post_nms_top_n, "precondition: padding rows exist"
    tally, _, reference = compare(model, images)
    assert sum(len(r["scores"]) for r in reference) > 0
    assert tally.candidate_detections == tally.reference_detections
    assert_parity(tally, "fasterrcnn")


@pytest.mark.parametrize("kind", ["fasterrcnn", "maskrcnn"])
def test_uint8_bgr_input_matches_eager_on_the_same_pixels(kind):
    # min/max size equal to the image: no resize, so uint8 pixels are exactly what eager sees;
    # the padding region (90 -> 96 rows) is filled with garbage to show the graph ignores it.
    model = tiny_model(kind, min_size=90, max_size=120)
    bgr = random_bgr_images(2, 90, 120, seed=7)
    images = [torch.from_numpy(b[:, :, ::-1].copy()).permute(2, 0, 1).float() / 255.0 for b in bgr]
    tally, _, _ = compare(model, images, "uint8", bgr)
    assert_parity(tally, kind)


@pytest.mark.parametrize("size", [(1080, 1920), (480, 640), (333, 517), (96, 128), (1000, 100)])
def test_input_geometry_follows_torchvision_transform(size):
    model = tiny_model("fasterrcnn")
    geometry = input_geometry(model.transform, *size)
    with torch.inference_mode():
        image_list, _ = model.transform([torch.zeros(3, *size)])
    assert (geometry.valid_height, geometry.valid_width) == tuple(image_list.image_sizes[0])
    assert (geometry.height, geometry.width) == tuple(image_list.tensors.shape[-2:])


@pytest.mark.parametrize("size", [(8, 640), (480, 20000)])
def test_unsupported_source_size_says_why(size):
    model = tiny_model("fasterrcnn")
    with pytest.raises(UnsupportedInputSizeError, match="outside the supported range"):
        DeployRCNN(model, DeployOptions(*size))


def _peaked_heatmaps(rois: int, keypoints: int, size: int = 56, seed: int = 0) -> torch.Tensor:
    """Heatmaps shaped like a trained keypoint head's: one clear peak plus low noise."""
    generator = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size.__float__()), torch.arange(float(size)), indexing="ij")
    centre = torch.rand((rois, keypoints, 2), generator=generator) * (size - 1)
    dist = (yy - centre[..., 0, None, None]) ** 2 + (xx - centre[..., 1, None, None]) ** 2
    noise = 0.05 * torch.randn((rois, keypoints, size, size), generator=generator)
    return 4.0 - dist / 8.0 + noise


def _random_rois(count: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    x1 = torch.rand(count, generator=generator) * width * 0.8
    y1 = torch.rand(count, generator=generator) * height * 0.8
    w = torch.rand(count, generator=generator) * (width - x1)
    h = torch.rand(count, generator=generator) * (height - y1)
    w[:4] = torch.tensor([0.2, 0.9, 3.5, 56.0])  # sub-pixel, below one pixel, tiny, heatmap-sized
    h[:4] = torch.tensor([0.3, 2.5, 0.5, 55.5])
    return torch.stack([x1, y1, x1 + w, y1 + h], dim=1)


@pytest.mark.parametrize("seed", [0, 1])
def test_static_heatmap_decoding_matches_torchvision(seed):
    height, width = 480, 640
    maps = _peaked_heatmaps(60, 17, seed=seed)
    rois = _random_rois(60, height, width, seed=seed)
    reference, reference_scores = heatmaps_to_keypoints(maps, rois)
    ours = heatmaps_to_keypoints_static(maps, rois, height, width, candidates=2)
    position_error = (ours[..., :2] - reference[..., :2]).abs().amax(-1)
    assert (position_error <= 1e-3).float().mean() >= 0.995, position_error.max()
    exact = position_error <= 1e-3
    assert torch.allclose(ours[..., 2][exact], reference_scores[exact], atol=1e-4)
