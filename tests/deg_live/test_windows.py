"""The causal window rule (deg_live.windows): every way of cutting windows gives the same frames."""

import numpy as np
import pytest

from deg_live.windows import causal_window, causal_window_indices, causal_windows, iter_causal_windows


def _frames(n=23):
    # Each frame's pixels hold its index, so a window reads as the list of frames it took.
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 2, 3, 3)).copy()


def test_window_ends_at_its_frame_and_repeats_frame_zero_before_the_start():
    assert causal_window_indices([0, 2, 9], 4).tolist() == [[0, 0, 0, 0], [0, 0, 1, 2], [6, 7, 8, 9]]
    assert causal_window(9, 4) == slice(6, 10)
    assert causal_window(2, 4).tolist() == [0, 0, 1, 2]


@pytest.mark.parametrize("frames_per_window", [1, 3, 11])
def test_single_windows_batches_and_streamed_chunks_agree(frames_per_window):
    frames, t = _frames(), frames_per_window
    reference = causal_windows(frames, 0, len(frames), t)
    assert reference.shape == (len(frames), t, 2, 3, 3)
    for i in range(len(frames)):
        np.testing.assert_array_equal(frames[causal_window(i, t)], reference[i])
        assert reference[i, :, 0, 0, 0].tolist() == causal_window_indices([i], t)[0].tolist()
    sizes = [1, 5, 2, 7, 8]  # uneven chunks, the first shorter than the window
    chunks, start = [], 0
    for size in sizes:
        chunks.append(frames[start : start + size])
        start += size
    streamed = np.concatenate([w.copy() for w in iter_causal_windows(iter(chunks), t)])
    np.testing.assert_array_equal(streamed, reference)
