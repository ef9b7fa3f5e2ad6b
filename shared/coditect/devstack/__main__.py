"""`python -m coditect.devstack serve` (what `nox -s serve` runs)."""

from coditect.devstack.cli import main

raise SystemExit(main())
