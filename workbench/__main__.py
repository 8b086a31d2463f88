"""`python -m workbench ...` entry point."""

from .cli import main

raise SystemExit(main())
