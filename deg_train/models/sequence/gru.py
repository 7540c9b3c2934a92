"""GRU sequence model: a unidirectional (causal) recurrent network over per-frame features.

Streaming state is the GRU hidden state (num_layers, B, hidden_size). ``causal=False`` makes it bidirectional
(for comparison with non-causal models; it cannot stream). The receptive field is unbounded (None).

Layouts: features (B, T, D); logits (B, T, K).
"""

from __future__ import annotations

import torch
from torch import nn

from deg_train.models.registry import register_model
from deg_train.models.sequence.base import SequenceModel


@register_model("sequence", "gru")
class GRU(SequenceModel):
    """Causal GRU.

    Args:
        input_dim: D.
        num_classes: K.
        hidden_size: GRU hidden size.
        num_layers: stacked GRU layers.
        input_dropout: dropout on the input features.
        dropout: dropout between GRU layers and before the classifier.
        causal: unidirectional (default); False: bidirectional, no streaming.
    """

    def __init__(
        self,
        input_dim: int,
        num_classes: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        input_dropout: float = 0.5,
        dropout: float = 0.25,
        causal: bool = True,
    ) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.num_classes = num_classes
        self.causal = causal
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.receptive_field = None
        self.input_dropout = nn.Dropout(input_dropout)
        self.gru = nn.GRU(
            input_dim,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
            bidirectional=not causal,
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size * (1 if causal else 2), num_classes)

    def heads(self) -> list[nn.Linear]:
        """The final layer (for bias initialisation from label counts)."""
        return [self.classifier]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Per-frame logits: features (B, T, D) -> logits (B, T, K), from a zero initial state."""
        out, _ = self.gru(self.input_dropout(features))
        return self.classifier(self.dropout(out))

    def init_state(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        """Zero hidden state (num_layers, B, hidden_size)."""
        self._require_causal()
        p = self._param()
        return (torch.zeros(self.num_layers, batch, self.hidden_size, dtype=p.dtype, device=p.device),)

    def step(
        self, feature: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """One frame: feature (B, D) -> logits (B, K), and the new hidden state."""
        self._require_causal()
        out, hidden = self.gru(self.input_dropout(feature).unsqueeze(1), state[0])
        return self.classifier(self.dropout(out[:, 0])), (hidden,)
