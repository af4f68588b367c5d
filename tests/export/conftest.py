"""Fixtures of the exporter's tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from edgercnn.export.refmodels import architectures

from tests.builders.torch_models import tiny_model


@pytest.fixture
def register_tiny_arch(monkeypatch: pytest.MonkeyPatch) -> Callable[..., architectures.ArchitectureSpec]:
    """Register a tiny architecture under a test name, as a user's own builder would be registered."""

    def register(
        name: str, kind: str, class_names: list[str] | None = None
    ) -> architectures.ArchitectureSpec:
        spec = architectures.ArchitectureSpec(
            kind,
            lambda num_classes, **kw: tiny_model(kind, num_classes=num_classes, **kw),
            4,
            f"tiny test {kind}",
            class_names=class_names,
        )
        monkeypatch.setitem(architectures.ARCHITECTURES, name, spec)
        return spec

    return register
