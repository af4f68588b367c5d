"""``edgercnn train``: fit a small reference R-CNN on the synthetic set on the CPU, then write its card.

Real detector weights cannot be downloaded here, so the project trains its own: a ``ref_*``
architecture from ``export/refmodels/architectures.py`` on ``edgercnn synth`` output, with a fixed
iteration count (deterministic for a seed), periodic checkpoints, and a final pycocotools
evaluation on the validation split whose numbers go into ``models/<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from edgercnn.export.coco_eval import evaluate_model
from edgercnn.export.eager import bgr_to_tensor
from edgercnn.export.refmodels.architectures import (
    COCO_KEYPOINT_NAMES,
    REF_IMAGE_HEIGHT,
    REF_IMAGE_WIDTH,
    build_model,
    get_spec,
)
from edgercnn.export.refmodels.synthdata.dataset import build_split
from edgercnn.runtime.errors import EdgercnnError
from edgercnn.runtime.files import sha256_file
from edgercnn.runtime.images import ImageConversionError, load_image
from pycocotools import mask as mask_utils
from tqdm import tqdm

SUBSET_SIZE = 24  # validation images the tests regenerate and re-evaluate


class TrainingError(EdgercnnError):
    """Bad data directory or arguments."""

    exit_code = 1


def _read_image(path: Path) -> np.ndarray:
    """The runtime's one image loader: a truncated training image is an error, not half grey."""
    try:
        return load_image(path)
    except ImageConversionError as exc:
        raise TrainingError(str(exc)) from None


class CocoDetectionSet(torch.utils.data.Dataset):
    """Images + torchvision targets from a COCO json; only the categories the model predicts."""

    def __init__(self, root: Path, split: str, kind: str, class_names: list[str]) -> None:
        ann_file = root / "annotations" / f"{split}.json"
        if not ann_file.is_file():
            raise TrainingError(f"{ann_file}: not found; run 'edgercnn synth --out {root}' first")
        coco = json.loads(ann_file.read_text())
        names = {c["id"]: c["name"] for c in coco["categories"]}
        missing = [n for n in class_names[1:] if n not in names.values()]
        if missing:
            raise TrainingError(f"{ann_file}: no category named {', '.join(missing)}")
        self.label_of = {cid: class_names.index(n) for cid, n in names.items() if n in class_names}
        self.root, self.split, self.kind = root, split, kind
        by_image: dict[int, list[dict[str, Any]]] = {}
        for ann in coco["annotations"]:
            if ann["category_id"] in self.label_of and not ann.get("iscrowd", 0):
                by_image.setdefault(ann["image_id"], []).append(ann)
        # Images without a single object of the model's classes teach little here; skip them.
        self.items = [(info, by_image[info["id"]]) for info in coco["images"] if info["id"] in by_image]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        info, anns = self.items[index]
        path = self.root / self.split / info["file_name"]
        image = _read_image(path)
        boxes = torch.tensor(
            [
                [a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                for a in anns
            ],
            dtype=torch.float32,
        )
        target = {"boxes": boxes, "labels": torch.tensor([self.label_of[a["category_id"]] for a in anns])}
        if self.kind == "maskrcnn":
            target["masks"] = torch.from_numpy(np.stack([mask_utils.decode(a["segmentation"]) for a in anns]))
        if self.kind == "keypointrcnn":
            target["keypoints"] = torch.tensor([a["keypoints"] for a in anns], dtype=torch.float32).view(
                -1, 17, 3
            )
        return bgr_to_tensor(image), target


def _collate(batch: list[Any]) -> tuple[list[Any], list[Any]]:
    images, targets = zip(*batch, strict=True)
    return list(images), list(targets)


def _lr_at(step: int, progress: float, base: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 1% of ``base`` as progress -> 1."""
    if step < warmup:
        return base * (0.05 + 0.95 * step / warmup)
    return base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _progress(step: int, iters: int, elapsed: float, max_minutes: float | None) -> float:
    """Share of training done: by steps, or by time when a time budget is given (whichever is further).

    A time budget keeps a shared, busy machine from overrunning the budget: the cosine schedule then
    completes on time with fewer steps (the card records how many were made).
    """
    by_steps = step / iters
    if max_minutes is None:
        return by_steps
    return max(by_steps, elapsed / (max_minutes * 60.0))


def load_val(root: Path, limit: int | None = None) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Validation ground truth and BGR images, optionally only the first ``limit`` images."""
    ann_file = root / "annotations" / "val.json"
    if not ann_file.is_file():
        raise TrainingError(f"{ann_file}: not found")
    gt = json.loads(ann_file.read_text())
    if limit is not None:
        gt["images"] = gt["images"][:limit]
        keep = {info["id"] for info in gt["images"]}
        gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] in keep]
    images = []
    for info in gt["images"]:
        path = root / "val" / info["file_name"]
        image = _read_image(path)
        images.append(image)
    return gt, images


def val_subset(seed: int, count: int = SUBSET_SIZE) -> tuple[dict[str, Any], list[np.ndarray]]:
    """The first ``count`` validation images regenerated from the seed, exactly as written to disk."""
    gt, images, _ = build_split(seed, "val", count, REF_IMAGE_WIDTH, REF_IMAGE_HEIGHT)
    return gt, images


def train(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    spec = get_spec(args.arch)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    root = Path(args.data)
    out = Path(args.out)
    work = Path(args.work) if args.work else out.parent / ".train_work"
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    class_names = list(spec.class_names or [])
    dataset = CocoDetectionSet(root, "train", spec.kind, class_names)
    model = build_model(args.arch, len(class_names))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    ckpt_path = work / f"{args.arch}.ckpt.pt"
    step, elapsed_before = 0, 0.0
    if args.resume and ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step, elapsed_before = int(ckpt["step"]), float(ckpt["elapsed"])
    generator = torch.Generator().manual_seed(args.seed)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        generator=generator,
        collate_fn=_collate,
        drop_last=True,
    )
    model.train()
    start = time.perf_counter()
    stopped_early = False
    bar = tqdm(total=args.iters, initial=step, desc=f"train {args.arch}", disable=args.no_progress)
    epoch = 0
    while step < args.iters:
        for images, targets in loader:
            elapsed = elapsed_before + time.perf_counter() - start
            progress = _progress(step, args.iters, elapsed, args.max_minutes)
            if progress >= 1.0:
                stopped_early = step < args.iters
                break
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, progress, args.lr, args.warmup)
            losses = model(images, targets)
            loss = sum(losses.values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            step += 1
            bar.update(1)
            bar.set_postfix(
                loss=f"{loss.item():.3f}", **{k[5:]: f"{v.item():.3f}" for k, v in losses.items()}
            )
            if step % args.checkpoint_every == 0:
                elapsed = elapsed_before + time.perf_counter() - start
                state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
                torch.save({**state, "step": step, "elapsed": elapsed}, ckpt_path)
        else:
            epoch += 1
            continue
        break
    bar.close()
    train_seconds = elapsed_before + time.perf_counter() - start

    weights = out / f"{args.arch}.pth"
    torch.save(model.state_dict(), weights)
    model.eval()
    t0 = time.perf_counter()
    gt, images = load_val(root, args.val_limit)
    val_ap = evaluate_model(model, spec.kind, gt, images)
    eval_seconds = time.perf_counter() - t0
    sub_gt, sub_images = val_subset(args.data_seed, args.subset_images)
    subset_ap = evaluate_model(model, spec.kind, sub_gt, sub_images)

    model_kwargs = _constructor_kwargs(model)
    transform: Any = model.transform
    card = {
        "architecture": args.arch,
        "kind": spec.kind,
        "description": spec.description,
        "num_classes": len(class_names),
        "class_names": class_names,
        "keypoint_names": COCO_KEYPOINT_NAMES if spec.kind == "keypointrcnn" else [],
        "constructor_kwargs": {},
        "effective_settings": model_kwargs,
        "input": {
            "height": REF_IMAGE_HEIGHT,
            "width": REF_IMAGE_WIDTH,
            "color": "RGB",
            "scale": "1/255",
            "mean": transform.image_mean,
            "std": transform.image_std,
        },
        "weights": weights.name,
        "weights_sha256": sha256_file(weights),
        "weights_bytes": weights.stat().st_size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "data": {
            "generator": "export.synthdata",
            "seed": args.data_seed,
            "train_images": len(dataset),
            "val_images": len(gt["images"]),
        },
        "training": {
            "command": "edgercnn train " + shlex.join(argv),
            "seed": args.seed,
            "iters": step,
            "iters_planned": args.iters,
            "batch_size": args.batch_size,
            "epochs": round(step * args.batch_size / len(dataset), 2),
            "optimizer": f"AdamW lr={args.lr} wd={args.weight_decay}, warm-up {args.warmup}, cosine",
            "threads": args.threads,
            "device": "cpu",
            "wall_seconds": round(train_seconds, 1),
            "ended_by": "time budget" if stopped_early else "iterations",
            "torch": torch.__version__,
        },
        "val_ap": val_ap,
        "val_eval_seconds": round(eval_seconds, 1),
        "subset": {
            "source": "export.training.val_subset",
            "seed": args.data_seed,
            "images": args.subset_images,
            "ap": subset_ap,
        },
    }
    (out / f"{args.arch}.json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def _constructor_kwargs(model: Any) -> dict[str, Any]:
    """The inference settings a deploy graph needs to reproduce, read from the built model."""
    rpn, roi, transform = model.rpn, model.roi_heads, model.transform
    return {
        "min_size": list(transform.min_size),
        "max_size": transform.max_size,
        "rpn_pre_nms_top_n_test": rpn._pre_nms_top_n["testing"],
        "rpn_post_nms_top_n_test": rpn._post_nms_top_n["testing"],
        "rpn_nms_thresh": rpn.nms_thresh,
        "box_score_thresh": roi.score_thresh,
        "box_nms_thresh": roi.nms_thresh,
        "box_detections_per_img": roi.detections_per_img,
    }
