"""``deg-live``: the command line for live inference, benchmarks, listeners and the viewer.

Each group of subcommands lives in a module of :mod:`deg_live.commands` that exposes ``register(subparsers)``;
this front door only assembles them (user mistakes become one clear line and exit status 2).
"""

from __future__ import annotations

import argparse
import sys

from camera_adapters.command_line import parser_from_modules, run_parsed

# Modules under deg_live.commands, in the order their commands appear in --help.
COMMAND_MODULES = ("run", "listen", "view", "bench", "bench_engine", "keys")


def build_parser() -> argparse.ArgumentParser:
    """The full ``deg-live`` parser with every subcommand registered."""
    return parser_from_modules(
        "deg-live",
        "Run a DeepEthogram-style model bundle causally on live camera frames and publish behaviour onset/offset "
        "events for closed-loop experiments.",
        "deg_live.commands",
        COMMAND_MODULES,
    )


def main(argv: list[str] | None = None) -> int:
    """Run ``deg-live``; returns the process exit status."""
    return run_parsed("deg-live", build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
