"""The causal window rule, in one place: the clip for frame ``t`` is frames ``t-T+1 .. t``, frame 0 repeated before.

Every part that cuts windows out of a sequence of frames uses this module: training clips
(``deg_train.project.FrameCache.clip``/``clips``), offline feature extraction (``deg_train.inference.extract``),
the flow visualisation command, and the engines' offline batch path (``deg_live.engines.base``). The engines'
per-frame ring buffers keep their own speed-critical implementation; tests hold them equal to
:func:`causal_windows` (live == offline).

Nothing looks into the future: a frame's window ends at that frame, so a model trained on these windows can run
live on a camera. numpy only (no torch), so both deg_train and deg_live import it.

Example:
    >>> causal_window_indices([0, 5], 3)
    array([[0, 0, 0],
           [3, 4, 5]])
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


def causal_window_indices(ts: Sequence[int] | np.ndarray, frames_per_window: int) -> np.ndarray:
    """Frame indices of the causal windows ending at each frame of ``ts``.

    Args:
        ts: ``(B,)`` frame indices (0-based, >= 0).
        frames_per_window: ``T``.

    Returns:
        ``(B, T) int64``; row ``b`` is ``ts[b]-T+1 .. ts[b]`` with indices below 0 replaced by 0.
    """
    ts = np.asarray(ts, dtype=np.int64).reshape(-1)
    offsets = np.arange(-int(frames_per_window) + 1, 1, dtype=np.int64)
    return np.maximum(ts[:, None] + offsets[None, :], 0)


def causal_window(t: int, frames_per_window: int) -> slice | np.ndarray:
    """The causal window ending at frame ``t`` as an index into the frame axis.

    A plain slice where the window needs no padding (one contiguous copy, the common case), else an index array
    repeating frame 0 (the first ``T-1`` frames of a sequence).
    """
    start = int(t) - int(frames_per_window) + 1
    if start >= 0:
        return slice(start, int(t) + 1)
    return causal_window_indices([t], frames_per_window)[0]


def causal_windows(frames: np.ndarray, start: int, stop: int, frames_per_window: int) -> np.ndarray:
    """Causal windows for frames ``start .. stop-1`` of a sequence, frame 0 repeated before the start.

    Args:
        frames: ``(N, H, W, 3) uint8`` the whole sequence (or at least frames ``0 .. stop-1``).
        start: first frame whose window is wanted.
        stop: one past the last.
        frames_per_window: ``T``.

    Returns:
        ``(stop - start, T, H, W, 3) uint8``; row ``i`` ends at frame ``start + i``.
    """
    return frames[causal_window_indices(np.arange(start, stop), frames_per_window)]


def iter_causal_windows(chunks: Iterator[np.ndarray], frames_per_window: int) -> Iterator[np.ndarray]:
    """Consecutive frame chunks of one sequence -> the causal windows of their frames, chunk by chunk.

    The same windows as :func:`causal_windows` over the whole sequence, without holding it: the last ``T-1`` frames
    of each chunk are carried into the next, and before the first chunk frame 0 stands in for them.

    Args:
        chunks: ``(b, H, W, 3)`` frame arrays, in order (any sizes).
        frames_per_window: ``T``.

    Yields:
        ``(b, T, H, W, 3)`` strided views over a rolling buffer (no per-window copy), one per chunk; valid until
        the next one is requested.
    """
    t = int(frames_per_window)
    history: np.ndarray | None = None  # the last T-1 frames before the current chunk
    for frames in chunks:
        if history is None:
            history = np.repeat(frames[:1], t - 1, axis=0)
        buf = np.concatenate([history, frames], axis=0)  # (T-1+b, H, W, 3)
        # (b, H, W, 3, T) sliding view, then time second: (b, T, H, W, 3)
        windows = np.lib.stride_tricks.sliding_window_view(buf, t, axis=0, writeable=True)
        yield np.moveaxis(windows, -1, 1)
        history = buf[len(buf) - (t - 1) :] if t > 1 else buf[:0]
