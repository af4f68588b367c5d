"""Mixed precision by measured sensitivity: keep the layers that hurt most in float.

Each feature layer is quantized *alone* (every other layer float) and scored by how far that
model's detections move from the FP32 model's on a few calibration images
(``detection_distance``: one number per layer, cheap, no labels needed). The worst layers are
then kept in float, a growing number at a time (1, 2, 3, 5, 8, ...), each candidate model
evaluated for real on the evaluation set, until the AP drop fits the budget.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from edgercnn.export.quantize.measure import open_session, run_outputs
from edgercnn.export.quantize.qdq import LayerPlan
from edgercnn.runtime.matching import detection_distance

if TYPE_CHECKING:
    from edgercnn.export.quantize.report import QuantizeOptions, VariantResult

log = logging.getLogger("edgercnn.quantize")


def rank_layers(
    fp32_path: Path,
    plan: LayerPlan,
    build: Callable[[set[str], Path], Path],
    feeds: list[dict[str, np.ndarray]],
    tmp: Path,
    threads: int = 2,
    progress: bool = False,
    candidates: list[str] | None = None,
) -> list[tuple[str, float]]:
    """(layer, detection distance when only it is int8), worst first; ``candidates`` default to all."""
    reference_session = open_session(fp32_path, threads)
    references = [run_outputs(reference_session, feed) for feed in feeds]
    layers = list(plan.feature_layers if candidates is None else candidates)
    everything = set(plan.feature_layers)  # region ops follow their sources (LayerPlan.nodes_for)
    scores: list[tuple[str, float]] = []
    iterator: Any = layers
    if progress:
        from tqdm import tqdm

        iterator = tqdm(layers, desc="layer sensitivity", unit="layer")
    for layer in iterator:
        path = build(everything - {layer}, tmp / "single_layer.onnx")
        session = open_session(path, threads)
        distances = [
            detection_distance(ref, run_outputs(session, feed))
            for ref, feed in zip(references, feeds, strict=True)
        ]
        scores.append((layer, float(np.mean(distances))))
    return sorted(scores, key=lambda item: -item[1])


def keep_counts(total: int) -> list[int]:
    """1, 2, 3, 5, 8, 12, ... up to ``total - 1``: few evaluations, fine steps where they matter most.

    At least one layer stays int8: with every ranked layer float the model would be FP32 again.
    """
    counts, k = [], 1
    while k < total - 1:
        counts.append(k)
        k = max(k + 1, round(k * 1.5))
    if total > 1:
        counts.append(total - 1)
    return counts


def keep_float_until_within_budget(
    result: VariantResult,
    fp32_ap: dict[str, float],
    plan: LayerPlan,
    build: Callable[[set[str], Path], Path],
    evaluate: Callable[[Path], dict[str, float]],
    fits: Callable[[dict[str, float]], bool],
    fp32_path: Path,
    feeds: list[dict[str, np.ndarray]],
    options: QuantizeOptions,
    tmp: Path,
    user_float: set[str],
) -> None:
    """Grow the float set by sensitivity rank until ``fits``; fills ``result`` in place."""
    candidates = [n for n in plan.nodes_for(result.variant, user_float) if n in set(plan.feature_layers)]
    ranking = rank_layers(fp32_path, plan, build, feeds, tmp, options.threads, options.progress, candidates)
    ranked = [name for name, _ in ranking if name not in user_float]
    distance = dict(ranking)
    chosen: list[str] = []
    for count in keep_counts(len(ranked)):
        chosen = ranked[:count]
        build(user_float | set(chosen), result.path)
        ap = evaluate(result.path)
        result.search.append({"kept_float": count, "ap": ap})
        log.info("%s: %d layers float -> AP %s", result.variant, count, ap)
        result.ap = ap
        if fits(ap):
            break
    if not chosen:  # nothing to search: the variant has a single int8 layer
        log.info("%s: no layer can be kept float without losing every int8 layer", result.variant)
    result.within_budget = fits(result.ap)
    result.kept_float += [
        {
            "node": name,
            "why": f"sensitivity rank {rank + 1}: detection distance {distance[name]:.4f} when only this "
            f"layer is int8; kept float to bring the AP drop within budget",
        }
        for rank, name in enumerate(chosen)
    ]
