"""The ethogram as an RGB image, in numpy (no Qt): one horizontal band per behaviour, one column per frame.

Each behaviour's band is :data:`ROWS_PER_BAND` image rows high (1.0 in the viewer's y units), top to bottom:

========================  =====================================================================================
rows                      what
========================  =====================================================================================
:data:`PROB_ROWS`         the probability as colour (dark blue 0 -> yellow 1, the ``inferno``-like ramp below)
:data:`DECISION_ROWS`     the decision after causal postprocessing: a solid bar in the behaviour's colour, or
                          near-black when off
:data:`LABEL_ROWS`        review mode with labels: white = labelled present, black = absent, grey = unlabelled
                          (the rows stay background-coloured when there are no labels)
the last row              a gap between bands
========================  =====================================================================================

Columns without data (before the first state message, or a frame never processed) are :data:`NO_DATA`.
The viewer (and its test) map a (frame, behaviour, part) to pixels with :func:`band_rows`.
"""

from __future__ import annotations

import numpy as np

ROWS_PER_BAND = 10
PROB_ROWS = (0, 4)  # [start, stop) inside a band
DECISION_ROWS = (4, 7)
LABEL_ROWS = (7, 9)
NO_DATA = (48, 48, 48)
GAP = (20, 20, 20)
DECISION_OFF = (34, 34, 40)
LABEL_PRESENT = (235, 235, 235)
LABEL_ABSENT = (0, 0, 0)
LABEL_UNLABELLED = (110, 110, 110)

# Distinct, colour-blind-friendly behaviour colours (Okabe-Ito, then Tableau); background is grey.
_PALETTE = [
    (230, 159, 0),
    (86, 180, 233),
    (0, 158, 115),
    (240, 228, 66),
    (0, 114, 178),
    (213, 94, 0),
    (204, 121, 167),
    (148, 103, 189),
    (140, 86, 75),
    (188, 189, 34),
    (23, 190, 207),
    (227, 119, 194),
]
BACKGROUND_COLOUR = (150, 150, 150)


def behaviour_colours(behaviours: list[str]) -> np.ndarray:
    """``(K, 3) uint8``: one colour per behaviour (``background`` grey, the others from a fixed palette)."""
    colours = []
    j = 0
    for name in behaviours:
        if name == "background":
            colours.append(BACKGROUND_COLOUR)
        else:
            colours.append(_PALETTE[j % len(_PALETTE)])
            j += 1
    return np.asarray(colours, dtype=np.uint8).reshape(-1, 3)


def _probability_lut() -> np.ndarray:
    """``(256, 3) uint8``: dark blue-black -> purple -> orange -> pale yellow (monotonic in lightness)."""
    stops = np.array([0.0, 0.3, 0.6, 0.85, 1.0])
    colours = np.array([(10, 8, 40), (90, 20, 110), (200, 60, 70), (245, 150, 30), (252, 250, 160)], dtype=float)
    x = np.linspace(0.0, 1.0, 256)
    lut = np.stack([np.interp(x, stops, colours[:, c]) for c in range(3)], axis=1)
    return np.round(lut).astype(np.uint8)


PROBABILITY_LUT = _probability_lut()


def band_rows(behaviour: int, part: str) -> tuple[int, int]:
    """Image rows ``[start, stop)`` of one part (``"prob"``, ``"decision"``, ``"label"``) of a behaviour's band."""
    start, stop = {"prob": PROB_ROWS, "decision": DECISION_ROWS, "label": LABEL_ROWS}[part]
    return behaviour * ROWS_PER_BAND + start, behaviour * ROWS_PER_BAND + stop


def ethogram_image(
    probabilities: np.ndarray,
    decisions: np.ndarray,
    colours: np.ndarray,
    labels: np.ndarray | None = None,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Draw the ethogram.

    Args:
        probabilities: ``(N, K)`` float in [0, 1]; NaN = no prediction.
        decisions: ``(N, K)`` bool.
        colours: ``(K, 3) uint8`` behaviour colours (:func:`behaviour_colours`).
        labels: ``(N, K)`` in {1, 0, -1} or None.
        valid: ``(N,)`` bool, False for columns with no data at all (drawn :data:`NO_DATA`); default: all valid.

    Returns:
        ``(K * ROWS_PER_BAND, N, 3) uint8``, row-major (row 0 is the top of the first behaviour's band).
    """
    probabilities = np.asarray(probabilities, dtype=np.float32)
    n, k = probabilities.shape
    image = np.empty((k, ROWS_PER_BAND, n, 3), dtype=np.uint8)
    image[:] = GAP

    finite = np.isfinite(probabilities)
    index = np.clip(np.nan_to_num(probabilities, nan=0.0) * 255.0 + 0.5, 0, 255).astype(np.intp)
    prob_rgb = PROBABILITY_LUT[index]  # (N, K, 3)
    prob_rgb[~finite] = NO_DATA
    image[:, PROB_ROWS[0] : PROB_ROWS[1]] = prob_rgb.transpose(1, 0, 2)[:, None]

    dec = np.asarray(decisions, dtype=bool)
    dec_rgb = np.where(dec.T[..., None], colours[:, None, :], np.asarray(DECISION_OFF, np.uint8))  # (K, N, 3)
    image[:, DECISION_ROWS[0] : DECISION_ROWS[1]] = dec_rgb[:, None]

    if labels is not None:
        lab = np.asarray(labels).T  # (K, N)
        lab_rgb = np.empty((k, n, 3), dtype=np.uint8)
        lab_rgb[:] = LABEL_UNLABELLED
        lab_rgb[lab == 1] = LABEL_PRESENT
        lab_rgb[lab == 0] = LABEL_ABSENT
        image[:, LABEL_ROWS[0] : LABEL_ROWS[1]] = lab_rgb[:, None]

    if valid is not None:
        invalid = ~np.asarray(valid, dtype=bool)
        image[:, : ROWS_PER_BAND - 1, invalid] = NO_DATA
    return image.reshape(k * ROWS_PER_BAND, n, 3)


def onset_frames(decisions: np.ndarray, first_frame: int = 0, valid: np.ndarray | None = None) -> list[tuple[int, int]]:
    """``(frame, behaviour)`` of every rising edge of ``decisions`` ``(N, K)``.

    Column 0 has no predecessor and is not an onset, nor is a column after one without data (``valid`` ``(N,)``
    False): the first frames of a stream are not onsets.
    """
    dec = np.asarray(decisions, dtype=bool)
    if dec.shape[0] < 2:
        return []
    rising = dec[1:] & ~dec[:-1]
    if valid is not None:
        rising &= np.asarray(valid, dtype=bool)[:-1, None]
    rows, cols = np.nonzero(rising)
    return [(int(r) + 1 + first_frame, int(c)) for r, c in zip(rows, cols, strict=True)]
