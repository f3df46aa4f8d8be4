"""The one error type the CLI turns into `error: <what> (<where>): <expected>` and exit code 2."""
from __future__ import annotations


class InputError(Exception):
    """Bad user input: names the value, where it came from, and what was expected."""

    def __init__(self, what: str, where: str, expected: str):
        self.what, self.where, self.expected = what, where, expected
        super().__init__(f"{what} ({where}): {expected}")
