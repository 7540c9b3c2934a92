"""deg_train: DeepEthogram's three stages, trained causally on a DeepEthogram-layout project.

Stage 1 is the self-supervised flow generator, stage 2 the hidden two-stream feature extractor, stage 3 the causal
sequence model; then thresholds, evaluation and export of a model bundle for deg_live. The command line is
``deg-train`` (:mod:`deg_train.cli`).
"""

__version__ = "0.1.0"
