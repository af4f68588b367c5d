"""Loading user checkpoints safely, with errors that say what does not fit and how to fix it.

Only ``torch.load(..., weights_only=True)`` is used: a checkpoint is data, and unpickling
arbitrary objects would run code from the file. A state_dict (or a training checkpoint dict that
holds one under ``model`` / ``state_dict`` / ``model_state_dict``) loads; a pickled ``nn.Module``
cannot, and the error says how to save a state_dict instead.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from edgercnn.export.deploy.errors import ExportError
from edgercnn.export.model_checks import check_finite_weights
from torch import nn

WRAPPER_KEYS = ("model", "state_dict", "model_state_dict", "model_state")
PREFIXES = ("module.", "_orig_mod.")
SHOW = 5
CLASS_SCORE_KEY = "roi_heads.box_predictor.cls_score.weight"


class CheckpointError(ExportError):
    """A checkpoint that cannot be read or does not fit the architecture."""


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file, wrapper dicts unpacked and ``module.`` prefixes removed."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, expected a checkpoint file (.pth)")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if found is None:
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (unpickling failed)") from None
        raise CheckpointError(
            f"{path}: holds a pickled {found.group(1)} object (e.g. a whole model saved with "
            "torch.save(model)), which cannot be loaded safely with weights_only=True. Save the weights "
            "instead: torch.save(model.state_dict(), 'model_state.pth')"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({first[:200]})") from None
    state = _strip_prefixes(_unwrap(loaded, path))
    check_finite_weights(state, path)
    return state


def _unwrap(loaded: object, path: Path) -> Mapping[str, torch.Tensor]:
    if isinstance(loaded, Mapping):
        for key in WRAPPER_KEYS:
            inner = loaded.get(key)
            if (
                isinstance(inner, Mapping)
                and inner
                and all(isinstance(v, torch.Tensor) for v in inner.values())
            ):
                return inner
        tensors = {k: v for k, v in loaded.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise CheckpointError(
        f"{path}: contains a {type(loaded).__name__}, not a state_dict of tensors "
        f"(nor a dict holding one under {', '.join(WRAPPER_KEYS)})"
    )


def _strip_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop DataParallel/DDP ``module.`` and torch.compile ``_orig_mod.`` prefixes."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = str(key)
        changed = True
        while changed:
            changed = False
            for prefix in PREFIXES:
                if name.startswith(prefix):
                    name, changed = name[len(prefix) :], True
        out[name] = value
    return out


def describe_mismatch(model: nn.Module, state: Mapping[str, torch.Tensor]) -> str:
    """First missing, unexpected and wrong-shape keys, and a class-count hint when it applies."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k}: checkpoint {list(state[k].shape)} vs model {list(expected[k].shape)}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    parts = []
    for title, items in (
        ("missing keys", missing),
        ("unexpected keys", unexpected),
        ("shape mismatches", wrong),
    ):
        if items:
            more = f" (+{len(items) - SHOW} more)" if len(items) > SHOW else ""
            parts.append(f"{len(items)} {title}: {'; '.join(items[:SHOW])}{more}")
    if CLASS_SCORE_KEY in state and CLASS_SCORE_KEY in expected:
        have, want = state[CLASS_SCORE_KEY].shape[0], expected[CLASS_SCORE_KEY].shape[0]
        if have != want:
            parts.append(f"the checkpoint has {have} classes (incl. background); pass --num-classes {have}")
    return "; ".join(parts) if parts else "no key or shape difference found"


def load_into(model: nn.Module, path: str | Path) -> None:
    """Load ``path`` into ``model`` (strict); a ``CheckpointError`` names the first mismatched keys
    and shapes when the checkpoint is for another architecture or class count."""
    state = read_state_dict(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError:
        raise CheckpointError(
            f"{path}: does not fit architecture {type(model).__name__}: {describe_mismatch(model, state)}"
        ) from None
