"""Run a verb in-process the way a user's shell would: through the one dispatcher, errors included."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from edgercnn.cli import main as edgercnn_main


def verb(name: str) -> Callable[[Sequence[str]], int]:
    """``verb("run")(["--model", ...])`` is ``edgercnn run --model ...``; returns the exit status."""

    def call(argv: Sequence[str]) -> int:
        return edgercnn_main([name, *argv])

    return call
