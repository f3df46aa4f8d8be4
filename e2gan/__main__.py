"""`python -m e2gan ...` runs the `e2gan` command."""
import sys

from e2gan.cli.main import main

sys.exit(main())
