"""Who may reach an endpoint: the one loopback check, and ZeroMQ CURVE authentication and encryption.

Every socket this project binds (frames, the lossless path, events, state) goes through :func:`check_endpoint`:
a TCP endpoint must be loopback (``127.0.0.1``, ``localhost``, ``::1``) unless the user passed
``--allow-remote``. Beyond loopback, CURVE (``zmq_curve(7)``: elliptic-curve keys, every message encrypted and
authenticated) makes an endpoint accept only the clients whose public keys are listed:

- ``deg-live keys DIR --name NAME`` writes a key pair in ZeroMQ's certificate format: ``NAME.key`` (public, to
  copy to the other machine) and ``NAME.key_secret`` (secret, mode 0600, stays where it was made);
- a *server* (the side that binds: ``deg-camera``, ``deg-live run``'s events/state) takes its own key pair
  and a directory of allowed clients' public keys (:class:`CurveServer`); a ZAP handler
  (:class:`zmq.auth.thread.ThreadAuthenticator`) refuses every other client during the handshake;
- a *client* (the side that connects: ``deg-live run``'s frames, ``deg-live listen``, the viewer) takes its
  own key pair and the server's public key (:class:`CurveClient`); it refuses a server that cannot prove it
  holds that key, so a rogue publisher on the same address feeds it nothing.

The keys files are read when a socket is made; adding a client's key needs a restart of the server.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

import zmq

from camera_adapters.errors import UserFacingError

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


class EndpointError(UserFacingError, ValueError):
    """An endpoint is malformed, not allowed (remote without ``--allow-remote``) or cannot be bound/connected."""


class CurveError(UserFacingError, ValueError):
    """CURVE keys are missing, unreadable or incomplete, or this ZeroMQ has no CURVE support."""


def is_loopback(endpoint: str) -> bool:
    """Whether ``endpoint`` is reachable from this machine only (ipc, inproc, or TCP on a loopback address)."""
    scheme, _, rest = endpoint.partition("://")
    if scheme != "tcp":
        return scheme in ("ipc", "inproc")
    host = rest.rpartition(":")[0]
    return host in LOOPBACK_HOSTS


def check_endpoint(endpoint: str, *, allow_remote: bool = False, what: str = "endpoint") -> str:
    """Validate an endpoint to bind (``tcp://127.0.0.1:5555``, ``ipc:///tmp/cam0``, ``inproc://x``).

    Args:
        endpoint: the endpoint.
        allow_remote: allow TCP addresses other machines can reach (``tcp://*:5555``, ``tcp://10.0.0.2:5555``).
        what: names the endpoint in messages ("events endpoint").

    Returns:
        ``endpoint`` unchanged.

    Raises:
        EndpointError: malformed, or a non-loopback TCP address without ``allow_remote``.
    """
    if not isinstance(endpoint, str):
        raise EndpointError(f"{what} {endpoint!r}: expected a string like tcp://127.0.0.1:5555")
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme not in ("tcp", "ipc", "inproc") or not rest:
        raise EndpointError(f"{what} {endpoint!r}: expected tcp://HOST:PORT, ipc:///path or inproc://name")
    if scheme == "tcp":
        host, _, port = rest.rpartition(":")
        if not host or not (port.isdigit() or port == "*"):
            raise EndpointError(f"{what} {endpoint!r}: expected tcp://HOST:PORT, for example tcp://127.0.0.1:5555")
        if host not in LOOPBACK_HOSTS and not allow_remote:
            raise EndpointError(
                f"{what} {endpoint!r} is reachable from other machines. Bind to tcp://127.0.0.1:PORT, or pass "
                "--allow-remote if you mean it (and protect it with CURVE keys, see docs/security.md)"
            )
    return endpoint


# ---------------------------------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------------------------------


def _require_curve() -> None:
    if not zmq.has("curve"):
        raise CurveError(
            f"this libzmq ({zmq.zmq_version()}) was built without CURVE; install pyzmq's wheels (pip install pyzmq)"
        )


def create_keys(directory: str | os.PathLike, name: str, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Make a CURVE key pair: ``DIR/NAME.key`` (public) and ``DIR/NAME.key_secret`` (secret, mode 0600).

    Raises:
        CurveError: bad name, the files exist (without ``overwrite``), or no CURVE support.
    """
    import zmq.auth

    _require_curve()
    if not name or "/" in name or name.startswith(".") or any(c.isspace() for c in name):
        raise CurveError(f"key name {name!r}: use letters, digits, '-', '_' (no '/', no spaces)")
    folder = Path(directory)
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    if not overwrite and (public.exists() or secret.exists()):
        raise CurveError(f"{public} or {secret} exists already; pick another --name or pass --force")
    folder.mkdir(parents=True, exist_ok=True)
    for path in (public, secret):
        path.unlink(missing_ok=True)
    old = os.umask(0o077)  # the secret file is never readable by others, not even for a moment
    try:
        made_public, made_secret = zmq.auth.create_certificates(folder, name)
    finally:
        os.umask(old)
    os.chmod(made_secret, 0o600)
    os.chmod(made_public, 0o644)
    return Path(made_public), Path(made_secret)


def load_keypair(path: str | os.PathLike) -> tuple[bytes, bytes]:
    """``(public, secret)`` Z85 keys from a secret certificate file (``NAME.key_secret``).

    Warns when others can read the file.

    Raises:
        CurveError: missing or unreadable, or it holds no secret key.
    """
    import zmq.auth

    _require_curve()
    path = Path(path)
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as err:
        raise CurveError(f"cannot read the CURVE key pair {path}: {err}") from None
    if not secret:
        raise CurveError(f"{path} holds no secret key: give the NAME.key_secret file made by `deg-live keys`")
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("the secret key %s is readable by other users; run: chmod 600 %s", path, path)
    return public, secret


def load_public_key(path: str | os.PathLike) -> bytes:
    """The Z85 public key in a certificate file (``NAME.key``, or a ``NAME.key_secret``).

    Raises:
        CurveError: missing or unreadable.
    """
    import zmq.auth

    _require_curve()
    try:
        public, _ = zmq.auth.load_certificate(Path(path))
    except (OSError, ValueError) as err:
        raise CurveError(f"cannot read the CURVE public key {path}: {err}") from None
    return public


def _allowed_keys(directory: Path) -> int:
    import zmq.auth

    if not directory.is_dir():
        raise CurveError(f"allowed clients directory {directory} does not exist (put their NAME.key files there)")
    try:
        keys = zmq.auth.load_certificates(directory)
    except (OSError, ValueError) as err:
        raise CurveError(f"cannot read the allowed clients' keys in {directory}: {err}") from None
    if not keys:
        raise CurveError(f"{directory} holds no public key (NAME.key): no client could connect")
    return len(keys)


@dataclass(frozen=True)
class CurveServer:
    """CURVE for a binding socket: this side's key pair and the directory of allowed clients' public keys."""

    keys: Path
    clients: Path


@dataclass(frozen=True)
class CurveClient:
    """CURVE for a connecting socket: this side's key pair and the server's public key file."""

    keys: Path
    server_key: Path


# One ZAP authenticator per ZeroMQ context (ZeroMQ allows one); each server socket uses its own ZAP domain
# (its clients directory), so sockets of one context may allow different clients.
_auth_lock = threading.Lock()
_authenticators: dict[int, list] = {}  # id(context) -> [authenticator, users]


class _AuthHandle:
    """Releases a socket's share of its context's authenticator (the last one stops it); idempotent."""

    def __init__(self, context: zmq.Context):
        self._context: zmq.Context | None = context

    def close(self) -> None:
        context, self._context = self._context, None
        if context is None:
            return
        with _auth_lock:
            entry = _authenticators.get(id(context))
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] <= 0:
                del _authenticators[id(context)]
                entry[0].stop()


def secure_server(sock: zmq.Socket, curve: CurveServer | None) -> _AuthHandle | None:
    """Make ``sock`` (not yet bound) a CURVE server that accepts only the listed clients.

    Returns:
        a handle to ``close()`` after the socket is closed and before its context is terminated (stops the
        authenticator when no other socket of the context needs it), or None when ``curve`` is None.

    Raises:
        CurveError: keys missing or unreadable.
    """
    if curve is None:
        return None
    from zmq.auth.thread import ThreadAuthenticator

    public, secret = load_keypair(curve.keys)
    clients = Path(curve.clients).resolve()
    _allowed_keys(clients)
    context = sock.context
    with _auth_lock:
        entry = _authenticators.get(id(context))
        if entry is None:
            auth = ThreadAuthenticator(context, log=logging.getLogger("camera_adapters.network.zap"))
            auth.start()
            entry = _authenticators[id(context)] = [auth, 0]
        entry[1] += 1
        entry[0].configure_curve(domain=str(clients), location=str(clients))
    sock.zap_domain = str(clients).encode("utf-8")
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_server = True
    return _AuthHandle(context)


def secure_client(sock: zmq.Socket, curve: CurveClient | None) -> None:
    """Make ``sock`` (not yet connected) a CURVE client that talks only to the server holding ``server_key``.

    Raises:
        CurveError: keys missing or unreadable.
    """
    if curve is None:
        return
    public, secret = load_keypair(curve.keys)
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_serverkey = load_public_key(curve.server_key)


def curve_server_from_args(keys: str | None, clients: str | None, *, flag: str = "--curve-keys") -> CurveServer | None:
    """A :class:`CurveServer` from command-line values (None when neither is given).

    Raises:
        CurveError: only one of the two is given.
    """
    if not keys and not clients:
        return None
    if not (keys and clients):
        raise CurveError(
            f"a CURVE-protected endpoint needs both {flag} FILE (this side's NAME.key_secret) and "
            "--curve-clients DIR (the allowed clients' public NAME.key files)"
        )
    return CurveServer(Path(keys), Path(clients))


def curve_client_from_args(
    keys: str | None, server_key: str | None, *, server_flag: str = "--curve-server-key"
) -> CurveClient | None:
    """A :class:`CurveClient` from command-line values (None when neither is given).

    Raises:
        CurveError: only one of the two is given.
    """
    if not keys and not server_key:
        return None
    if not (keys and server_key):
        raise CurveError(
            f"connecting with CURVE needs both --curve-keys FILE (this side's NAME.key_secret) and {server_flag} "
            "FILE (the server's public NAME.key)"
        )
    return CurveClient(Path(keys), Path(server_key))


def warn_if_open(endpoint: str, curve: CurveServer | None, what: str) -> None:
    """Log a warning when an endpoint other machines can reach has no CURVE protection."""
    if curve is None and not is_loopback(endpoint):
        log.warning(
            "%s %s is reachable from other machines WITHOUT authentication or encryption: anyone on the network "
            "can connect. Protect it with --curve-keys/--curve-clients (docs/security.md)",
            what,
            endpoint,
        )
