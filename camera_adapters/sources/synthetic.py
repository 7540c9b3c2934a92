"""``synthetic``: a moving test pattern whose "behaviours" follow a script, with the ground truth in every frame.

For tests, demos and latency measurements: any resolution and rate, no hardware. A bright block (the "animal")
moves over a fixed textured background; how it moves depends on the scripted behaviour:

- ``still``: stays put;  ``walk``: slides left and right;  ``rear``: grows taller;  ``groom``: jitters in place.

The script is a list of ``[behaviour, n_frames]`` segments that repeats; each frame's ``truth`` is
``{"behaviour": name, "segment": k}``. The frame index is also written into the top rows as a 32-bit barcode
(:func:`read_barcode` reads it back), so an end-to-end test can check that pixels and header agree.

Pacing: frame ``k`` is due ``k / fps`` seconds after the first read (monotonic clock); ``fps: 0`` is unpaced.
When the reader falls more than two periods behind, the schedule restarts from now instead of bursting (the
camera waits for its reader; it never drops). ``drop_frames`` and ``disconnect_after`` script camera faults.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from camera_adapters.settings import ConfigError
from camera_adapters.sources.base import (
    Capabilities,
    EndOfStream,
    FrameSource,
    SourceError,
    SourceTimeout,
    register_source,
)
from camera_adapters.wire import Frame

MOTIONS = ("still", "walk", "rear", "groom")
BARCODE_BITS = 32


@dataclass
class SyntheticSettings:
    """Settings of the ``synthetic`` source."""

    width: int = 320
    height: int = 240
    fps: float = 30.0
    pixel_format: str = "rgb24"
    script: list[tuple[str, int]] = field(
        default_factory=lambda: [("still", 30), ("walk", 60), ("rear", 30), ("groom", 45)]
    )
    max_frames: int | None = None
    seed: int = 0
    drop_frames: list[int] = field(default_factory=list)
    disconnect_after: int | None = None

    def __post_init__(self):
        if self.width < 32 or self.height < 16:
            raise ConfigError("width must be >= 32 and height >= 16")
        if self.fps < 0:
            raise ConfigError("fps must be >= 0 (0: as fast as possible)")
        if self.pixel_format not in ("rgb24", "gray8"):
            raise ConfigError(f"pixel_format must be rgb24 or gray8, got {self.pixel_format!r}")
        if not self.script:
            raise ConfigError("script needs at least one [behaviour, n_frames] segment")
        for name, n in self.script:
            if name not in MOTIONS:
                raise ConfigError(f"script behaviour {name!r} unknown (known: {', '.join(MOTIONS)})")
            if n < 1:
                raise ConfigError(f"script segment {name!r} needs at least 1 frame, got {n}")


def read_barcode(pixels: np.ndarray) -> int:
    """The frame index written into the top rows of a synthetic frame (``(H, W, 3)`` or ``(H, W)``)."""
    row = pixels[1] if pixels.ndim == 2 else pixels[1, :, 0]
    width = len(row) // BARCODE_BITS
    bits = [int(row[b * width + width // 2] > 127) for b in range(BARCODE_BITS)]
    return sum(bit << b for b, bit in enumerate(bits))


@register_source
class SyntheticSource(FrameSource):
    """A scripted moving pattern with ground truth; see the module docstring."""

    name = "synthetic"
    Settings = SyntheticSettings
    description = "moving test pattern with scripted behaviours and ground truth (any size and rate)"

    def _open(self) -> Capabilities:
        s = self.settings
        rng = np.random.default_rng(s.seed)
        # Background: a dim gradient with fixed noise texture, so compression and flow see structure.
        yy, xx = np.mgrid[0 : s.height, 0 : s.width]
        base = (20 + 40 * xx / s.width + 20 * yy / s.height + rng.integers(0, 12, (s.height, s.width))).astype(np.uint8)
        self._background = base if s.pixel_format == "gray8" else np.stack([base, base // 2 + 10, base], axis=-1)
        self._segments = [(name, n) for name, n in s.script]
        self._cycle = sum(n for _, n in self._segments)
        self._drop = set(s.drop_frames)
        self._next = 0  # next camera frame number
        self._emitted = 0
        self._t0: int | None = None
        return Capabilities(
            width=s.width,
            height=s.height,
            fps=s.fps or None,
            pixel_format=s.pixel_format,
            has_frame_counter=True,
            has_ground_truth=True,
            is_finite=s.max_frames is not None,
        )

    def behaviour_at(self, index: int) -> tuple[str, int]:
        """``(behaviour, segment number)`` the script gives frame ``index``."""
        pos, cycle = index % self._cycle, index // self._cycle
        for k, (name, n) in enumerate(self._segments):
            if pos < n:
                return name, cycle * len(self._segments) + k
            pos -= n
        raise AssertionError("unreachable")

    def _render(self, index: int, behaviour: str) -> np.ndarray:
        s = self.settings
        img = self._background.copy()
        h, w = s.height, s.width
        bw, bh = max(4, w // 8), max(4, h // 6)
        cx, cy = w // 2, h // 2 + h // 8
        if behaviour == "walk":
            cx = int(w / 2 + (w / 3) * np.sin(index * 2 * np.pi / 60))
        elif behaviour == "rear":
            bh = int(bh * (1.5 + 0.5 * np.sin(index * 2 * np.pi / 30)))
        elif behaviour == "groom":
            cx += int(3 * np.sin(index * 2.1))
            cy += int(3 * np.cos(index * 2.9))
        x0, x1 = max(0, cx - bw // 2), min(w, cx + bw // 2)
        y0, y1 = max(4, cy - bh), min(h, cy)
        img[y0:y1, x0:x1] = 230
        # Barcode of the index in rows 0..3.
        bit_w = w // BARCODE_BITS
        bits = (index >> np.arange(BARCODE_BITS)) & 1
        strip = np.repeat(bits.astype(np.uint8) * 255, bit_w)
        img[0:4, : len(strip)] = strip[:, None] if img.ndim == 3 else strip
        return img

    def _read(self, timeout: float | None) -> Frame:
        s = self.settings
        if s.max_frames is not None and self._emitted >= s.max_frames:
            raise EndOfStream(f"synthetic: max_frames={s.max_frames} reached", camera_id=self.camera_id)
        if s.disconnect_after is not None and self._emitted >= s.disconnect_after:
            raise SourceError(
                f"synthetic camera {self.camera_id!r}: disconnected (scripted after {s.disconnect_after} frames)"
            )
        while self._next in self._drop:  # the camera counts it, the host never sees it
            self._next += 1
        index = self._next
        if s.fps > 0:
            now = time.monotonic_ns()
            if self._t0 is None:
                self._t0 = now - int(index * 1e9 / s.fps)
            due = self._t0 + int(index * 1e9 / s.fps)
            if now - due > 2e9 / s.fps:  # far behind: restart the schedule instead of bursting
                self._t0 = now - int(index * 1e9 / s.fps)
            elif due > now:
                if timeout is not None and (due - now) / 1e9 > timeout:
                    time.sleep(timeout)
                    raise SourceTimeout(f"synthetic: next frame due in {(due - now) / 1e9:.3f} s > timeout")
                time.sleep((due - now) / 1e9)
        behaviour, segment = self.behaviour_at(index)
        pixels = self._render(index, behaviour)
        self._next += 1
        self._emitted += 1
        return Frame(
            index=index,
            pixels=pixels,
            camera_id=self.camera_id,
            capture_time_ns=time.time_ns(),
            camera_timestamp_ns=int(index * 1e9 / s.fps) if s.fps > 0 else None,
            pixel_format=s.pixel_format,
            fps=s.fps or None,
            truth={"behaviour": behaviour, "segment": segment},
        )

    def _close(self) -> None:
        self._background = None
