"""The ``kith`` command. Thin: parse arguments, call the domain, print.

Every failure ends with one line on stderr and a non-zero exit code. Each module of this
package adds its commands (``add_parsers``) and runs them; each command imports what it
uses when it runs, so that ``kith --help`` starts fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from server import __version__, logs
from server.cli import accounts, backups, domains, groups, moderation, processes
from server.errors import KithError
from server.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    """The whole ``kith`` command line."""
    parser = argparse.ArgumentParser(prog="kith", description="Kith, a federated community server.")
    parser.add_argument("--version", action="version", version=f"kith {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for commands in (processes, accounts, groups, domains, moderation, backups):
        commands.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kith`` console script."""
    args = build_parser().parse_args(argv)
    # Long-running commands log their work; one-shot commands print only results and errors.
    level = "INFO" if args.command in ("serve", "worker") else "WARNING"
    try:
        settings = Settings.from_env()
        logs.configure(settings.log_format, level)
        return int(args.func(settings, args) or 0)
    except KithError as exc:
        print(f"kith: error: {exc.reason}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
