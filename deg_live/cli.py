"""``deg-live``: the command line for live inference, benchmarks, listeners and the viewer.

Each group of subcommands lives in a module of :mod:`deg_live.commands` that exposes ``register(subparsers)``;
this front door only assembles them and turns user mistakes into one clear line (exit status 2).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from camera_adapters.errors import UserFacingError

# Modules under deg_live.commands, in the order their commands appear in --help.
COMMAND_MODULES = ("run", "listen", "view", "bench", "bench_engine")


def build_parser() -> argparse.ArgumentParser:
    """The full ``deg-live`` parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="deg-live",
        description="Run a DeepEthogram-style model bundle causally on live camera frames and publish "
        "behaviour onset/offset events for closed-loop experiments.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"deg_live.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"deg_live.commands.{name}":
                raise
            continue  # a command group that is not written yet
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``deg-live``; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args) or 0)
    except UserFacingError as err:
        print(f"deg-live {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"deg-live {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
