"""`python -m e2gan.cli ...` runs the same entry point as the `e2gan` command."""
import sys

from e2gan.cli.main import main

sys.exit(main())
