"""deg_train: DeepEthogram's three stages (flow generator, two-stream feature extractor, sequence model),
trained causally on a DeepEthogram-layout project, evaluated, and exported as a model bundle for deg_live.
"""

__version__ = "0.1.0"
