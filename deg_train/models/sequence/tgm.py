"""Temporal Gaussian Mixture (TGM) sequence model, causal.

TGM layers (Piergiovanni & Ryoo, 'Temporal Gaussian Mixture Layer for Videos', ICML 2019) smooth each feature
dimension over time with a few learned bell-shaped kernels (Cauchy-shaped as in DeepEthogram's TGM: centre,
width), mixed by a soft attention. DeepEthogram stacks 3 layers (15-frame kernels, 8 kernels, 8 output
channels), takes the max over channels, then classifies the raw features and the smoothed features with two
small heads and averages the logits (its ``tgmj`` model).

Differences from DeepEthogram, on purpose:
- causal by default: every TGM layer pads on the LEFT only (L - 1 zeros), so the output at t depends on
  features t - R + 1 .. t with R = num_layers * (L - 1) + 1; ``causal=False`` pads both sides like DeepEthogram
  (for comparison only; it cannot stream);
- with ``causal=True`` the kernel centres start near the newest frame (tanh(1) of the way) instead of the middle;
- each layer's c_out x c_in kernels and channel attention are folded into ONE Conv2d weight
  (c_out, c_in, 1, L) — the same function, cheaper, exportable;
- the second head uses its own hidden layer (DeepEthogram's tgmj reuses the first one), and the feature
  extractor's logits are not an input.

Layouts: features (B, T, D); inside the layers (B, C, D, T); logits (B, T, K).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from deg_train.models.registry import register_model
from deg_train.models.sequence.base import SequenceModel


class TGMLayer(nn.Module):
    """One TGM layer: (B, c_in, D, T) -> (B, c_out, D, T), temporal kernels shared over D.

    Args:
        n_filters: number of base kernels (each: centre and width).
        filter_length: L, kernel length in frames.
        c_in: input channels (1 for the first layer).
        c_out: output channels.
        causal: centre init near the newest frame (the padding itself is done by the caller).
    """

    def __init__(self, n_filters: int, filter_length: int, c_in: int, c_out: int, causal: bool = True) -> None:
        super().__init__()
        self.n_filters = n_filters
        self.filter_length = filter_length
        self.c_in = c_in
        self.c_out = c_out
        self.center = nn.Parameter(torch.randn(n_filters) * 0.5 + (1.0 if causal else 0.0))
        self.gamma = nn.Parameter(torch.randn(n_filters) * 1e-4)
        self.soft_attn = nn.Parameter(torch.empty(c_out * c_in, n_filters))
        nn.init.xavier_normal_(self.soft_attn)
        if c_in > 1:
            self.cls_attn = nn.Parameter(torch.empty(c_out, c_in))
            nn.init.xavier_normal_(self.cls_attn)
        else:
            self.register_parameter("cls_attn", None)

    def base_kernels(self) -> torch.Tensor:
        """(n_filters, L) normalised Cauchy kernels; index L-1 is the newest frame in causal mode."""
        length = self.filter_length
        centers = (length - 1) * (torch.tanh(self.center) + 1.0) / 2.0
        gammas = torch.exp(1.5 - 2.0 * torch.abs(torch.tanh(self.gamma)))
        pos = torch.arange(length, dtype=centers.dtype, device=centers.device)
        f = 1.0 / (math.pi * gammas[:, None] * (1.0 + ((pos[None, :] - centers[:, None]) / gammas[:, None]) ** 2))
        return f / (f.sum(dim=1, keepdim=True) + 1e-6)

    def conv_weight(self) -> torch.Tensor:
        """The layer as one Conv2d weight (c_out, c_in, 1, L)."""
        kernels = F.softmax(self.soft_attn, dim=1) @ self.base_kernels()  # (c_out * c_in, L), rows sum to 1
        kernels = kernels.view(self.c_out, self.c_in, self.filter_length)
        if self.cls_attn is not None:
            kernels = kernels * F.softmax(self.cls_attn, dim=1)[:, :, None]
        return kernels.unsqueeze(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, c_in, D, T + L - 1) already padded -> (B, c_out, D, T)."""
        return F.conv2d(x, self.conv_weight())


@register_model("sequence", "tgm")
class TGM(SequenceModel):
    """Causal TGM sequence model (DeepEthogram's default ``tgmj``, left-padded).

    Args:
        input_dim: D, feature size (e.g. 1024 = 512 spatial + 512 flow).
        num_classes: K.
        n_filters: base kernels per layer (DeepEthogram: 8).
        filter_length: L (DeepEthogram: 15).
        num_layers: TGM layers (DeepEthogram: 3).
        c_out: channels per layer (DeepEthogram: 8).
        num_features: hidden size of each head (DeepEthogram: 128).
        input_dropout: dropout on the head inputs (DeepEthogram: 0.5).
        dropout: dropout before the last layer (DeepEthogram: 0.5).
        causal: left-only padding (default). False: symmetric padding as DeepEthogram (no streaming).
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
        causal: bool = True,
    ) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.num_classes = num_classes
        self.causal = causal
        self.filter_length = filter_length
        self.num_layers = num_layers
        self.c_out = c_out
        self.receptive_field = num_layers * (filter_length - 1) + 1
        self.tgm_layers = nn.ModuleList(
            TGMLayer(n_filters, filter_length, 1 if i == 0 else c_out, c_out, causal) for i in range(num_layers)
        )
        self.input_dropout = nn.Dropout(input_dropout)
        self.output_dropout = nn.Dropout(dropout)
        self.h = nn.Linear(input_dim, num_features)
        self.h2 = nn.Linear(input_dim, num_features)
        self.classify1 = nn.Linear(num_features, num_classes)
        self.classify2 = nn.Linear(num_features, num_classes)

    def heads(self) -> list[nn.Linear]:
        """The final Linear layers (for bias initialisation from label counts)."""
        return [self.classify1, self.classify2]

    def _pad(self) -> tuple[int, int]:
        p = self.filter_length - 1
        return (p, 0) if self.causal else (p // 2, p - p // 2)

    def _classify(self, features: torch.Tensor, smoothed: torch.Tensor) -> torch.Tensor:
        # features, smoothed: (..., D) -> logits (..., K)
        raw = self.classify1(self.output_dropout(F.relu(self.h(self.input_dropout(features)))))
        smooth = self.classify2(self.output_dropout(F.relu(self.h2(self.input_dropout(smoothed)))))
        return (raw + smooth) / 2.0

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Per-frame logits.

        Args:
            features: (B, T, D).

        Returns:
            logits (B, T, K); causal: row t depends on features[:, :t + 1] only.
        """
        x = features.transpose(1, 2).unsqueeze(1)  # (B, 1, D, T)
        for layer in self.tgm_layers:
            x = layer(F.pad(x, self._pad()))
        smoothed = x.amax(dim=1).transpose(1, 2)  # max over channels -> (B, T, D)
        return self._classify(features, smoothed)

    def init_state(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        """Per layer, the last L - 1 inputs: (B, 1, D, L-1) for layer 0, (B, c_out, D, L-1) after."""
        self._require_causal()
        p = self._param()
        n = self.filter_length - 1
        return tuple(
            torch.zeros(batch, 1 if i == 0 else self.c_out, self.input_dim, n, dtype=p.dtype, device=p.device)
            for i in range(self.num_layers)
        )

    def step(
        self, feature: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """One frame: feature (B, D) -> logits (B, K), and the updated per-layer buffers."""
        self._require_causal()
        x = feature[:, None, :, None]  # (B, 1, D, 1)
        new_state = []
        for layer, buffer in zip(self.tgm_layers, state, strict=True):
            window = torch.cat([buffer, x], dim=3)  # (B, c_in, D, L)
            new_state.append(window[..., 1:])
            x = layer(window)  # (B, c_out, D, 1)
        smoothed = x.amax(dim=1)[..., 0]  # (B, D)
        return self._classify(feature, smoothed), tuple(new_state)
