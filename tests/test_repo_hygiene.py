"""Repository-level promises: the README's test command is what CI runs, ruff is clean, the CLI dispatches."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.paths import REPO_ROOT


def _readme_commands() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", quick, re.S) for line in
            block.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_readme_quick_start_is_two_commands() -> None:
    assert len(_readme_commands()) == 2, _readme_commands()


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    test_command = _readme_commands()[1]
    ci_lines = [line.strip() for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines()]
    # The README command creates and activates the venv itself; CI runs the same line.
    assert test_command in ci_lines


def test_ruff_finds_nothing() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--quiet", str(REPO_ROOT)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cli_lists_every_subcommand_and_rejects_unknown_ones() -> None:
    out = subprocess.run([sys.executable, "-m", "edgercnn", "--help"], capture_output=True, text=True,
                         cwd=REPO_ROOT)
    assert out.returncode == 0
    for name in ("export", "build", "parity", "quantize", "calibrate", "run", "bench", "eval", "demo"):
        assert f"  {name} " in out.stdout
    bad = subprocess.run([sys.executable, "-m", "edgercnn", "frobnicate"], capture_output=True, text=True,
                         cwd=REPO_ROOT)
    assert bad.returncode == 2 and "unknown command 'frobnicate'" in bad.stderr
