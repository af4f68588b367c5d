"""Checks that keep a broken model from being exported as a file that silently detects nothing.

A diverged training run leaves NaN or Inf weights; a model card can name weights other than the
ones beside it; weights can be finite yet overflow on a real image. Each of these exported with
exit 0 before and gave a model that never detects anything. Each is now one ``ExportError`` line,
checked before the (slow) ONNX export starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from edgercnn.export.deploy.errors import ExportError
from edgercnn.runtime.files import sha256_file

SHOW = 3


class BrokenModelError(ExportError):
    """Weights or a model that cannot give a useful export."""


def check_finite_weights(state: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """Every floating-point tensor of a checkpoint is finite (no NaN, no Inf)."""
    bad = [
        key
        for key, tensor in state.items()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]
    if bad:
        more = f" (+{len(bad) - SHOW} more)" if len(bad) > SHOW else ""
        raise BrokenModelError(
            f"{path}: {len(bad)} tensor(s) hold NaN or Inf values ({', '.join(bad[:SHOW])}{more}); "
            "the checkpoint is broken (a diverged training run?): export an earlier checkpoint"
        )


def check_card_weights(card: Mapping[str, Any], card_path: str | Path, weights: str | Path) -> None:
    """The weights a card names are the ones it describes: ``weights_sha256`` matches the file."""
    expected = card.get("weights_sha256")
    if expected is None:
        return
    weights = Path(weights)
    if not weights.is_file():
        raise BrokenModelError(f"{card_path}: weights file {weights} (the card's 'weights') not found")
    actual = sha256_file(weights)
    if actual != str(expected).lower():
        raise BrokenModelError(
            f"{card_path}: weights_sha256 is {str(expected)[:12]}... but {weights} hashes to "
            f"{actual[:12]}...: the weights are not the ones the card describes (re-train or fix the card)"
        )


def probe_image(height: int, width: int) -> torch.Tensor:
    """A mid-grey image with a bright square: finite, in [0, 1], with an edge the convs respond to."""
    image = torch.full((3, height, width), 0.5)
    image[:, height // 4 : height // 2, width // 4 : width // 2] = 0.9
    return image


def check_finite_outputs(deploy: Any, name: str) -> None:
    """The deploy graph gives finite features and detections on a probe image (else it can only
    give zero detections or garbage on every frame)."""
    _, height, width = deploy.input_shape
    image = probe_image(height, width).unsqueeze(0)
    uint8 = deploy.input_dtype == torch.uint8  # else a float32 graph, which takes normalised pixels
    image = (image * 255).to(torch.uint8) if uint8 else image * 2.0 - 1.0
    extra: tuple[torch.Tensor, ...] = ()
    if getattr(deploy, "external_proposals", False):  # Fast R-CNN mode: the probe's boxes too
        from edgercnn.export.onnx_export import probe_feed
        from edgercnn.runtime.contract import PROPOSAL_COUNT_NAME, PROPOSALS_NAME

        feed = probe_feed(deploy, 1)
        extra = (torch.from_numpy(feed[PROPOSALS_NAME]), torch.from_numpy(feed[PROPOSAL_COUNT_NAME]))
    with torch.no_grad():
        features = deploy.backbone(deploy.adapter(image))
        outputs = deploy(image, *extra)
    count = int(outputs[0].reshape(-1)[0])
    rows = [out[0, :count] for out in outputs[1:] if out.is_floating_point()]
    finite = all(bool(torch.isfinite(f).all()) for f in features.values())
    if not finite or not all(bool(torch.isfinite(out).all()) for out in rows):
        raise BrokenModelError(
            f"{name}: gives NaN or Inf on a probe image (weights that overflow?); nothing exported"
        )
