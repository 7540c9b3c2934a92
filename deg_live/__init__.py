"""deg_live: causal, real-time behaviour classification from ZeroMQ camera frames to onset/offset events.

Importing this package does not import torch; engines load their frameworks lazily.
"""

__version__ = "0.1.0"
