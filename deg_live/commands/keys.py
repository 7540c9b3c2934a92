r"""``deg-live keys``: make a CURVE key pair, to authenticate and encrypt frames, events and state between machines.

Each machine (the camera PC, the inference PC, the stimulus PC) makes its own key pair once and keeps the secret
file to itself; the public files are copied to the machines that must recognise it::

    deg-live keys keys/ --name camera      # on the camera PC:    keys/camera.key, keys/camera.key_secret
    deg-live keys keys/ --name live        # on the inference PC
    deg-live keys keys/ --name stim        # on the stimulus PC

A server (the side that binds) lists the public keys it accepts in a directory (``--curve-clients DIR``); a
client gives its own key pair (``--curve-keys``) and the server's public key. See docs/security.md for the
two-machine closed loop.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``keys``."""
    p = subparsers.add_parser(
        "keys",
        help="make a CURVE key pair (ZeroMQ certificate files) for authenticated, encrypted endpoints",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("directory", metavar="DIR", help="where to write NAME.key and NAME.key_secret")
    p.add_argument("--name", default="deg-live", help="the key pair's name (default deg-live)")
    p.add_argument("--force", action="store_true", help="replace an existing key pair of that name")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``deg-live keys``."""
    from camera_adapters.network import create_keys

    public, secret = create_keys(args.directory, args.name, overwrite=args.force)
    print(f"public key: {public}  (copy it to the machines that must accept this one)")
    print(f"secret key: {secret}  (mode 0600; keep it on this machine only)")
    return 0
