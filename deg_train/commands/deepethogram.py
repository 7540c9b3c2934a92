"""``deg-train import-deepethogram``: a DeepEthogram project's trained models become runs of ours.

See :mod:`deg_train.inference.deepethogram` for what is reproduced and how; the command prints the runs written and
the commands that come next (extract, infer, train-sequence, export).
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``import-deepethogram`` subcommand."""
    p = subparsers.add_parser(
        "import-deepethogram",
        help="turn a DeepEthogram project's trained models into ready runs of ours",
        description="Read a DeepEthogram 0.5 project's newest trained flow generator, feature extractor and TGMJ "
        "sequence model (or the files given) and write them as runs of ours into its models/ folder, with its "
        "normalisation, input size, frame picker and centred clip reproduced, so `deg-train infer` gives its "
        "probabilities; its TGMJ becomes the centred (offline-only) sequence run. Nothing DeepEthogram wrote is "
        "changed. Files are read without running code from them.",
    )
    p.add_argument("-p", "--project", required=True, help="the DeepEthogram project folder (project_config.yaml)")
    p.add_argument("--feature-weights", help="its feature extractor file (checkpoint.pt or .ckpt); default: newest")
    p.add_argument("--flow-weights", help="its flow generator file; default: the newest flow generator run's")
    p.add_argument("--sequence-weights", help="its sequence (TGMJ) file; default: the newest, if any")
    p.set_defaults(func=_import)


def _import(args: argparse.Namespace) -> int:
    from deg_train.inference.deepethogram import import_deepethogram

    runs = import_deepethogram(
        args.project,
        feature_weights=args.feature_weights,
        flow_weights=args.flow_weights,
        sequence_weights=args.sequence_weights,
    )
    print(f"feature run:  {runs.feature_run}  (outputs group {runs.latent_name})")
    for kind, source in runs.sources.items():
        print(f"  {kind:9s} from {source}")
    print(f"causal twin:  {runs.causal_feature_run}  (same weights on our causal window: for live use)")
    if runs.sequence_run is not None:
        print(f"sequence run: {runs.sequence_run}  (DeepEthogram's TGMJ: centred, offline only)")
    for item in runs.not_honoured:
        print(f"not reproduced: {item}")
    p = args.project
    print("next:")
    if runs.sequence_run is not None:
        print(
            f"  deg-train infer -p {p} --feature-run {runs.feature_run.name} --sequence-run {runs.sequence_run.name} "
            "--postprocess offline   # DeepEthogram's own predictions"
        )
    print(f"  deg-train train-sequence -p {p} --feature-run {runs.causal_feature_run.name}   # our causal model")
    print(f"  deg-train export {p} --out BUNDLE   # then: deg-live run --bundle BUNDLE ...")
    return 0
