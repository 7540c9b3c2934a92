"""``deg-live view``: the ethogram viewer, live on a running pipeline or reviewing a recording / offline result.

Examples::

    # live: state and events from `deg-live run` (default tcp://127.0.0.1:5560), pictures from the camera adapter
    deg-live view --state tcp://127.0.0.1:5560 --frames tcp://127.0.0.1:5555 --bundle bundles/rat
    # review a recorded session (deg-live run --record recordings/)
    deg-live view --session recordings/cam0_20250101_120000
    # review an offline result (deg-train infer) against the labels beside the video
    deg-live view --outputs DATA/rat1/rat1_outputs.h5 --video DATA/rat1/rat1.mp4
    # headless: a PNG of the window after 5 s, then exit
    QT_QPA_PLATFORM=offscreen deg-live view --state tcp://127.0.0.1:5560 --screenshot ethogram.png --after 5

Review keys: Left/Right one frame (Shift: ten), PageUp/PageDown one second, Home/End, Space play/pause; the
slider scrolls; the mouse wheel zooms the time axis.
"""

from __future__ import annotations

import argparse

from camera_adapters.errors import UserFacingError
from deg_live.events import DEFAULT_EVENTS_ENDPOINT


class ViewArgumentError(UserFacingError, ValueError):
    """Options of ``deg-live view`` that do not fit together."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``view``."""
    p = subparsers.add_parser(
        "view",
        help="open the ethogram viewer (live on a pipeline, or reviewing a recording or outputs file)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    live = p.add_argument_group("live")
    live.add_argument(
        "--state",
        metavar="ENDPOINT",
        help=f"endpoint publishing state/<camera> (deg-live run's --state, else its --events; "
        f"default {DEFAULT_EVENTS_ENDPOINT} when no review option is given)",
    )
    live.add_argument("--events", metavar="ENDPOINT", help="endpoint publishing events/<camera> (default: --state)")
    live.add_argument("--frames", metavar="ENDPOINT", help="the camera adapter's live frame endpoint, for the picture")
    live.add_argument("--camera", help="only this camera id (default: any)")
    live.add_argument("--bundle", metavar="DIR", help="model bundle, to draw its thresholds on the traces")
    live.add_argument("--refresh", type=float, default=30.0, metavar="HZ", help="redraws per second (default 30)")
    live.add_argument("--curve-keys", metavar="FILE", help="CURVE: this viewer's key pair (NAME.key_secret)")
    live.add_argument("--curve-server-key", metavar="FILE", help="CURVE: deg-live run's public key (NAME.key)")
    live.add_argument("--curve-camera-key", metavar="FILE", help="CURVE: the camera adapter's public key, for --frames")
    review = p.add_argument_group("review")
    review.add_argument("--session", metavar="DIR", help="a recorded session folder (deg-live run --record)")
    review.add_argument("--outputs", metavar="H5", help="an offline <video>_outputs.h5 (deg-train infer)")
    review.add_argument("--video", metavar="FILE", help="the video of --outputs (default: beside it)")
    review.add_argument("--group", help="the outputs file's model group (default: the newest sequence model's)")
    review.add_argument("--labels", metavar="CSV", help="label CSV to compare with (default: <video>_labels.csv)")
    p.add_argument("--seconds", type=float, default=20.0, help="ethogram window width in seconds (default 20)")
    p.add_argument("--screenshot", metavar="PNG", help="save a PNG of the window after --after seconds, then exit")
    p.add_argument("--after", type=float, default=3.0, metavar="S", help="seconds before the screenshot (default 3)")
    p.add_argument("--duration", type=float, metavar="S", help="close the window after this many seconds")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``deg-live view``."""
    from deg_live.viewer.app import run_viewer

    reviews = [name for name in ("session", "outputs") if getattr(args, name)]
    if len(reviews) > 1:
        raise ViewArgumentError("give either --session or --outputs, not both")
    if reviews and (args.state or args.events or args.frames):
        raise ViewArgumentError("--state/--events/--frames are for the live view; leave them out to review")
    if (args.video or args.group) and not args.outputs:
        raise ViewArgumentError("--video and --group go with --outputs")
    if args.seconds <= 0 or args.refresh <= 0:
        raise ViewArgumentError("--seconds and --refresh must be positive")
    common = dict(
        seconds=args.seconds,
        screenshot=args.screenshot,
        screenshot_after_s=args.after,
        duration_s=args.duration,
    )
    if args.session:
        from deg_live.viewer.review import load_session

        return run_viewer(review=load_session(args.session, labels=args.labels), **common)
    if args.outputs:
        from deg_live.viewer.review import load_outputs

        data = load_outputs(args.outputs, args.video, group=args.group, labels=args.labels)
        return run_viewer(review=data, **common)

    from deg_live.viewer.receiver import StreamReceiver

    thresholds = None
    if args.bundle:
        from deg_live.bundle import read_bundle

        thresholds = read_bundle(args.bundle, verify=False).thresholds
    from camera_adapters.network import curve_client_from_args

    curve = curve_client_from_args(args.curve_keys if args.curve_server_key else None, args.curve_server_key)
    frames_curve = curve_client_from_args(
        args.curve_keys if args.curve_camera_key else None, args.curve_camera_key, server_flag="--curve-camera-key"
    )
    if args.curve_keys and not (curve or frames_curve):
        raise ViewArgumentError("--curve-keys needs --curve-server-key and/or --curve-camera-key")
    receiver = StreamReceiver(
        args.state or DEFAULT_EVENTS_ENDPOINT,
        args.events,
        args.frames,
        camera_id=args.camera,
        curve=curve,
        frames_curve=frames_curve,
    )
    return run_viewer(receiver=receiver, refresh_hz=args.refresh, thresholds=thresholds, **common)
