"""Dilated temporal convolutional network (TCN), causal.

A 1x1 input projection, then residual blocks ``x + dropout(relu(conv_k,d(x)))`` with dilations 1, 2, 4, 8 ...
and a 1x1 classifier. Causal: each dilated convolution pads (k - 1) * d zeros on the LEFT, so logits at t see
features t - R + 1 .. t, R = 1 + sum((k - 1) * d). Streaming keeps, per block, the last (k - 1) * d inputs.

Layouts: features (B, T, D); inside (B, C, T); logits (B, T, K).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deg_train.models.registry import register_model
from deg_train.models.sequence.base import SequenceModel


@register_model("sequence", "tcn")
class TCN(SequenceModel):
    """Causal dilated TCN.

    Args:
        input_dim: D.
        num_classes: K.
        hidden_size: channels of the blocks.
        kernel_size: temporal kernel k of each block.
        dilations: one block per dilation (default 1, 2, 4, 8: receptive field 31 frames with k = 3).
        input_dropout: dropout on the input features.
        dropout: dropout inside the blocks.
        causal: left-only padding (default); False pads both sides (no streaming).
    """

    def __init__(
        self,
        input_dim: int,
        num_classes: int,
        hidden_size: int = 64,
        kernel_size: int = 3,
        dilations: tuple[int, ...] | list[int] = (1, 2, 4, 8),
        input_dropout: float = 0.5,
        dropout: float = 0.25,
        causal: bool = True,
    ) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.num_classes = num_classes
        self.causal = causal
        self.kernel_size = kernel_size
        self.dilations = tuple(int(d) for d in dilations)
        self.hidden_size = hidden_size
        self.receptive_field = 1 + sum((kernel_size - 1) * d for d in self.dilations)
        self.input_dropout = nn.Dropout(input_dropout)
        self.input_proj = nn.Conv1d(input_dim, hidden_size, 1)
        self.blocks = nn.ModuleList(
            nn.Conv1d(hidden_size, hidden_size, kernel_size, dilation=d) for d in self.dilations
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Conv1d(hidden_size, num_classes, 1)

    def heads(self) -> list[nn.Conv1d]:
        """The final layer (for bias initialisation from label counts)."""
        return [self.classifier]

    def _pad(self, dilation: int) -> tuple[int, int]:
        p = (self.kernel_size - 1) * dilation
        return (p, 0) if self.causal else (p // 2, p - p // 2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Per-frame logits.

        Args:
            features: (B, T, D).

        Returns:
            logits (B, T, K).
        """
        x = self.input_proj(self.input_dropout(features).transpose(1, 2))  # (B, C, T)
        for conv, d in zip(self.blocks, self.dilations, strict=True):
            x = x + self.dropout(F.relu(conv(F.pad(x, self._pad(d)))))
        return self.classifier(x).transpose(1, 2)

    def init_state(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        """Per block, the last (k - 1) * d block inputs: (B, hidden_size, (k - 1) * d)."""
        self._require_causal()
        p = self._param()
        return tuple(
            torch.zeros(batch, self.hidden_size, (self.kernel_size - 1) * d, dtype=p.dtype, device=p.device)
            for d in self.dilations
        )

    def step(
        self, feature: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """One frame: feature (B, D) -> logits (B, K), and the updated per-block buffers."""
        self._require_causal()
        x = self.input_proj(self.input_dropout(feature).unsqueeze(2))  # (B, C, 1)
        new_state = []
        for conv, buffer in zip(self.blocks, state, strict=True):
            window = torch.cat([buffer, x], dim=2)  # (B, C, (k-1)d + 1)
            new_state.append(window[:, :, 1:])
            x = x + self.dropout(F.relu(conv(window)))
        return self.classifier(x)[:, :, 0], tuple(new_state)
