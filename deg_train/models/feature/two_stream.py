"""Hidden two-stream feature extractor (stage 2): a spatial CNN on RGB and a flow CNN on generated flows.

The flow generator (stage 1) is frozen inside the model: it turns the clip into flows on the fly, the flow
CNN classifies those, the spatial CNN classifies the RGB input, and the two are fused (Zhu et al., 'Hidden
Two-Stream Convolutional Networks'; DeepEthogram). Causal by construction: the spatial stream sees the LAST
frame of the clip (the labelled frame t when the data side gives frames t-(T-1)..t).

Layouts: ``frames: (B, T, 3, H, W)`` normalised float; ``spatial_features: (B, Ds)``; ``flow_features:
(B, Df)``; ``logits: (B, K)``. Stage 3 uses ``concat(spatial_features, flow_features)`` (B, Ds + Df).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deg_train.models.flow.base import DEFAULT_MEAN, DEFAULT_STD, FlowGenerator
from deg_train.models.registry import create_model, register_model

FUSIONS = ("average", "concatenate")
SPATIAL_FRAMES = ("last", "middle", "deepethogram")


@register_model("two_stream", "hidden_two_stream")
class TwoStream(nn.Module):
    """Hidden two-stream model: frozen flow generator + spatial and flow backbones + fusion.

    Args:
        num_classes: K behaviours (multi-label, sigmoid outputs).
        flow_generator: registry name of the flow generator (kind "flow") or a built module (its
            ``num_frames`` must equal ``num_frames``).
        backbone: registry name of both streams' CNN (kind "feature"): "resnet18", "resnet50",
            "resnet3d_34"... A 3D backbone sees the whole RGB clip and the flows as a clip (DEG-slow).
        num_frames: T, frames per window.
        fusion: "average": logits = (spatial + w * flow) / (1 + w) with w = ``flow_fusion_weight``
            (DeepEthogram and the hidden two-stream paper: 1.5); "concatenate": one Linear on concat(features).
        flow_fusion_weight: w above.
        dropout: dropout on the features before the classification layers (DeepEthogram 0.5: 0.25).
        width: channel multiplier of both backbones (0.5 for the live CPU preset).
        mean: normalisation mean stored as ``input_mean`` (3,), used by the data side and ``FrameEncoder``
            (the one that counts; the flow generator's own buffer is what stage 1 trained with). None: the
            given flow generator module's ``input_mean``, or ``flow_generator_kwargs["mean"]``, else
            (0.5, 0.5, 0.5) like DeepEthogram's default.
        std: normalisation std stored as ``input_std`` (3,), defaults as ``mean``.
        spatial_frame: what the spatial stream sees. "last" (causal, default): frame T-1. "middle": frame T // 2.
            "deepethogram": exactly what DeepEthogram 0.5's 2D models feed it, the three channels from
            ``int(T / 2 * 3)`` of the clip stacked frame after frame as ``(B, 3T, H, W)``: for T = 11, channels
            16-18 = G and B of frame 5 and R of frame 6 (its ``Viewer``); its trained weights expect that, so models
            imported from DeepEthogram use it.
        freeze_flow_generator: keep the flow generator in eval mode with no gradients (DeepEthogram does).
        flow_generator_kwargs: extra constructor arguments of the flow generator (e.g. ``{"width": 0.5}``).
        backbone_kwargs: extra constructor arguments of the backbones.
    """

    def __init__(
        self,
        num_classes: int,
        flow_generator: str | FlowGenerator = "tinymotionnet",
        backbone: str = "resnet18",
        num_frames: int = 11,
        fusion: str = "average",
        flow_fusion_weight: float = 1.5,
        dropout: float = 0.25,
        width: float = 1.0,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        spatial_frame: str = "last",
        freeze_flow_generator: bool = True,
        flow_generator_kwargs: dict[str, Any] | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        final_bn: bool = False,
    ) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}; known: {', '.join(FUSIONS)}")
        if final_bn and fusion != "average":
            raise ValueError("final_bn needs fusion='average' (a BatchNorm after each stream's last layer)")
        self.final_bn = bool(final_bn)
        if spatial_frame not in SPATIAL_FRAMES:
            raise ValueError(f"unknown spatial_frame {spatial_frame!r}; known: {', '.join(SPATIAL_FRAMES)}")
        self.num_classes = num_classes
        self.num_frames = num_frames
        self.fusion = fusion
        self.flow_fusion_weight = float(flow_fusion_weight)
        self.spatial_frame = spatial_frame
        self.freeze_flow_generator = freeze_flow_generator
        # One normalisation for the whole model: explicit mean/std, else the flow generator's (stage 1 was
        # trained with it), else DeepEthogram's default.
        if not isinstance(flow_generator, str):
            source_mean, source_std = flow_generator.input_mean, flow_generator.input_std
        else:
            source_mean = (flow_generator_kwargs or {}).get("mean")
            source_std = (flow_generator_kwargs or {}).get("std")
        mean = next(v for v in (mean, source_mean, DEFAULT_MEAN) if v is not None)
        std = next(v for v in (std, source_std, DEFAULT_STD) if v is not None)
        self.register_buffer("input_mean", torch.as_tensor(mean, dtype=torch.float32).detach().clone().reshape(3))
        self.register_buffer("input_std", torch.as_tensor(std, dtype=torch.float32).detach().clone().reshape(3))

        if isinstance(flow_generator, str):
            fkw = {"mean": tuple(self.input_mean.tolist()), "std": tuple(self.input_std.tolist())}
            fkw.update(flow_generator_kwargs or {})
            flow_generator = create_model("flow", flow_generator, num_frames=num_frames, **fkw)
        if flow_generator.num_frames != num_frames:
            raise ValueError(f"flow generator takes {flow_generator.num_frames} frames, model {num_frames}")
        self.flow_generator = flow_generator

        bkw = dict(backbone_kwargs or {})
        bkw.setdefault("width", width)
        self.spatial_encoder = create_model("feature", backbone, in_channels=3, **bkw)
        self.is_3d = bool(getattr(self.spatial_encoder, "is_3d", False))
        flow_in = 2 if self.is_3d else 2 * (num_frames - 1)
        self.flow_encoder = create_model("feature", backbone, in_channels=flow_in, **bkw)
        ds, df = self.spatial_encoder.num_features, self.flow_encoder.num_features
        self.spatial_dim, self.flow_dim = ds, df

        self.dropout = nn.Dropout(dropout)
        if fusion == "average":
            # DeepEthogram's final_bn: each stream's last layer has no bias and a BatchNorm1d over the logits.
            self.spatial_head = nn.Linear(ds, num_classes, bias=not self.final_bn)
            self.flow_head = nn.Linear(df, num_classes, bias=not self.final_bn)
            if self.final_bn:
                self.spatial_bn = nn.BatchNorm1d(num_classes)
                self.flow_bn = nn.BatchNorm1d(num_classes)
        else:
            self.fusion_head = nn.Linear(ds + df, num_classes)
        if freeze_flow_generator:
            self.flow_generator.requires_grad_(False)
            self.flow_generator.eval()

    @property
    def num_features(self) -> int:
        """Ds + Df, the size of the feature vector saved for stage 3."""
        return self.spatial_dim + self.flow_dim

    def train(self, mode: bool = True) -> TwoStream:
        """Set train/eval mode; a frozen flow generator stays in eval mode (its BatchNorm stats are kept)."""
        super().train(mode)
        if self.freeze_flow_generator:
            self.flow_generator.eval()
        return self

    def heads(self) -> list[nn.Module]:
        """The layers holding the logits' biases, for bias initialisation from label counts.

        The final Linear layers; with ``final_bn`` the BatchNorms after them (where DeepEthogram puts the bias too).
        """
        if self.fusion == "average":
            if self.final_bn:
                return [self.spatial_bn, self.flow_bn]
            return [self.spatial_head, self.flow_head]
        return [self.fusion_head]

    def forward_flows(self, frames: torch.Tensor) -> torch.Tensor:
        """Finest flow from the (frozen) generator: (B, 2(T-1), H/2, W/2), pixels at that scale."""
        if self.freeze_flow_generator:
            with torch.no_grad():
                return self.flow_generator(frames)[0]
        return self.flow_generator(frames)[0]

    def forward_features(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-stream features.

        Args:
            frames: (B, T, 3, H, W) normalised float; frame T-1 is the labelled frame.

        Returns:
            spatial_features (B, Ds), flow_features (B, Df).
        """
        if frames.dim() != 5 or frames.shape[1] != self.num_frames or frames.shape[2] != 3:
            raise ValueError(f"expected frames (B, {self.num_frames}, 3, H, W), got {tuple(frames.shape)}")
        flows = self.forward_flows(frames)
        if self.is_3d:
            spatial_in = frames.permute(0, 2, 1, 3, 4)  # (B, 3, T, H, W)
            b, c, h, w = flows.shape
            flow_in = flows.reshape(b, c // 2, 2, h, w).permute(0, 2, 1, 3, 4)  # (B, 2, T-1, h, w)
        elif self.spatial_frame == "deepethogram":
            b, t, c, h, w = frames.shape
            start = int(t / 2 * 3)  # DeepEthogram's Viewer on the clip stacked frame after frame
            spatial_in = frames.reshape(b, t * c, h, w)[:, start : start + 3]
            flow_in = flows
        else:
            index = self.num_frames - 1 if self.spatial_frame == "last" else self.num_frames // 2
            spatial_in = frames[:, index]
            flow_in = flows
        return self.spatial_encoder(spatial_in), self.flow_encoder(flow_in)

    def stream_logits(
        self, spatial_features: torch.Tensor, flow_features: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-stream logits (B, K) each ("average" fusion only), e.g. for a spatial-then-flow curriculum."""
        if self.fusion != "average":
            raise ValueError("stream_logits needs fusion='average'")
        spatial = self.spatial_head(self.dropout(spatial_features))
        flow = self.flow_head(self.dropout(flow_features))
        if self.final_bn:
            return self.spatial_bn(spatial), self.flow_bn(flow)
        return spatial, flow

    def forward_head(self, spatial_features: torch.Tensor, flow_features: torch.Tensor) -> torch.Tensor:
        """Fused logits (B, K) from spatial_features (B, Ds) and flow_features (B, Df)."""
        if self.fusion == "average":
            spatial, flow = self.stream_logits(spatial_features, flow_features)
            w = self.flow_fusion_weight
            return (spatial + w * flow) / (1.0 + w)
        return self.fusion_head(self.dropout(torch.cat([spatial_features, flow_features], dim=1)))

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits and features of a batch of clips.

        Args:
            frames: (B, T, 3, H, W) normalised float.

        Returns:
            dict with ``logits`` (B, K), ``spatial_features`` (B, Ds), ``flow_features`` (B, Df).
        """
        spatial, flow = self.forward_features(frames)
        return {"logits": self.forward_head(spatial, flow), "spatial_features": spatial, "flow_features": flow}


HiddenTwoStream = TwoStream
