"""Allow ``python -m edgercnn``."""

from edgercnn.cli import main

raise SystemExit(main())
