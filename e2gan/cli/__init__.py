"""The `e2gan` command line, the top floor: `parser` (flags and help), `options` (flags -> config),
`commands/` (one thin function per command), `reproduce` (the whole run behind one display), `main`."""
from e2gan.cli.main import main

__all__ = ["main"]
