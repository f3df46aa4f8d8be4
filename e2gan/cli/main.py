"""`e2gan`'s entry point: parse, run the command, turn bad input into one line and exit 2.

Heavy libraries are imported inside the commands so `e2gan --help` stays instant. Bad input exits
with status 2 and one line `error: <what> (<where>): <expected>`; `--debug` shows the traceback.
"""
from __future__ import annotations

import os
import sys

from e2gan.cli.options import is_worker_rank
from e2gan.cli.parser import build_parser


def _os_error_line(exc: OSError) -> str:
    """``<what> (<where>): <expected>`` for a failed file operation."""
    import errno

    what = exc.strerror or type(exc).__name__
    where = exc.filename if exc.filename is not None else "file system"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        expected = "free space on the output disk (earlier results are kept; free some and run again to resume)"
    elif exc.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        expected = "a folder path whose parents are folders, not files"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        expected = "a writable output folder (--runs / --out)"
    else:
        expected = "a readable input and a writable output folder"
    return f"{what} ({where}): {expected}"


# Commands that train or load Lightning/Optuna: their third-party banners are silenced (e2gan.quiet).
# The rest (describe, export, latency, study status/export, ...) never import them, so stay quick.
QUIET_COMMANDS = {"train-base", "adapt", "evaluate", "analyze-layers", "rank-search", "study", "reproduce", "report"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from e2gan.errors import InputError

    try:
        if args.command in QUIET_COMMANDS and getattr(args, "action", None) not in ("status", "export"):
            from e2gan.quiet import silence_third_party

            silence_third_party()
        line = args.func(args)
    except InputError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the disk is full, the output folder is not writable or not a folder, ...
        if args.debug:
            raise
        print(f"error: {_os_error_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: work done so far is kept; run the same command again to resume", file=sys.stderr)
        return 130
    if line and not is_worker_rank():
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
