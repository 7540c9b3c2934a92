"""Colour-coded optical flow: the Middlebury colour wheel (Baker et al. 2011).

Hue = direction, saturation = magnitude, white = no motion. Used by the flow-visualisation command.
"""

from __future__ import annotations

import numpy as np


def _colour_wheel() -> np.ndarray:
    """(55, 3) float RGB in [0, 255]: the Middlebury wheel (red, yellow, green, cyan, blue, magenta)."""
    ry, yg, gc, cb, bm, mr = 15, 6, 4, 11, 13, 6
    segments = [
        (ry, (255, 0, 0), (255, 255, 0)),
        (yg, (255, 255, 0), (0, 255, 0)),
        (gc, (0, 255, 0), (0, 255, 255)),
        (cb, (0, 255, 255), (0, 0, 255)),
        (bm, (0, 0, 255), (255, 0, 255)),
        (mr, (255, 0, 255), (255, 0, 0)),
    ]
    rows = []
    for n, start, end in segments:
        t = np.arange(n, dtype=np.float64)[:, None] / n
        rows.append(np.asarray(start, np.float64) * (1 - t) + np.asarray(end, np.float64) * t)
    return np.concatenate(rows, axis=0)


_WHEEL = _colour_wheel()


def flow_to_rgb(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Colour-code a flow field.

    Args:
        flow: (2, H, W) float (dx, dy) in pixels (a torch tensor is accepted and moved to numpy).
        max_magnitude: magnitude shown fully saturated; None uses this flow's maximum (per-image scaling).
            Pass a fixed value to compare frames of a video.

    Returns:
        (H, W, 3) uint8 RGB; zero flow is white, direction sets the hue, magnitude the saturation.
    """
    if hasattr(flow, "detach"):
        flow = flow.detach().cpu().numpy()
    flow = np.asarray(flow, dtype=np.float64)
    if flow.ndim != 3 or flow.shape[0] != 2:
        raise ValueError(f"flow must be (2, H, W), got {flow.shape}")
    dx, dy = np.nan_to_num(flow[0]), np.nan_to_num(flow[1])
    magnitude = np.sqrt(dx**2 + dy**2)
    scale = float(magnitude.max()) if max_magnitude is None else float(max_magnitude)
    radius = np.clip(magnitude / scale, 0.0, 1.0) if scale > 0 else np.zeros_like(magnitude)
    angle = np.arctan2(-dy, -dx) / np.pi  # in [-1, 1]
    n = _WHEEL.shape[0]
    position = (angle + 1) / 2 * (n - 1)
    k0 = np.floor(position).astype(int)
    k1 = (k0 + 1) % n
    frac = (position - k0)[..., None]
    colour = ((1 - frac) * _WHEEL[k0] + frac * _WHEEL[k1]) / 255.0  # (H, W, 3) in [0, 1]
    colour = 1 - radius[..., None] * (1 - colour)  # white at zero magnitude
    return np.clip(np.round(colour * 255), 0, 255).astype(np.uint8)
