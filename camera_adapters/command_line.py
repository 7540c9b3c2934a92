"""What the three command-line front ends (``deg-camera``, ``deg-train``, ``deg-live``) share.

Each builds an argparse parser whose subcommands set ``func(args) -> int``; :func:`run_parsed` sets up logging,
dispatches, and turns a :class:`~camera_adapters.errors.UserFacingError` into one clear line on stderr with exit
status 2 (no traceback), and Ctrl-C into status 130. :func:`parser_from_modules` assembles a parser from
subcommand modules that each expose ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Iterable

from camera_adapters.errors import UserFacingError


def parser_from_modules(prog: str, description: str, package: str, modules: Iterable[str]) -> argparse.ArgumentParser:
    """A parser with ``-v`` and one subcommand group per module ``<package>.<name>`` (``register(subparsers)``)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in modules:
        importlib.import_module(f"{package}.{name}").register(sub)
    return parser


def run_parsed(prog: str, args: argparse.Namespace) -> int:
    """Run the parsed subcommand ``args.func(args)``; returns the process exit status."""
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except UserFacingError as err:
        print(f"{prog} {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog} {args.command}: interrupted", file=sys.stderr)
        return 130
