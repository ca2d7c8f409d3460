"""`python -m snippets.memcalc ...`: the optimizer-memory command."""

from snippets.memcalc.cli import main

raise SystemExit(main())
