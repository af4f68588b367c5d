"""The installed package's layout as pyproject.toml declares it: module name -> source file.

Read from pyproject rather than by importing, so that walking the whole package needs neither
torch nor a GPU and sees every module, including ones whose imports would fail here.
"""

from __future__ import annotations

from pathlib import Path

import tomllib

from tests.paths import REPO_ROOT


def setuptools_config() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def package_folder(package: str, package_dir: dict[str, str]) -> Path:
    """Where setuptools takes ``package`` from: the longest mapped prefix, then the dotted rest."""
    parts = package.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in package_dir:
            return REPO_ROOT / package_dir[prefix] / Path(*parts[cut:])
    return REPO_ROOT / Path(*parts)


def python_modules() -> dict[str, Path]:
    """Every module of the declared Python packages (data-only packages have no ``__init__.py``)."""
    config = setuptools_config()
    modules: dict[str, Path] = {}
    for package in config["packages"]:
        folder = package_folder(package, config.get("package-dir", {}))
        if not (folder / "__init__.py").exists():
            continue
        for file in sorted(folder.glob("*.py")):
            name = package if file.name == "__init__.py" else f"{package}.{file.stem}"
            modules[name] = file
    return modules
