"""Subcommand groups of ``deg-train``; each module exposes ``register(subparsers)``."""
