"""DeepEthogram's resize, reproduced in numpy: OpenCV's ``cv2.resize(..., INTER_LINEAR)`` on uint8 RGB frames.

DeepEthogram 0.5 resizes every frame with ``opencv_transforms.Resize`` (``cv2.resize``, bilinear) before its
models see it; ours is FFmpeg's area filter (:func:`camera_adapters.video.resize_rgb`). A model imported from
DeepEthogram gives its outputs only on its pixels, so imported runs resize with this function instead.

OpenCV computes bilinear resizing of 8-bit images in fixed point: per output column ``fx = (x + 0.5) * W / w - 0.5``
(float32), source column ``floor(fx)`` clamped to the image with ``fx = 0`` at the borders, weights
``round((1 - fx) * 2048)`` and ``round(fx * 2048)``; the same per row, except that rows are clamped but their
weights are not; a horizontal pass in int32, then the vertical pass of its SIMD kernel
(``((S0 >> 4) * b0 >> 16) + ((S1 >> 4) * b1 >> 16) + 2) >> 2``). This equals OpenCV 4.11's output exactly on every
size tested (down and up, odd sizes, a real rat video and random frames; x86-64 with AVX-512, the only machine
checked). OpenCV itself may differ by 1 on other CPUs (its scalar tail formula rounds differently).
"""

from __future__ import annotations

import numpy as np

_COEF_SCALE = 2048  # OpenCV's INTER_RESIZE_COEF_SCALE (11 fractional bits)


def _taps(src: int, dst: int, clamp_weights: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices ``(i0, i1)`` and fixed-point weights ``(w0, w1)`` of each of ``dst`` outputs."""
    f = ((np.arange(dst) + 0.5) * (src / dst) - 0.5).astype(np.float32)
    i0 = np.floor(f).astype(np.int64)
    f = (f - i0).astype(np.float32)
    if clamp_weights:  # OpenCV's column taps: at the borders the weight moves wholly onto the edge pixel
        low, high = i0 < 0, i0 >= src - 1
        f[low | high] = 0
        i0[low] = 0
        i0[high] = src - 1
    w0 = np.rint((np.float32(1) - f) * np.float32(_COEF_SCALE)).astype(np.int64)
    w1 = np.rint(f * np.float32(_COEF_SCALE)).astype(np.int64)
    return np.clip(i0, 0, src - 1), np.clip(i0 + 1, 0, src - 1), w0, w1


def resize_opencv_linear(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)`` for ``(H, W, C) uint8``.

    Args:
        frame: ``(H, W, C)`` uint8.
        size: ``(height, width)`` of the result.

    Returns:
        ``(height, width, C)`` uint8.
    """
    if frame.dtype != np.uint8 or frame.ndim != 3:
        raise TypeError(f"resize_opencv_linear expects (H, W, C) uint8 frames, got {frame.dtype} {frame.shape}")
    height, width = int(size[0]), int(size[1])
    if frame.shape[:2] == (height, width):
        return frame
    x0, x1, a0, a1 = _taps(frame.shape[1], width, clamp_weights=True)
    y0, y1, b0, b1 = _taps(frame.shape[0], height, clamp_weights=False)
    x = frame.astype(np.int64)
    rows = x[:, x0] * a0[None, :, None] + x[:, x1] * a1[None, :, None]  # (H, width, C), scaled by 2048
    top, bottom = rows[y0] >> 4, rows[y1] >> 4
    out = ((top * b0[:, None, None]) >> 16) + ((bottom * b1[:, None, None]) >> 16)
    return np.clip((out + 2) >> 2, 0, 255).astype(np.uint8)
