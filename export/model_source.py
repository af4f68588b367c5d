"""Where the model to export comes from: a model card, an architecture name, a checkpoint, class names.

Shared by ``edgercnn export`` and ``edgercnn parity``: explicit options win over the card.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgercnn.export.deploy.errors import ExportError
from edgercnn.export.model_checks import check_card_weights


@dataclass
class ModelSource:
    """Where the model comes from: architecture, classes, constructor options, weights."""

    architecture: str
    num_classes: int | None
    class_names: list[str] | None
    keypoint_names: list[str]
    constructor_kwargs: dict[str, Any]
    checkpoint: Path | None
    source_size: tuple[int, int] | None  # (height, width) from a card, if it gives one


def resolve_source(args: argparse.Namespace) -> ModelSource:
    """Combine --card, --arch, --checkpoint and class options; explicit options win over the card."""
    from edgercnn.export.refmodels import architectures

    if args.card is None and args.arch is None:
        raise ExportError("give --arch NAME or --card models/NAME.json")
    card: dict[str, Any] = {}
    if args.card is not None:
        card = architectures.load_card(args.card)
    arch = args.arch or card["architecture"]
    spec = architectures.get_spec(arch)
    class_names = [c.strip() for c in args.class_names.split(",")] if args.class_names else None
    if class_names is None:
        class_names = card.get("class_names") or spec.class_names
    num_classes = args.num_classes or card.get("num_classes")
    if num_classes is None and args.class_names:
        num_classes = len(class_names or [])
    if class_names is not None and num_classes is not None and len(class_names) != num_classes:
        raise ExportError(
            f"{len(class_names)} class names for {num_classes} classes; the list starts with the background"
        )
    checkpoint = args.checkpoint
    if checkpoint is None and card and not args.random_weights:
        checkpoint = Path(card["weights_path"])
        check_card_weights(card, args.card, checkpoint)
    if checkpoint is None and not args.random_weights:
        raise ExportError("give --checkpoint FILE (or --random-weights to export an untrained model)")
    size = None
    card_input = card.get("input") or {}
    if "height" in card_input and "width" in card_input:
        size = (int(card_input["height"]), int(card_input["width"]))
    return ModelSource(
        architecture=arch,
        num_classes=num_classes,
        class_names=class_names,
        keypoint_names=list(card.get("keypoint_names") or spec.keypoint_names),
        constructor_kwargs=dict(card.get("constructor_kwargs") or {}),
        checkpoint=None if args.random_weights else checkpoint,
        source_size=size,
    )
