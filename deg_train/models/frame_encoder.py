"""The two graphs that offline inference and the ONNX export both use, so they are equal by construction.

- :class:`FrameEncoder`: one window of raw frames -> the frame's features and stage-2 logits, preprocessing
  included (uint8 -> float, / 255, normalise with the model's mean/std, channels-first), flows generated
  inside by the frozen flow generator. Live: called once per new frame on the last T frames.
- :class:`SequenceStep`: one frame's features + streaming state -> probabilities + new state (sigmoid inside).
  Offline, ``SequenceModel.forward`` on the whole video gives the same logits.
"""

from __future__ import annotations

import torch
from torch import nn

from deg_train.models.feature.two_stream import TwoStream
from deg_train.models.sequence.base import SequenceModel


class FrameEncoder(nn.Module):
    """Raw frames in, features and logits out (stage 1 + 2 with preprocessing).

    Args:
        model: a trained :class:`TwoStream`; its ``input_mean``/``input_std`` are used for normalisation.

    Attributes:
        num_frames: T, frames per window.
        num_features: Ds + Df.
        num_classes: K.
    """

    def __init__(self, model: TwoStream) -> None:
        super().__init__()
        self.model = model
        self.num_frames = model.num_frames
        self.num_features = model.num_features
        self.num_classes = model.num_classes
        # Copies (not views) so an exported graph carries its own constants: (1, 1, 1, 1, 3) channels-last.
        self.register_buffer("mean", model.input_mean.detach().clone().view(1, 1, 1, 1, 3))
        self.register_buffer("std", model.input_std.detach().clone().view(1, 1, 1, 1, 3))

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode windows of frames; the last frame of each window is the frame being classified.

        Args:
            frames: (B, T, H, W, 3) uint8 RGB, already resized to the model's input size.

        Returns:
            features (B, Ds + Df) float32 = concat(spatial, flow), logits (B, K) float32.
        """
        x = frames.to(torch.float32) / 255.0
        x = ((x - self.mean) / self.std).permute(0, 1, 4, 2, 3)  # (B, T, 3, H, W)
        spatial, flow = self.model.forward_features(x)
        logits = self.model.forward_head(spatial, flow)
        return torch.cat([spatial, flow], dim=1), logits


class SequenceStep(nn.Module):
    """One streaming step of a causal sequence model, sigmoid (or softmax, for exclusive behaviours) included.

    ``forward(feature (B, D), *state) -> (probs (B, K), *new_state)``; state tensors have fixed shapes given by
    :meth:`initial_state`. Frame by frame from ``initial_state`` this equals
    ``sigmoid(sequence_model(features (B, T, D)))`` (``softmax(..., dim=-1)`` with ``exclusive``).

    Args:
        model: a causal sequence model.
        exclusive: mutually exclusive behaviours: softmax over the classes instead of a sigmoid each.
    """

    def __init__(self, model: SequenceModel, exclusive: bool = False) -> None:
        super().__init__()
        if not model.causal:
            raise ValueError("SequenceStep needs a causal sequence model (built with causal=True)")
        self.exclusive = bool(exclusive)
        self.model = model
        self.input_dim = model.input_dim
        self.num_classes = model.num_classes

    def initial_state(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        """Zero state for ``batch`` streams."""
        return self.model.init_state(batch)

    def forward(self, feature: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Feature (B, D) float32, state tensors -> probs (B, K) in [0, 1], new state tensors."""
        logits, new_state = self.model.step(feature, tuple(state))
        probs = torch.softmax(logits, dim=-1) if self.exclusive else torch.sigmoid(logits)
        return (probs, *new_state)
