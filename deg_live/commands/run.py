r"""``deg-live run``: a bundle on a camera adapter's frames, publishing events and state, optionally recording.

Examples::

    deg-camera synthetic fps=30 --bind tcp://127.0.0.1:5555 --lossless tcp://127.0.0.1:5556 &
    deg-live run --bundle bundles/rat --frames tcp://127.0.0.1:5555
    deg-live run --bundle bundles/rat --frames tcp://127.0.0.1:5555 --lossless tcp://127.0.0.1:5556 \
        --record recordings/ --processor "serial port=/dev/ttyUSB0 behaviour=grooming"
    # rehearse on a recorded video, every frame in order (the camera waits for inference):
    deg-camera video path=s.mp4 rate=0 --bind ipc:///tmp/c --lossless ipc:///tmp/c-all --lossless-block &
    deg-live run --bundle bundles/rat --frames ipc:///tmp/c-all --every-frame --exit-at-end --record rec/

Ctrl-C or SIGTERM stops it cleanly: the recording is finalised (status ``interrupted``) and the telemetry
saved; a second signal aborts at once. An unexpected error stops it with exit status 1 and the recording
marked ``failed``.

Endpoints bind loopback unless ``--allow-remote``; beyond one machine, protect them with CURVE (docs/security.md):
``--curve-keys`` (this machine's key pair), ``--curve-clients`` (who may receive events/state) and
``--curve-camera-key`` (the camera adapter's public key: frames from anyone else are refused).
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from camera_adapters.errors import UserFacingError
from camera_adapters.wire import DEFAULT_MAX_PIXELS
from deg_live.events import DEFAULT_EVENTS_ENDPOINT

logger = logging.getLogger(__name__)


class RunArgumentError(UserFacingError, ValueError):
    """Command-line options that do not fit together."""


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` (width x height) -> ``(480, 640)`` (height, width).

    Raises:
        argparse.ArgumentTypeError: malformed.
    """
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected WIDTHxHEIGHT, e.g. 640x480") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"size {text!r}: width and height must be positive")
    return h, w


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    """``--backend``, ``--device``, ``--precision`` (shared with ``deg-live bench``)."""
    p.add_argument(
        "--backend",
        default="auto",
        help="inference engine: auto (default: TensorRT, then torch on CUDA, then the fastest CPU engine), "
        "onnxruntime, torch or tensorrt",
    )
    p.add_argument("--device", help="engine device, e.g. cpu, cuda, cuda:1 (default: the engine's)")
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16"), help="engine precision (default fp32)")
    p.add_argument(
        "--engine-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="backend option, e.g. threads=1 or spinning=false for onnxruntime (repeatable; see docs/engines.md)",
    )


def _parse_value(text: str):
    """``"1"`` -> 1, ``"0.5"`` -> 0.5, ``"true"``/``"false"`` -> bool, anything else stays a string."""
    lowered = text.lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def engine_options(args: argparse.Namespace) -> dict:
    """The engine keyword options given on the command line."""
    options: dict = {}
    for item in getattr(args, "engine_option", None) or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RunArgumentError(f"--engine-option {item!r}: expected KEY=VALUE, e.g. threads=1")
        options[key.strip().replace("-", "_")] = _parse_value(value.strip())
    if getattr(args, "device", None):
        options["device"] = args.device
    if getattr(args, "precision", None):
        options["precision"] = args.precision
    return options


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``run``."""
    p = subparsers.add_parser(
        "run",
        help="run a model bundle on live camera frames and publish behaviour events",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--bundle", required=True, help="model bundle directory (from `deg-train export`)")
    p.add_argument("--frames", required=True, metavar="ENDPOINT", help="the camera adapter's live endpoint")
    p.add_argument("--camera", default="cam0", help="camera id to take frames from and publish for (default cam0)")
    p.add_argument(
        "--every-frame",
        action="store_true",
        help="take every frame in order from a LOSSLESS endpoint given as --frames (nothing skipped; the camera "
        "adapter should run with --lossless-block); for rehearsals on recorded video",
    )
    add_engine_arguments(p)
    p.add_argument(
        "--events",
        default=DEFAULT_EVENTS_ENDPOINT,
        metavar="ENDPOINT",
        help=f"where to publish events/<camera> (and state/<camera>) (default {DEFAULT_EVENTS_ENDPOINT})",
    )
    p.add_argument("--state", metavar="ENDPOINT", help="publish state/<camera> on this endpoint instead")
    p.add_argument("--state-every", type=int, default=1, help="publish a state message every N frames (default 1)")
    p.add_argument("--record", metavar="DIR", help="record every frame, predictions and events into DIR/<session>/")
    p.add_argument("--lossless", metavar="ENDPOINT", help="the camera adapter's lossless endpoint (for --record)")
    p.add_argument("--session", help="recording session name (default <camera>_<UTC date_time>)")
    p.add_argument(
        "--record-codec",
        choices=("lossless", "high"),
        default="lossless",
        help="lossless: H.264 RGB qp 0, every pixel exact (default); high: H.264 yuv420p crf 15, smaller",
    )
    p.add_argument(
        "--record-reserve-mb",
        type=float,
        default=8.0,
        help="the recorder stops when less than this is free, and keeps as much again in reserve to finalise its "
        "files (default 8 MB)",
    )
    p.add_argument(
        "--processor",
        action="append",
        default=[],
        metavar="SPEC",
        help='in-process closed-loop action, e.g. "print" or "serial port=/dev/ttyUSB0 line=dtr behaviour=grooming" '
        "or package.module:Class (repeatable)",
    )
    p.add_argument(
        "--max-gap",
        type=int,
        default=30,
        help="reset the history after a jump of more frames (and more than 4x the stride; default 30)",
    )
    p.add_argument("--frame-size", type=parse_size, metavar="WxH", help="drop frames of any other size")
    p.add_argument("--max-frames", type=int, help="stop after processing this many frames")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--exit-at-end", action="store_true", help="stop when the camera adapter ends its stream")
    p.add_argument("--telemetry", metavar="DIR", help="also save telemetry.json/.csv into DIR")
    p.add_argument("--warmup", type=int, default=10, help="warm-up iterations before the first frame (default 10)")
    p.add_argument("--quiet", action="store_true", help="no live telemetry line")
    p.add_argument(
        "--max-frame-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        metavar="N",
        help=f"drop (and count) frames larger than N pixels, before parsing them (default {DEFAULT_MAX_PIXELS}, "
        "4096x4096)",
    )
    add_network_arguments(p)
    p.set_defaults(func=run)


def add_network_arguments(p: argparse.ArgumentParser) -> None:
    """``--allow-remote`` and the CURVE options of ``deg-live run``."""
    net = p.add_argument_group("network (docs/security.md)")
    net.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow --events/--state to bind addresses other machines can reach (protect them with --curve-keys)",
    )
    net.add_argument("--curve-keys", metavar="FILE", help="CURVE: this machine's key pair (NAME.key_secret)")
    net.add_argument(
        "--curve-clients",
        metavar="DIR",
        help="CURVE: directory of the public keys (NAME.key) allowed to receive events and state",
    )
    net.add_argument(
        "--curve-camera-key",
        metavar="FILE",
        help="CURVE: the camera adapter's public key (NAME.key); frames from anyone else are refused",
    )


def run(args: argparse.Namespace) -> int:
    """Execute ``deg-live run``."""
    if args.record and not args.lossless and not args.every_frame:
        raise RunArgumentError(
            "--record needs every frame: start the camera adapter with --lossless ENDPOINT and pass the same "
            "--lossless ENDPOINT here (or use --every-frame)"
        )
    if args.lossless and not args.record:
        logger.warning("--lossless is only used with --record; ignoring it")
    if args.max_frame_pixels <= 0:
        raise RunArgumentError("--max-frame-pixels must be positive")
    from camera_adapters.network import check_endpoint

    for flag in ("events", "state"):  # refused before the bundle and the engine load, not after
        if getattr(args, flag):
            check_endpoint(getattr(args, flag), allow_remote=args.allow_remote, what=f"--{flag}")

    # Ctrl-C / SIGTERM from the start: stop cleanly (the recording is finalised); a second signal aborts.
    stop = threading.Event()
    status = {"value": "complete"}

    def on_signal(signum, _frame):
        if stop.is_set():
            raise KeyboardInterrupt  # second signal: abort now
        status["value"] = "interrupted"
        logger.info("%s: stopping (again to abort)", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _run(args, stop, status)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _run(args: argparse.Namespace, stop: threading.Event, status: dict) -> int:
    from camera_adapters.network import curve_client_from_args, curve_server_from_args
    from camera_adapters.wire import FrameLimits
    from deg_live.bundle import read_bundle
    from deg_live.engines import create_engine
    from deg_live.pipeline import LivePipeline
    from deg_live.processors import create_processor
    from deg_live.recorder import Recorder
    from deg_live.telemetry import Telemetry, TelemetryPrinter

    # Everything that can fail on user input before any socket opens: the bundle, the engine, the processors.
    # --curve-keys serves both roles: server of events/state (with --curve-clients), client of the camera
    # adapter (with --curve-camera-key); either may be used alone.
    curve_server = curve_server_from_args(args.curve_keys if args.curve_clients else None, args.curve_clients)
    curve_frames = curve_client_from_args(
        args.curve_keys if args.curve_camera_key else None, args.curve_camera_key, server_flag="--curve-camera-key"
    )
    if args.curve_keys and not (curve_server or curve_frames):
        raise RunArgumentError("--curve-keys needs --curve-clients and/or --curve-camera-key")
    bundle = read_bundle(args.bundle)
    processors = [create_processor(spec) for spec in args.processor]
    engine = None
    pipeline = None
    try:
        engine = create_engine(bundle, args.backend, **engine_options(args))
        recorder = None
        if args.record:
            recorder = Recorder(
                Path(args.record),
                args.camera,
                bundle.behaviours,
                bundle.thresholds,
                session=args.session,
                codec=args.record_codec,
                ballast_bytes=int(args.record_reserve_mb * (1 << 20)),
                metadata={"bundle": str(bundle.directory), "preset": bundle.manifest.preset, "engine": engine.name},
            )
        telemetry = Telemetry()
        try:
            pipeline = LivePipeline(
                bundle,
                args.frames,
                engine=engine,
                events_endpoint=args.events,
                state_endpoint=args.state,
                camera_id=args.camera,
                every_frame=args.every_frame,
                recorder=recorder,
                lossless_endpoint=args.lossless if args.record else None,
                telemetry=telemetry,
                processors=processors,
                max_gap=args.max_gap,
                frame_size=args.frame_size,
                state_every=args.state_every,
                frame_limits=FrameLimits(max_pixels=args.max_frame_pixels),
                allow_remote=args.allow_remote,
                curve_server=curve_server,
                curve_frames=curve_frames,
            )
        except BaseException:
            if recorder is not None:
                recorder.close("failed")
            raise
        processors = []  # the pipeline owns them now
        if not stop.is_set():
            pipeline.warmup(args.warmup)

        printer = None if args.quiet else TelemetryPrinter(telemetry)
        try:
            pipeline.run(
                max_frames=args.max_frames,
                duration_s=args.duration,
                stop=stop,
                exit_at_end=args.exit_at_end,
                printer=printer,
            )
        except KeyboardInterrupt:
            status["value"] = "interrupted"
        except Exception as err:
            # A bug or an unexpected failure: the traceback goes out (exit status 1), the recording says failed.
            status["value"] = "failed"
            logger.critical("deg-live run STOPPED on an unexpected error; the recording is marked failed")
            if recorder is not None and recorder.failed is None:
                recorder.failed = f"deg-live run stopped on an unexpected error: {type(err).__name__}: {err}"
            raise
        finally:
            if printer is not None:
                printer.finish()
            pipeline.close(status["value"], telemetry_dir=args.telemetry)
        print(telemetry.line())
        if recorder is not None:
            print(f"recording: {recorder.folder} ({recorder.frames_written} frames, status {recorder.status})")
            if recorder.failed:
                print(f"RECORDING FAILED: {recorder.failed}")
            if recorder.frames_missing:
                print(
                    f"RECORDING INCOMPLETE: {recorder.frames_missing} frames missing from the camera's numbering "
                    f"in {recorder.index_gaps} places (see {recorder.info_path.name})"
                )
        return 0
    finally:
        if pipeline is not None:
            pipeline.close("interrupted")
        for processor in processors:
            processor.close()
        if engine is not None:
            engine.close()
