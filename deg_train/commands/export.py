"""``deg-train export``: write a model bundle for deg-live from trained runs."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``export`` to ``deg-train``."""
    parser = subparsers.add_parser(
        "export",
        help="export trained runs as a model bundle for deg-live",
        description="Export a feature run + a causal sequence run as a model bundle: encoder.onnx and "
        "sequence_step.onnx (dynamic batch), torch exported programs (.pt2) and manifest.json (behaviours, "
        "thresholds and postprocessing picked on validation, input size, frames per window, training summary, "
        "sha256 of every file). The exported graphs are checked against torch before the bundle is written.",
    )
    parser.add_argument(
        "run_or_project",
        metavar="RUN_OR_PROJECT",
        nargs="?",
        help="a sequence run directory, or a project directory (its newest finished sequence run is exported)",
    )
    parser.add_argument("--out", required=True, metavar="BUNDLE", help="the bundle directory to write")
    parser.add_argument(
        "--feature-run",
        metavar="RUN",
        help="the feature run (default: the one the sequence run was trained on, from its checkpoint)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bundle directory")
    parser.add_argument("--no-torch", action="store_true", help="skip the torch exported programs (.pt2); ONNX only")
    parser.add_argument(
        "--check-video",
        metavar="VIDEO",
        help="check the export on this video's first frames instead of random frames",
    )
    parser.add_argument("--preset", help="preset name to record in the manifest (default: from the run)")
    parser.add_argument(
        "--random-preset",
        metavar="PRESET",
        help="instead of trained runs, export this model preset (deg_f, deg_m, deg_s, deg_live_cpu) with random "
        "weights: a bundle for benchmarks (speed does not depend on the weights)",
    )
    parser.add_argument(
        "--size", metavar="HxW", help="input size for --random-preset, e.g. 128x128 (default: the preset's)"
    )
    parser.add_argument("--behaviours", type=int, default=7, help="K for --random-preset (default 7)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export and print a one-screen summary of the bundle."""
    from deg_train.export import ExportError, export_from_path, export_random

    if args.random_preset:
        size = None
        if args.size:
            try:
                h, w = (int(v) for v in args.size.lower().split("x"))
            except ValueError:
                raise ExportError(f"--size {args.size!r}: expected HEIGHTxWIDTH, e.g. 128x128") from None
            size = (h, w)
        bundle = export_random(
            args.random_preset,
            args.out,
            size=size,
            num_behaviours=args.behaviours,
            overwrite=args.overwrite,
            torch_programs=not args.no_torch,
        )
        return _summary(bundle)
    if not args.run_or_project:
        raise ExportError("give RUN_OR_PROJECT (a sequence run or a project directory), or --random-preset")
    bundle = export_from_path(
        args.run_or_project,
        args.out,
        feature_run=args.feature_run,
        overwrite=args.overwrite,
        torch_programs=not args.no_torch,
        example_video=args.check_video,
        preset=args.preset,
    )
    return _summary(bundle)


def _summary(bundle) -> int:
    m = bundle.manifest
    print(f"bundle: {bundle.directory}")
    print(f"behaviours ({m.num_behaviours}): {', '.join(m.behaviours)}")
    print(f"thresholds: {json.dumps([round(t, 3) for t in m.thresholds])}")
    print(f"input: {m.input.height}x{m.input.width} RGB, {m.input.frames_per_window} frames per window")
    seq = m.sequence
    print(f"features: {seq.feature_size}, sequence state: {seq.kind}, receptive field {seq.receptive_field}")
    for rel, entry in m.files.items():
        print(f"  {rel:24s} {entry.bytes / 1e6:8.2f} MB  sha256 {entry.sha256[:12]}")
    return 0
