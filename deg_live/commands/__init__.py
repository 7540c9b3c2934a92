"""Subcommand groups of ``deg-live``; each module exposes ``register(subparsers)``."""
