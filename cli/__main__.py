"""`python -m cli ...`: the `simtrain` command (see cli.app)."""

from cli.app import main

raise SystemExit(main())
