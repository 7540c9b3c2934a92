"""Stage 3 sequence models (registry kind ``"sequence"``): causal TGM, dilated TCN, GRU; DeepEthogram's TGMJ."""

from deg_train.models.sequence.base import SequenceModel
from deg_train.models.sequence.gru import GRU
from deg_train.models.sequence.tcn import TCN
from deg_train.models.sequence.tgm import TGM, TGMLayer
from deg_train.models.sequence.tgmj import DeepEthogramTGMJ

__all__ = ["GRU", "TCN", "TGM", "DeepEthogramTGMJ", "SequenceModel", "TGMLayer"]
