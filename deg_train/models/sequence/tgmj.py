"""DeepEthogram's own TGMJ sequence model, exactly as DeepEthogram 0.5 runs it: centred, offline only.

This is the model a lab trained with DeepEthogram (``sequence.arch: tgmj``), rebuilt so its weights load and give
its probabilities (:func:`deg_train.models.weights.load_weights` maps the names; ``deg-train import-deepethogram``
makes a run of it). It is NOT our causal :class:`~deg_train.models.sequence.tgm.TGM`: every TGM layer pads both
sides, so the output at t sees about 21 frames ahead, and it cannot stream (``causal`` is always False). It exists
to reproduce a lab's DeepEthogram results and to compare them with our causal model on the same features.

What DeepEthogram does and this reproduces (``deepethogram/sequence/models/tgm.py``, class ``TGMJ``):

- 3 TGM layers (Cauchy kernels, soft attention over kernels and input channels) with symmetric zero padding of
  (L - 1) // 2 and L - 1 - (L - 1) // 2 frames, the max over the c_out channels -> ``smoothed (B, D, T)``;
- both heads use the SAME hidden layer ``h`` (its ``h2`` is built but never used): ``classify1(relu(h(x)))`` on the
  raw features and ``classify2(relu(h(smoothed)))`` on the smoothed ones, averaged;
- with ``final_bn`` (DeepEthogram's default) each head is a bias-free 1x1 convolution followed by a BatchNorm1d over
  the K classes (in eval mode: its running statistics); without it, a 1x1 convolution with bias;
- inference runs on non-overlapping chunks of ``chunk_length`` frames (its ``sequence.sequence_length``, 180),
  the last chunk zero-padded on the right, each chunk on its own (its ``FeatureVectorDataset`` with
  ``nonoverlapping=True``); ``chunk_length=None`` runs the whole video at once.

Layouts: features (B, T, D); logits (B, T, K).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deg_train.models.registry import register_model
from deg_train.models.sequence.base import SequenceModel
from deg_train.models.sequence.tgm import TGMLayer


@register_model("sequence", "tgmj")
class DeepEthogramTGMJ(SequenceModel):
    """DeepEthogram's TGMJ (centred; see the module docstring).

    Args:
        input_dim: D (DeepEthogram: 1024 = 512 spatial + 512 flow features).
        num_classes: K.
        n_filters: base kernels per layer (``sequence.n_filters``, 8).
        filter_length: L (``sequence.filter_length``, 15).
        num_layers: TGM layers (``sequence.num_layers``, 3).
        c_out: channels per layer (``sequence.c_out``, 8).
        num_features: hidden size (``sequence.num_features``, 128).
        input_dropout: dropout on the head inputs (``sequence.input_dropout``).
        dropout: dropout before the last layer (``sequence.dropout_p``).
        final_bn: BatchNorm1d after bias-free classifiers (``sequence.final_bn``, True).
        nonlinear_classification: the hidden layer ``h`` (``sequence.nonlinear_classification``, True).
        chunk_length: frames per independent chunk at inference (``sequence.sequence_length``, 180); None: whole.
        causal: must be False (accepted so a run's ``model_kwargs`` may name it).
    """

    def __init__(
        self,
        input_dim: int,
        num_classes: int,
        n_filters: int = 8,
        filter_length: int = 15,
        num_layers: int = 3,
        c_out: int = 8,
        num_features: int = 128,
        input_dropout: float = 0.5,
        dropout: float = 0.5,
        final_bn: bool = True,
        nonlinear_classification: bool = True,
        chunk_length: int | None = 180,
        causal: bool = False,
    ) -> None:
        super().__init__()
        if causal:
            raise ValueError("DeepEthogram's tgmj is centred (it looks ahead); use our causal 'tgm' for live use")
        self.input_dim = input_dim
        self.num_classes = num_classes
        self.causal = False
        self.filter_length = filter_length
        self.num_layers = num_layers
        self.final_bn = final_bn
        self.chunk_length = chunk_length
        self.receptive_field = num_layers * (filter_length - 1) + 1
        self.tgm_layers = nn.ModuleList(
            TGMLayer(n_filters, filter_length, 1 if i == 0 else c_out, c_out, causal=False) for i in range(num_layers)
        )
        self.input_dropout = nn.Dropout(input_dropout)
        self.output_dropout = nn.Dropout(dropout)
        hidden = num_features if nonlinear_classification else input_dim
        self.h = nn.Linear(input_dim, num_features) if nonlinear_classification else None
        self.classify1 = nn.Linear(hidden, num_classes, bias=not final_bn)
        self.classify2 = nn.Linear(hidden, num_classes, bias=not final_bn)
        self.bn1 = nn.BatchNorm1d(num_classes) if final_bn else None
        self.bn2 = nn.BatchNorm1d(num_classes) if final_bn else None

    def heads(self) -> list[nn.Module]:
        """The final layers (for bias initialisation: the BatchNorm's bias with ``final_bn``, as DeepEthogram)."""
        if self.final_bn:
            return [self.bn1, self.bn2]
        return [self.classify1, self.classify2]

    def _head(self, x: torch.Tensor, classify: nn.Linear, bn: nn.BatchNorm1d | None) -> torch.Tensor:
        # x: (B, T, D) -> (B, T, K)
        x = self.input_dropout(x)
        if self.h is not None:
            x = self.output_dropout(F.relu(self.h(x)))
        logits = classify(x)
        if bn is not None:
            logits = bn(logits.transpose(1, 2)).transpose(1, 2)  # BatchNorm1d over K, on (B, K, T)
        return logits

    def _forward_chunk(self, features: torch.Tensor) -> torch.Tensor:
        p = self.filter_length - 1
        x = features.transpose(1, 2).unsqueeze(1)  # (B, 1, D, T)
        for layer in self.tgm_layers:
            x = layer(F.pad(x, (p // 2, p - p // 2)))
        smoothed = x.amax(dim=1).transpose(1, 2)  # (B, T, D)
        raw = self._head(features, self.classify1, self.bn1)
        smooth = self._head(smoothed, self.classify2, self.bn2)
        return (raw + smooth) / 2.0

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Per-frame logits ``(B, T, K)`` of features ``(B, T, D)``, chunk by chunk as DeepEthogram runs it."""
        if self.chunk_length is None or self.training:
            return self._forward_chunk(features)
        n = features.shape[1]
        size = self.chunk_length
        chunks = []
        for start in range(0, n, size):
            chunk = features[:, start : start + size]
            if chunk.shape[1] < size:  # DeepEthogram zero-pads the last chunk to full length on the right
                chunk = F.pad(chunk, (0, 0, 0, size - chunk.shape[1]))
            chunks.append(self._forward_chunk(chunk)[:, : min(size, n - start)])
        return torch.cat(chunks, dim=1)

    def init_state(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        """Not available: the model is centred."""
        self._require_causal()
        raise AssertionError  # unreachable

    def step(self, feature, state):  # noqa: D102 - centred: no streaming
        self._require_causal()
        raise AssertionError  # unreachable
