"""All losses: the self-supervised flow loss (stage 1) and the masked focal BCE (stages 2 and 3).

Flow loss (DeepEthogram's MotionNet loss, after Zhu et al. 'Hidden Two-Stream'): at every scale, frame i + 1
is warped by flow i to reconstruct frame i (see ``deg_train.models.flow.base``), and

    loss = sum over scales s of [ mean Charbonnier(target - warped)            (alpha 0.4, eps 1e-4)
                                + mean (1 - SSIM(target, warped))              (11x11 Gaussian, sigma 1.5)
                                + w_s * mean Charbonnier(flow gradients)       (alpha 0.3, eps 1e-7) ]
         + sparsity_weight * sum over scales of mean |flow|                    (optional, DEG-slow)

with smoothness weights w = (0.01, 0.02, 0.04) finest first, times ``smooth_weight_multiplier`` (DeepEthogram's
defaults). Images are compared in [0, 1]: pass the model's mean/std so normalised frames are de-normalised.

Classification loss: sigmoid focal BCE (Lin et al.) with DeepEthogram's label smoothing (targets
y * (1 - 2s) + s), positive weights (neg/pos)^beta (beta 0.25) and frames labelled -1 masked out. For mutually
exclusive behaviours (one class per frame, background included): softmax focal cross-entropy with label
smoothing and class weights (n_max / n_class)^beta (:class:`MaskedSoftmaxCE`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deg_train.models.flow.base import reconstruct

ArrayLike = Sequence[float] | np.ndarray | torch.Tensor

DEFAULT_SMOOTH_WEIGHTS = (0.01, 0.02, 0.04)


def charbonnier(x: torch.Tensor, alpha: float = 0.4, eps: float = 1e-4) -> torch.Tensor:
    """Generalised Charbonnier penalty ``(x^2 + eps^2)^alpha``, elementwise."""
    return (x * x + eps * eps) ** alpha


def _gaussian_window(size: int, sigma: float, channels: int, like: torch.Tensor) -> torch.Tensor:
    coords = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2.0
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(x: torch.Tensor, y: torch.Tensor, window_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-pixel SSIM map of two image batches in [0, 1] (Gaussian window, zero padding).

    Args:
        x: (N, C, H, W).
        y: (N, C, H, W).
        window_size: side of the Gaussian window.
        sigma: its standard deviation in pixels.

    Returns:
        (N, C, H, W) SSIM map (1 = identical).
    """
    c = x.shape[1]
    window = _gaussian_window(window_size, sigma, c, x)
    pad = window_size // 2
    mu_x = F.conv2d(x, window, padding=pad, groups=c)
    mu_y = F.conv2d(y, window, padding=pad, groups=c)
    sxx = F.conv2d(x * x, window, padding=pad, groups=c) - mu_x**2
    syy = F.conv2d(y * y, window, padding=pad, groups=c) - mu_y**2
    sxy = F.conv2d(x * y, window, padding=pad, groups=c) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))


def _gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # forward differences, zero-padded on the right / bottom: (N, C, H, W) each
    gx = F.pad(x[..., :, :-1] - x[..., :, 1:], (0, 1, 0, 0))
    gy = F.pad(x[..., :-1, :] - x[..., 1:, :], (0, 0, 0, 1))
    return gx, gy


def smoothness(flow: torch.Tensor, alpha: float = 0.3, eps: float = 1e-7) -> torch.Tensor:
    """Charbonnier penalty on the flow's x and y gradients: (N, 2, H, W) -> (N, 2, H, W)."""
    gx, gy = _gradients(flow)
    return charbonnier(gx, alpha, eps) + charbonnier(gy, alpha, eps)


class MotionNetLoss(nn.Module):
    """Self-supervised flow loss over scales: photometric (Charbonnier) + SSIM + smoothness [+ sparsity].

    Args:
        smooth_weights: smoothness weight per scale, finest first (DeepEthogram: 0.01, 0.02, 0.04, ...).
        smooth_weight_multiplier: multiplies every smoothness weight (DEG-slow: 0.25).
        flow_sparsity: add ``sparsity_weight * mean |flow|`` per scale (DEG-slow: True, 0.05).
        sparsity_weight: see ``flow_sparsity``.
        mean: normalisation mean (3,) of the frames given to ``forward`` (None: frames are already in [0, 1]).
        std: normalisation std (3,).
    """

    def __init__(
        self,
        smooth_weights: Sequence[float] = DEFAULT_SMOOTH_WEIGHTS,
        smooth_weight_multiplier: float = 1.0,
        flow_sparsity: bool = False,
        sparsity_weight: float = 0.0,
        mean: ArrayLike | None = None,
        std: ArrayLike | None = None,
    ) -> None:
        super().__init__()
        self.smooth_weights = [float(w) * smooth_weight_multiplier for w in smooth_weights]
        self.flow_sparsity = flow_sparsity
        self.sparsity_weight = float(sparsity_weight)
        mean_t = torch.as_tensor(mean if mean is not None else (0.0, 0.0, 0.0), dtype=torch.float32)
        std_t = torch.as_tensor(std if std is not None else (1.0, 1.0, 1.0), dtype=torch.float32)
        self.register_buffer("mean", mean_t.view(1, 1, 3, 1, 1))
        self.register_buffer("std", std_t.view(1, 1, 3, 1, 1))

    def forward(
        self, frames: torch.Tensor, flows: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss of one batch.

        Args:
            frames: (B, T, 3, H, W) the frames given to the flow generator (normalised with mean/std).
            flows: the generator's output, finest first, each (B, 2(T-1), h_s, w_s).

        Returns:
            total (scalar, differentiable), and detached scalar parts: ``photometric``, ``ssim``,
            ``smoothness``, ``sparsity`` (each summed over scales) and ``total``.
        """
        if len(flows) > len(self.smooth_weights):
            raise ValueError(f"{len(flows)} flow scales but only {len(self.smooth_weights)} smoothness weights")
        images = frames * self.std + self.mean
        zero = frames.new_zeros(())
        photometric, structural, smooth, sparsity = zero, zero, zero, zero
        for rec, weight in zip(reconstruct(images, list(flows)), self.smooth_weights, strict=False):
            photometric = photometric + charbonnier(rec.target - rec.warped).mean()
            structural = structural + (1.0 - ssim(rec.target, rec.warped)).mean()
            smooth = smooth + weight * smoothness(rec.flow).mean()
            if self.flow_sparsity:
                sparsity = sparsity + self.sparsity_weight * rec.flow.abs().mean()
        total = photometric + structural + smooth + sparsity
        parts = {
            "photometric": photometric.detach(),
            "ssim": structural.detach(),
            "smoothness": smooth.detach(),
            "sparsity": sparsity.detach(),
            "total": total.detach(),
        }
        return total, parts


def _as_float_tensor(x: ArrayLike) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=torch.float64)


def pos_weight_from_counts(pos: ArrayLike, neg: ArrayLike, beta: float = 0.25) -> torch.Tensor:
    """Positive-class weights ``(neg / pos) ** beta`` per behaviour (DeepEthogram: beta = 0.25).

    Args:
        pos: (K,) number of positive labelled frames per behaviour.
        neg: (K,) number of negative labelled frames.
        beta: exponent; 0 gives weight 1, 1 fully balances.

    Returns:
        (K,) float32; behaviours with no positive (or no negative) frames get weight 1.
    """
    p, n = _as_float_tensor(pos), _as_float_tensor(neg)
    weight = torch.where((p > 0) & (n > 0), (n / p.clamp(min=1)) ** beta, torch.ones_like(p))
    return weight.float()


def init_bias_from_counts(layers: nn.Module | Sequence[nn.Module], pos: ArrayLike, neg: ArrayLike) -> None:
    """Set final-layer biases to ``log(pos / neg)`` so initial sigmoid outputs match label frequencies.

    Args:
        layers: one layer or several (e.g. ``model.heads()``), each with a (K,) bias.
        pos: (K,) positive counts.
        neg: (K,) negative counts; behaviours with a zero count get bias 0.
    """
    p, n = _as_float_tensor(pos), _as_float_tensor(neg)
    bias = torch.where((p > 0) & (n > 0), torch.log(p.clamp(min=1) / n.clamp(min=1)), torch.zeros_like(p))
    for layer in [layers] if isinstance(layers, nn.Module) else layers:
        if layer.bias is None or layer.bias.shape != bias.shape:
            raise ValueError(f"layer bias shape {getattr(layer.bias, 'shape', None)} != counts shape {bias.shape}")
        with torch.no_grad():
            layer.bias.copy_(bias.to(layer.bias.dtype))


def init_softmax_bias_from_counts(layers: nn.Module | Sequence[nn.Module], pos: ArrayLike) -> None:
    """Set final-layer biases to ``log(prior)`` so initial softmax outputs match the class frequencies.

    Args:
        layers: one layer or several, each with a (K,) bias.
        pos: (K,) labelled frames per class; classes never seen get the smallest seen prior.
    """
    p = _as_float_tensor(pos)
    seen = p > 0
    prior = p / p.sum().clamp(min=1)
    floor = prior[seen].min() if seen.any() else torch.tensor(1.0 / max(len(p), 1))
    bias = torch.log(torch.where(seen, prior, floor))
    for layer in [layers] if isinstance(layers, nn.Module) else layers:
        if layer.bias is None or layer.bias.shape != bias.shape:
            raise ValueError(f"layer bias shape {getattr(layer.bias, 'shape', None)} != counts shape {bias.shape}")
        with torch.no_grad():
            layer.bias.copy_(bias.to(layer.bias.dtype))


def exclusive_targets(targets: torch.Tensor) -> torch.Tensor:
    """Class indices of one-hot label rows: ``(..., K)`` of 1/0/-1 -> ``(...)`` int64, -100 where not usable.

    A row is usable when it has exactly one 1 and no -1 (a partly unlabelled or empty row carries no class).
    """
    ones = (targets == 1).sum(-1)
    usable = (ones == 1) & ~(targets == -1).any(-1)
    index = targets.argmax(-1)
    return torch.where(usable, index, torch.full_like(index, -100))


class MaskedSoftmaxCE(nn.Module):
    """Softmax focal cross-entropy over mutually exclusive classes, with label smoothing, weights and masking.

    ``loss = weighted mean over usable rows of (1 - p_y)^gamma * CE(logits, smoothed one-hot)``: the target
    distribution puts ``1 - s`` on the labelled class and spreads ``s`` over the K classes; rows that are not
    exactly one-hot (unlabelled) contribute nothing (:func:`exclusive_targets`).

    Args:
        class_weight: (K,) weights per class (see :func:`class_weight_from_counts`), or None.
        gamma: focal exponent (0 = plain cross-entropy).
        label_smoothing: s above.
    """

    def __init__(self, class_weight: ArrayLike | None = None, gamma: float = 1.0, label_smoothing: float = 0.05):
        super().__init__()
        if not 0.0 <= label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
        self.gamma = float(gamma)
        self.label_smoothing = float(label_smoothing)
        if class_weight is not None:
            self.register_buffer("class_weight", torch.as_tensor(np.asarray(class_weight), dtype=torch.float32))
        else:
            self.class_weight = None

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Scalar loss.

        Args:
            logits: (N, K) or (B, T, K).
            targets: same shape, one-hot rows of 1/0; rows with -1 or without exactly one 1 are masked.

        Returns:
            Scalar weighted mean over usable rows (0 if none).
        """
        if logits.shape != targets.shape:
            raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ")
        k = logits.shape[-1]
        logits = logits.reshape(-1, k).float()
        index = exclusive_targets(targets.reshape(-1, k))
        usable = index >= 0
        if not usable.any():
            return logits.sum() * 0.0
        logits, index = logits[usable], index[usable]
        log_p = F.log_softmax(logits, dim=-1)
        target = F.one_hot(index, k).to(log_p.dtype) * (1 - self.label_smoothing) + self.label_smoothing / k
        ce = -(target * log_p).sum(-1)
        if self.gamma:
            ce = ce * (1 - log_p.gather(1, index[:, None])[:, 0].exp()) ** self.gamma
        w = self.class_weight[index] if self.class_weight is not None else torch.ones_like(ce)
        return (ce * w).sum() / w.sum().clamp(min=1e-12)


def class_weight_from_counts(pos: ArrayLike, beta: float = 0.25) -> torch.Tensor:
    """Class weights ``(n_max / n_class) ** beta`` for exclusive classes (classes never seen: weight 1)."""
    p = _as_float_tensor(pos)
    top = p.max().clamp(min=1)
    return torch.where(p > 0, (top / p.clamp(min=1)) ** beta, torch.ones_like(p)).float()


class MaskedFocalBCE(nn.Module):
    """Multi-label sigmoid focal binary cross-entropy with label smoothing, positive weights and masking.

    ``loss = mean over unmasked (sample, behaviour) of focal_weight * BCE(logit, smoothed target)``, where
    ``focal_weight = (1 - p)^gamma`` for positives and ``p^gamma`` for negatives (p = sigmoid(logit)), the
    smoothed target is ``y * (1 - 2 * label_smoothing) + label_smoothing``, and ``pos_weight`` multiplies the
    positive term of the BCE. Targets equal to -1 (unlabelled) contribute nothing.

    Args:
        pos_weight: (K,) weights of positive examples (see :func:`pos_weight_from_counts`), or None.
        gamma: focal exponent (0 = plain BCE; DeepEthogram: 1.0).
        label_smoothing: s above (DeepEthogram: 0.05).
    """

    def __init__(self, pos_weight: ArrayLike | None = None, gamma: float = 1.0, label_smoothing: float = 0.05):
        super().__init__()
        if not 0.0 <= label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
        self.gamma = float(gamma)
        self.label_smoothing = float(label_smoothing)
        if pos_weight is not None:
            self.register_buffer("pos_weight", torch.as_tensor(np.asarray(pos_weight), dtype=torch.float32))
        else:
            self.pos_weight = None

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Scalar loss.

        Args:
            logits: (N, K) or (B, T, K).
            targets: same shape, values 1 (present), 0 (absent), -1 (unlabelled, masked).

        Returns:
            Scalar mean over unlabelled-excluded elements (0 if everything is masked).
        """
        if logits.shape != targets.shape:
            raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ")
        targets = targets.to(logits.dtype)
        mask = (targets != -1).to(logits.dtype)
        y = targets.clamp(min=0)
        prob = torch.sigmoid(logits).clamp(1e-7, 1 - 1e-7)
        focal = torch.where(y > 0.5, (1 - prob) ** self.gamma, prob**self.gamma) if self.gamma else 1.0
        smoothed = y * (1 - 2 * self.label_smoothing) + self.label_smoothing
        bce = F.binary_cross_entropy_with_logits(logits, smoothed, pos_weight=self.pos_weight, reduction="none")
        return (bce * focal * mask).sum() / mask.sum().clamp(min=1.0)
