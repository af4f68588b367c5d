"""Preprocessing equals torchvision's GeneralizedRCNNTransform (the runtime itself never imports torch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from edgercnn.runtime.config import ModelConfig
from edgercnn.runtime.preprocess import compute_transform, pad_colour_bgr, prepare_batch
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from tests.builders.fixed_onnx import tiny_config

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def _smooth_image(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(h // 8, 2), max(w // 8, 2), 3), dtype=np.uint8)
    noise = rng.integers(-20, 21, (h, w, 3))
    import cv2

    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int64)
    return np.clip(big + noise, 0, 255).astype(np.uint8)


def _config_for(
    min_size: int, max_size: int, graph_hw: tuple[int, int], valid_hw: tuple[int, int], dtype: str
):
    raw = tiny_config(height=graph_hw[0], width=graph_hw[1], valid=valid_hw, dtype=dtype)
    raw["input"]["min_size"], raw["input"]["max_size"] = min_size, max_size
    return ModelConfig.from_dict(raw, "tiny.onnx")


def _torchvision(image_bgr: np.ndarray, min_size: int, max_size: int):
    transform = GeneralizedRCNNTransform(min_size, max_size, MEAN, STD).eval()
    tensor = torch.from_numpy(image_bgr[:, :, ::-1].copy()).permute(2, 0, 1).float() / 255.0
    with torch.no_grad():
        images, _ = transform([tensor])
    return images.tensors[0].numpy(), images.image_sizes[0]


@pytest.mark.parametrize(
    ("source_hw", "min_size", "max_size"),
    [((120, 160), 96, 128), ((72, 96), 200, 300), ((101, 257), 64, 150), ((300, 97), 80, 200)],
    ids=["downscale", "upscale", "wide-max-size-bound", "tall-odd"],
)
def test_float_input_matches_torchvision_transform(source_hw, min_size, max_size):
    image = _smooth_image(*source_hw, seed=sum(source_hw))
    expected, (rh, rw) = _torchvision(image, min_size, max_size)
    config = _config_for(min_size, max_size, expected.shape[1:], (rh, rw), "float32")
    batch, transforms = prepare_batch([image], config)
    assert (transforms[0].resized_height, transforms[0].resized_width) == (rh, rw)
    assert batch.shape == (1, *expected.shape)
    diff = float(np.abs(batch[0] - expected).max())
    print(f"max abs diff vs torchvision {source_hw}->{(rh, rw)}: {diff:.3g}")
    assert diff < 1e-4


def test_resize_rule_matches_torchvision_for_many_sizes():
    for h, w in [(480, 640), (720, 1280), (1080, 1920), (333, 500), (500, 333), (17, 999)]:
        _, (rh, rw) = _torchvision(np.zeros((h, w, 3), np.uint8), 288, 384)
        config = _config_for(288, 384, (384, 384), (384, 384), "float32")
        t = compute_transform(h, w, config)
        assert (t.resized_height, t.resized_width) == (rh, rw), (h, w)


def test_other_source_size_is_capped_to_the_valid_region_and_padded_with_zero():
    config = _config_for(96, 128, (96, 128), (72, 128), "float32")  # exported for 72x128 sources
    image = _smooth_image(120, 120, seed=3)  # square source: torchvision's rule would give 96x96
    batch, transforms = prepare_batch([image], config)
    t = transforms[0]
    assert t.resized_height <= 72 and t.resized_width <= 128
    assert t.resized_height == 72  # capped by the valid height
    assert np.all(batch[0, :, t.resized_height :, :] == 0)
    assert np.all(batch[0, :, :, t.resized_width :] == 0)


def test_uint8_input_is_bgr_resized_and_padded_with_the_mean_colour():
    config = _config_for(64, 100, (96, 128), (64, 96), "uint8")
    image = _smooth_image(80, 120, seed=5)
    batch, transforms = prepare_batch([image], config)
    t = transforms[0]
    assert batch.dtype == np.uint8 and batch.shape == (1, 3, 96, 128)
    # the graph normalizes; what it gets must be BGR that matches torchvision's resize within uint8 rounding
    expected, (rh, rw) = _torchvision(image, 64, 100)
    assert (t.resized_height, t.resized_width) == (rh, rw)
    rgb = batch[0, ::-1, :rh, :rw].astype(np.float32) / 255.0
    normalized = (rgb - np.array(MEAN, np.float32)[:, None, None]) / np.array(STD, np.float32)[:, None, None]
    assert float(np.abs(normalized - expected[:, :rh, :rw]).max()) < 2.5 / 255 / min(STD)
    pad = np.array(pad_colour_bgr(config), np.uint8)
    assert np.all(batch[0, :, rh:, :] == pad[:, None, None])
    pad_normalized = (pad[::-1] / 255.0 - np.array(MEAN)) / np.array(STD)
    assert np.all(np.abs(pad_normalized) < 0.5 / 255 / min(STD))


def test_fixed_batch_pads_with_blank_images():
    config = _config_for(96, 128, (96, 128), (96, 128), "float32")
    images = [_smooth_image(96, 128, seed=s) for s in range(3)]
    batch, transforms = prepare_batch(images, config, batch_size=4)
    assert batch.shape[0] == 4 and len(transforms) == 3
    assert np.all(batch[3] == 0)
