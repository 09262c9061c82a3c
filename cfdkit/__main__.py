"""``python -m cfdkit`` = the ``cfdkit`` command."""

from .cli import main

raise SystemExit(main())
