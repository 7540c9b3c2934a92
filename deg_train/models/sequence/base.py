"""Base class of the sequence models (stage 3) and the streaming contract.

Every sequence model maps per-frame features to per-frame logits, ``forward(features (B, T, D)) -> logits
(B, T, K)``, and is causal by default: the logits at t depend on features <= t only. For live use it also
streams: ``state = init_state(B)``, then per frame ``logits, state = step(feature (B, D), state)``; the state is
a tuple of FIXED-SHAPE tensors (ONNX-exportable), and stepping through a sequence from ``init_state`` gives the
same logits as ``forward`` on the whole sequence (tested to 1e-5).
"""

from __future__ import annotations

import torch
from torch import nn


class SequenceModel(nn.Module):
    """Base: subclasses implement ``forward``, ``init_state`` and ``step``.

    Attributes:
        input_dim: D.
        num_classes: K.
        causal: True unless built with ``causal=False`` (centred, DeepEthogram-like; no streaming).
        receptive_field: frames of history that influence one output (current frame included); None for
            recurrent models (unbounded).
    """

    input_dim: int
    num_classes: int
    causal: bool
    receptive_field: int | None

    def init_state(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        """Zero streaming state for ``batch`` streams (fixed shapes, on the model's device)."""
        raise NotImplementedError

    def initial_state(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        """Alias of :meth:`init_state`."""
        return self.init_state(batch)

    def step(
        self, feature: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """One frame: feature (B, D) and state -> logits (B, K) and the new state."""
        raise NotImplementedError

    def _require_causal(self) -> None:
        if not self.causal:
            raise RuntimeError(f"{type(self).__name__} was built with causal=False: it cannot stream")

    def _param(self) -> torch.Tensor:
        return next(self.parameters())
