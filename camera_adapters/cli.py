"""``deg-camera``: list frame sources, or run one and publish its frames over ZeroMQ.

Examples::

    deg-camera list
    deg-camera synthetic width=640 height=480 fps=200 --bind tcp://127.0.0.1:5555
    deg-camera video path=session.mp4 rate=0 --bind ipc:///tmp/cam0 --lossless ipc:///tmp/cam0-rec --lossless-block
    deg-camera ffmpeg url=/dev/video0 format=v4l2 --config configs/cameras/ffmpeg.yaml
    deg-camera basler exposure_us=2000 fps=100 trigger=line1 --bind tcp://127.0.0.1:5555 --lossless tcp://127.0.0.1:5556
    deg-camera synthetic --help        # the source's options, their types and defaults

Options after the source name are ``key=value`` settings of that source (the same keys as its YAML file,
``--config``); an unknown key fails and lists the known ones. A status line about once a second shows the
rate, frames lost at the camera, live frames replaced before sending, the lossless path's state, and the
capture -> send latency. Exit status: 0 when the source ends or the limit is reached, 2 for a user error or a
camera that failed (one line, no traceback), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading

from camera_adapters.command_line import run_parsed
from camera_adapters.sources import available_sources, create_source, get_source_class, source_names

DEFAULT_BIND = "tcp://127.0.0.1:5555"


def _settings_help(name: str) -> str:
    cls = get_source_class(name)
    lines = [cls.description, "", "source options (key=value):"]
    for f in dataclasses.fields(cls.Settings):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = "(required)"
        tp = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        lines.append(f"  {f.name} ({tp}, default {default!r})")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The ``deg-camera`` parser: ``list`` plus one subcommand per registered source."""
    parser = argparse.ArgumentParser(
        prog="deg-camera",
        description="Publish frames from a camera, a video file or a test pattern over ZeroMQ.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `deg-camera SOURCE --help` for a source's options.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="SOURCE", required=True)
    sub.add_parser("list", help="list frame sources and whether each can run here").set_defaults(func=cmd_list)
    for name in source_names():
        cls = get_source_class(name)
        p = sub.add_parser(
            name,
            help=cls.description,
            description=_settings_help(name),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("options", nargs="*", metavar="key=value", help="source settings (see above)")
        p.add_argument("--config", help="YAML file of source settings (options on the command line win)")
        p.add_argument("--bind", default=DEFAULT_BIND, help=f"live endpoint to publish on (default {DEFAULT_BIND})")
        p.add_argument(
            "--lossless",
            metavar="ENDPOINT",
            help="also publish every frame to ONE receiver (a recorder) on this endpoint",
        )
        p.add_argument(
            "--lossless-block",
            action="store_true",
            help="wait for the lossless receiver instead of dropping (source runs at its pace)",
        )
        p.add_argument("--lossless-buffer", type=int, default=256, help="frames buffered for the lossless path")
        p.add_argument(
            "--drain-timeout",
            type=float,
            default=5.0,
            help="seconds to wait at the end for the lossless receiver to take what is queued",
        )
        p.add_argument("--camera-id", default="cam0", help="camera name in topics and headers (default cam0)")
        p.add_argument("--max-frames", type=int, help="stop after this many frames")
        p.add_argument("--duration", type=float, help="stop after this many seconds")
        p.add_argument(
            "--stall-timeout",
            type=float,
            default=10.0,
            help="give up when the camera sends nothing for this long (0: never)",
        )
        p.add_argument(
            "--allow-remote",
            action="store_true",
            help="allow binding addresses other machines can reach (protect them with --curve-keys)",
        )
        p.add_argument(
            "--curve-keys",
            metavar="FILE",
            help="CURVE: this camera's key pair (NAME.key_secret from `deg-live keys`); frames are then encrypted "
            "and only the clients in --curve-clients get them",
        )
        p.add_argument(
            "--curve-clients", metavar="DIR", help="CURVE: directory of the allowed clients' public NAME.key files"
        )
        p.add_argument("--quiet", action="store_true", help="no status line")
        p.set_defaults(func=cmd_publish, source=name)
    return parser


def cmd_list(args: argparse.Namespace) -> int:
    """Print every registered source and whether it can run here."""
    rows = available_sources()
    width = max(len(name) for name, _, _ in rows)
    for name, usable, why in rows:
        print(f"{name:<{width}}  {'yes' if usable else 'no ':<3}  {get_source_class(name).description}")
        print(f"{'':<{width}}       {why}")
    return 0


def _status_line(camera_id: str, info: dict) -> str:
    lat = (
        f"{info['latency_ms_median']:.2f}/{info['latency_ms_p99']:.2f} ms"
        if info.get("latency_ms_median") is not None
        else "-"
    )
    line = (
        f"{camera_id}: {info.get('rate_fps', 0):6.1f} fps  frames {info['frames']}  "
        f"lost@camera {info['lost_at_camera']}  live replaced {info['live_replaced']}  latency {lat}"
    )
    if info.get("lossless_sent") or info.get("lossless_queued") or info.get("lossless_dropped"):
        line += (
            f"  lossless sent {info['lossless_sent']} queued {info['lossless_queued']} "
            f"DROPPED {info['lossless_dropped']}"
        )
    if info.get("lossless_refused"):
        line += f"  REFUSED {info['lossless_refused']} extra lossless receivers"
    if info.get("send_errors"):
        line += f"  SEND ERRORS {info['send_errors']}"
    return line


def cmd_publish(args: argparse.Namespace) -> int:
    """Open a source and publish its frames until it ends, a limit is reached, or Ctrl-C."""
    from camera_adapters.network import curve_server_from_args
    from camera_adapters.publisher import FramePublisher, stream

    curve = curve_server_from_args(args.curve_keys, args.curve_clients)
    source = create_source(args.source, args.options, config=args.config, camera_id=args.camera_id)
    stop = threading.Event()
    publisher = None

    def on_sigterm(*_) -> None:  # end cleanly: stop grabbing, stop waiting for a lossless receiver
        stop.set()
        if publisher is not None:
            publisher.stop_waiting()

    if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread only
        signal.signal(signal.SIGTERM, on_sigterm)
    tty = sys.stderr.isatty()

    def report(info: dict) -> None:
        if not args.quiet:
            print(_status_line(args.camera_id, info), end="\r" if tty else "\n", file=sys.stderr, flush=True)

    with source:
        publisher = FramePublisher(
            args.bind,
            lossless=args.lossless,
            camera_id=args.camera_id,
            lossless_buffer=args.lossless_buffer,
            lossless_block=args.lossless_block,
            allow_remote=args.allow_remote,
            curve=curve,
        )
        try:
            caps = source.capabilities
            print(
                f"deg-camera: {args.source} {args.camera_id} {caps.width}x{caps.height} {caps.pixel_format} "
                f"@ {caps.fps or 'unpaced'} fps -> {publisher.endpoint}"
                + (f" (lossless {publisher.lossless_endpoint})" if publisher.lossless_endpoint else ""),
                file=sys.stderr,
                flush=True,
            )
            info = stream(
                source,
                publisher,
                max_frames=args.max_frames,
                duration_s=args.duration,
                stall_timeout_s=args.stall_timeout or None,
                on_second=report,
                stop=stop,
            )
        finally:
            publisher.close(drain_timeout_s=args.drain_timeout)
        info.update(publisher.stats().__dict__)
    if tty and not args.quiet:
        print(file=sys.stderr)
    print(f"deg-camera: {info['reason']}; {_status_line(args.camera_id, info)}", file=sys.stderr)
    if info["lossless_dropped"]:
        print(f"deg-camera: WARNING: the lossless path dropped {info['lossless_dropped']} frames", file=sys.stderr)
    if info.get("lossless_refused"):
        print(
            f"deg-camera: WARNING: {info['lossless_refused']} extra receivers tried the lossless endpoint and were "
            "refused (one recorder per stream)",
            file=sys.stderr,
        )
    if info.get("send_errors"):
        print(
            f"deg-camera: WARNING: {info['send_errors']} frames failed to send (see the errors above)", file=sys.stderr
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``deg-camera``; returns the exit status."""
    return run_parsed("deg-camera", build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
