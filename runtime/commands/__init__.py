"""The command-line verbs and the one place that turns an error into a line and an exit code.

Each verb is one module with ``add_arguments(parser)`` and ``run(args) -> int``. The device-side
verbs (run, bench, eval, calibrate, build) live here, so that ``python -m runtime run ...`` works
with the ``runtime/`` folder alone on a camera; the build-host verbs live in ``edgercnn.cli``.
Both entry points dispatch through :func:`dispatch`, which imports a verb only when it is asked
for (``edgercnn run`` must not pull in torch) and catches :class:`EdgercnnError` once: a user
sees ``<prog>: error: <message>``, never a traceback, and the process exits with the error's code.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import NoReturn

from ..errors import EdgercnnError, UsageError


@dataclass(frozen=True)
class Verb:
    """A subcommand: the module that implements it, its one-line help, and what installs its imports."""

    module: str
    help: str
    install_hint: str = "pip install edgercnn"


def description(module: ModuleType) -> str:
    """The verb module's docstring, first paragraph: what ``--help`` says the command does."""
    return (module.__doc__ or "").strip().split("\n\n")[0]


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is a ``UsageError``: one line on stderr like every other error,
    not argparse's usage block (``--help`` still shows the usage)."""

    def error(self, message: str) -> NoReturn:
        # "argument --score: must be ..." -> "--score: must be ...", the wording of the API's checks
        raise UsageError(re.sub(r"^argument ([^:]+): ", r"\1: ", message))


def build_parser(prog: str, module: ModuleType) -> argparse.ArgumentParser:
    parser = OneLineParser(prog=prog, description=description(module))
    module.add_arguments(parser)
    return parser


def run_verb(prog: str, module: ModuleType, argv: Sequence[str]) -> int:
    """Parse ``argv`` with the verb's parser and run it; user errors become one line on stderr."""
    try:
        args = build_parser(prog, module).parse_args(list(argv))
        args.argv = list(argv)  # the verb's own arguments, for provenance (a model card records them)
        return int(module.run(args) or 0)
    except EdgercnnError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def usage(program: str, verbs: Mapping[str, Verb]) -> str:
    lines = [f"usage: {program} <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {verb.help}" for name, verb in verbs.items()]
    lines += ["", f"Run '{program} <command> --help' for a command's options."]
    return "\n".join(lines)


def import_verb(verb: Verb, package: str | None = None) -> ModuleType:
    return importlib.import_module(verb.module, package)


def dispatch(
    program: str, verbs: Mapping[str, Verb], argv: Sequence[str] | None = None, package: str | None = None
) -> int:
    """``program <verb> [options]``: the verb's module is imported only now, by name."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage(program, verbs))
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in verbs:
        print(f"{program}: unknown command {name!r}\n\n{usage(program, verbs)}", file=sys.stderr)
        return 2
    verb = verbs[name]
    try:
        module = import_verb(verb, package)
    except ModuleNotFoundError as exc:
        missing = exc.name or "a module"
        print(
            f"{program} {name}: error: needs {missing!r}, which is not installed ({verb.install_hint})",
            file=sys.stderr,
        )
        return 2
    return run_verb(f"{program} {name}", module, rest)
