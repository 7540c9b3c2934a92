"""``deg-train``: the command line for projects, training, inference, evaluation and export.

Each group of subcommands lives in a module of :mod:`deg_train.commands` that exposes ``register(subparsers)``;
this front door only assembles them and turns user mistakes into one clear line (exit status 2).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from camera_adapters.errors import UserFacingError

# Modules under deg_train.commands, in the order their commands appear in --help.
COMMAND_MODULES = ("project", "training", "inference", "export")


def build_parser() -> argparse.ArgumentParser:
    """The full ``deg-train`` parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="deg-train",
        description="Train DeepEthogram-style behaviour classifiers on a project's labelled videos, causally, "
        "and export model bundles for deg-live.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"deg_train.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"deg_train.commands.{name}":
                raise
            continue  # a command group that is not written yet
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``deg-train``; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args) or 0)
    except UserFacingError as err:
        print(f"deg-train {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"deg-train {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
