"""``deg-train``: the command line for projects, training, inference, evaluation and export.

Each group of subcommands lives in a module of :mod:`deg_train.commands` that exposes ``register(subparsers)``;
this front door only assembles them (user mistakes become one clear line and exit status 2).
"""

from __future__ import annotations

import argparse
import sys

from camera_adapters.command_line import parser_from_modules, run_parsed

# Modules under deg_train.commands, in the order their commands appear in --help.
COMMAND_MODULES = ("project", "training", "inference", "export", "studio", "deepethogram")


def build_parser() -> argparse.ArgumentParser:
    """The full ``deg-train`` parser with every subcommand registered."""
    return parser_from_modules(
        "deg-train",
        "Train DeepEthogram-style behaviour classifiers on a project's labelled videos, causally, "
        "and export model bundles for deg-live.",
        "deg_train.commands",
        COMMAND_MODULES,
    )


def main(argv: list[str] | None = None) -> int:
    """Run ``deg-train``; returns the process exit status."""
    return run_parsed("deg-train", build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
