"""Suite-wide checks. Builders of test models and inputs live in tests/builders/."""

from __future__ import annotations

import sys

import pytest

# The design card's folders are mapped into ``edgercnn``; importing them under their bare folder
# names would load a second copy of every module (two ``ModelConfig`` classes, two error roots).
BARE_NAMES = ("export", "runtime", "plugins")


@pytest.fixture(autouse=True, scope="session")
def _no_module_imported_under_its_bare_folder_name():
    yield
    bare = sorted(name for name in sys.modules if name.split(".")[0] in BARE_NAMES)
    assert not bare, f"imported under a bare folder name instead of edgercnn.*: {bare}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow checks first: spread over the xdist workers from the start instead of trailing on one."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
