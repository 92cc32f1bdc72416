"""The ``hierclass`` command line: ``hierclass demo | certify | analyze``.

Each subcommand lives in ``hierclass.commands.<name>``, a module with ``add_parser(subparsers)``
and ``run(args) -> int``; this file dispatches, and is the one place where a user's mistake
(a ``ValueError``, ``TypeError`` or ``OSError`` from validation at the boundary) becomes one
line on stderr and exit status 2 instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS = ("demo", "certify", "analyze")

#: Exceptions that mean "the input was wrong", by the library's contract: validation at the
#: boundary raises ValueError / TypeError; a missing or unreadable file is an OSError.
USER_ERRORS = (ValueError, TypeError, OSError)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every available subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="hierclass",
        description="Robust hierarchical classification: train, certify and analyse hierarchies.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"hierclass.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"hierclass.commands.{name}":
                raise
            continue
        module.add_parser(sub)
    return parser


def error_line(err: BaseException) -> str:
    """One line for a user error: the message's lines joined, without advice to unpickle.

    torch's own load errors suggest ``weights_only=False``, which would execute a malicious
    file; that advice is never passed on.

    Examples
    --------
    >>> error_line(ValueError("bad file\\n  try weights_only=False\\nthe header is wrong"))
    'bad file; the header is wrong'
    """
    text = str(err) or type(err).__name__
    if isinstance(err, KeyError) and err.args:
        text = str(err.args[0])
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    lines = [ln for ln in lines if "weights_only" not in ln]
    return "; ".join(lines) or type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hierclass`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(f"hierclass.commands.{args.command}")
    try:
        return int(module.run(args) or 0)
    except USER_ERRORS as err:
        print(f"hierclass {args.command}: error: {error_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hierclass {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
