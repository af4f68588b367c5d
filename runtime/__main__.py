"""``python -m runtime run ...`` / ``bench ...``: the device-side commands without the edgercnn package."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {"run": ".commands.run", "bench": ".commands.bench"}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        print("usage: python -m runtime {run,bench} [options]  (see '<command> --help')", file=sys.stderr)
        return 0 if args and args[0] in ("-h", "--help") else 2
    module = importlib.import_module(COMMANDS[args[0]], __package__)
    return int(module.main(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
