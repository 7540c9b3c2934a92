"""The one small interface every inference engine implements, and the per-camera streaming state.

A model bundle (:mod:`deg_live.bundle`) holds two graphs, split for streaming:

- the **frame encoder**: the last ``T`` raw frames ``(B, T, H, W, 3) uint8`` (preprocessing is inside the graph)
  -> that frame's ``features (B, D) float32`` and ``logits (B, K) float32``;
- the **sequence step**: the newest feature ``(B, D)`` and the carried state (fixed-shape tensors, listed in the
  manifest) -> this frame's ``probs (B, K) float32`` (sigmoid inside) and the new state.

An :class:`Engine` runs both graphs on one backend (ONNX Runtime, torch, TensorRT). A user drives it in four
calls, like DeepLabCut-live::

    with create_engine(read_bundle("bundle/"), backend="auto") as engine:   # construct
        engine.warmup()                                                       # warm up
        stream = engine.stream()                                              # one per camera
        for frame in frames:                                                  # (H, W, 3) uint8 at bundle size
            result = stream.push(frame)                                       # per frame -> StepResult
            result.probs                                                      # (K,) float32
    # close() (idempotent) releases sessions, device buffers and cached graphs

Offline, :meth:`Engine.infer_frames` runs a whole video's frames through the same graphs in batches (causal
windows, frame 0 repeated before the start) and gives the same per-frame probabilities as streaming.

Causal padding (one rule, :mod:`deg_live.windows`, the same as offline inference and training clips): the window
for frame ``t`` is frames ``t-T+1 .. t``; indices below 0 are replaced by the stream's first frame.

This module imports no torch; backends import their frameworks lazily in their own modules.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from camera_adapters.errors import UserFacingError
from camera_adapters.plugins import Availability
from deg_live.windows import causal_windows

if TYPE_CHECKING:
    from deg_live.bundle import Bundle

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "bf16")


class EngineError(UserFacingError, RuntimeError):
    """An engine cannot run this bundle here, or was given input it cannot use; the message says what to do."""


class EngineUnavailableError(EngineError):
    """The requested backend is not installed or has no device here; the message names what to install."""


class FrameError(EngineError, ValueError):
    """A frame or window of the wrong shape or dtype was given to an engine (names expected and actual)."""


@dataclass
class StepResult:
    """What one streamed frame produced.

    Attributes:
        index: the frame's index (the caller's, or a running count from 0 after ``reset``).
        probs: ``(K,) float32`` per-behaviour probabilities from the sequence step (sigmoid applied).
        logits: ``(K,) float32`` the frame encoder's own logits (before the sequence model).
        features: ``(D,) float32`` the frame encoder's features (the sequence step's input).
        timings: seconds spent in ``upload`` (host frame -> ring buffer), ``encoder`` and ``sequence``,
            and their ``total``; measured after the device finished (synchronised), so they are real.
    """

    index: int
    probs: np.ndarray
    logits: np.ndarray
    features: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class OfflineResult:
    """Per-frame outputs of :meth:`Engine.infer_frames` over a whole sequence of ``N`` frames.

    Attributes:
        features: ``(N, D) float32``.
        logits: ``(N, K) float32`` the encoder's logits.
        probs: ``(N, K) float32`` the sequence model's probabilities.
    """

    features: np.ndarray
    logits: np.ndarray
    probs: np.ndarray


def state_shape(shape: list, batch: int, where: str) -> tuple[int, ...]:
    """A manifest state shape with its leading batch dimension set to ``batch``.

    Raises:
        EngineError: a dynamic dimension other than the first.
    """
    dims = list(shape)
    if not dims:
        raise EngineError(f"{where}: a state tensor has no dimensions; re-export the bundle")
    rest = dims[1:]
    if any(not isinstance(d, int) for d in rest):
        raise EngineError(f"{where}: state shape {shape} has a dynamic dimension after the batch; re-export")
    return (batch, *rest)


class Engine(ABC):
    """A bundle's frame encoder and sequence step on one backend.

    An engine is a plug-in (:mod:`camera_adapters.plugins`): a ``name``, an :meth:`availability` check that loads
    no framework, and typed settings (the annotated keyword arguments of its constructor: ``device``,
    ``precision`` and the backend's own options).

    Subclasses implement :meth:`encode`, :meth:`initial_state`, :meth:`sequence_step`, :meth:`describe` and
    :meth:`_release`; they may override :meth:`stream` with a device-side ring buffer (the default keeps the
    window in host memory, which is what a CPU backend wants anyway).

    Args:
        bundle: a bundle read (and verified) by :func:`deg_live.bundle.read_bundle`.
        device: backend-specific device string (``"cpu"``, ``"cuda"``, ``"cuda:1"``); ``None`` picks the
            backend's default.
        precision: ``"fp32"`` (default), ``"fp16"`` or ``"bf16"``; not every backend supports each.
        **options: backend-specific options (documented on each backend); unknown ones are an error.

    Attributes:
        name: the registry name of the backend.
        bundle: the bundle.
        device: the device actually used.
        precision: the precision actually used.
    """

    name: ClassVar[str] = ""
    #: Precisions this backend can run; checked by the constructor.
    supported_precisions: ClassVar[tuple[str, ...]] = ("fp32",)

    @classmethod
    def availability(cls) -> Availability:
        """Whether this engine can run here and on what devices; must not load its framework (or TensorRT)."""
        return Availability(cls.name, True, "registered engine (not probed)", ("cpu",))

    def __init__(self, bundle: Bundle, *, device: str | None = None, precision: str = "fp32", **options: Any):
        if precision not in PRECISIONS:
            raise EngineError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        if precision not in self.supported_precisions:
            raise EngineError(
                f"the {self.name} engine does not support precision {precision!r}; "
                f"it supports {', '.join(self.supported_precisions)}"
            )
        if options:
            raise EngineError(f"unknown option(s) for the {self.name} engine: {', '.join(sorted(options))}")
        self.bundle = bundle
        self.device = device or "cpu"
        self.precision = precision
        self._closed = False
        manifest = bundle.manifest
        self.frames_per_window = int(manifest.input.frames_per_window)
        self.height = int(manifest.input.height)
        self.width = int(manifest.input.width)
        self.num_behaviours = len(manifest.behaviours)
        self.feature_size = int(manifest.sequence.feature_size)

    # ----------------------------------------------------------------------------------------------- shapes
    @property
    def window_shape(self) -> tuple[int, int, int, int]:
        """``(T, H, W, 3)``: one window as the encoder takes it (a batch adds a leading ``B``)."""
        return (self.frames_per_window, self.height, self.width, 3)

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """``(H, W, 3)``: one frame as :meth:`FrameStream.push` takes it."""
        return (self.height, self.width, 3)

    def check_windows(self, windows: np.ndarray) -> np.ndarray:
        """Validate an encoder batch; returns it C-contiguous.

        Args:
            windows: ``(B, T, H, W, 3) uint8``.

        Raises:
            FrameError: wrong dtype or shape (the message gives both the expected and the actual).
        """
        if not isinstance(windows, np.ndarray) or windows.dtype != np.uint8:
            got = getattr(windows, "dtype", type(windows).__name__)
            raise FrameError(f"encoder input must be a uint8 numpy array, got {got}")
        if windows.ndim != 5 or windows.shape[1:] != self.window_shape or windows.shape[0] < 1:
            raise FrameError(
                f"encoder input must have shape (B, {', '.join(map(str, self.window_shape))}), got "
                f"{windows.shape}; resize frames to the bundle's size with camera_adapters.video.resize_rgb"
            )
        return np.ascontiguousarray(windows)

    def check_frame(self, frame: np.ndarray) -> np.ndarray:
        """Validate one streamed frame ``(H, W, 3) uint8`` at the bundle's size; returns it C-contiguous.

        Raises:
            FrameError: wrong dtype or shape.
        """
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
            got = getattr(frame, "dtype", type(frame).__name__)
            raise FrameError(f"frames must be uint8 numpy arrays, got {got}")
        if frame.shape != self.frame_shape:
            raise FrameError(
                f"frames must have shape {self.frame_shape} (the bundle's input size, RGB), got {frame.shape}; "
                "resize with camera_adapters.video.resize_rgb(frame, (height, width))"
            )
        return np.ascontiguousarray(frame)

    # ------------------------------------------------------------------------------------- the interface
    @abstractmethod
    def encode(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the frame encoder on a batch of windows.

        Args:
            windows: ``(B, T, H, W, 3) uint8`` at the bundle's input size; window ``b`` ends at its frame.

        Returns:
            ``features (B, D) float32`` and ``logits (B, K) float32``.
        """

    def initial_state(self, batch: int = 1) -> tuple[np.ndarray, ...]:
        """The sequence step's state before the first frame (zeros), one tensor per manifest state entry.

        Returns:
            host arrays with a leading batch dimension ``batch`` (shapes from the manifest).
        """
        where = str(self.bundle.directory)
        return tuple(
            np.zeros(state_shape(s.shape, batch, where), np.dtype(s.dtype)) for s in self.bundle.manifest.sequence.state
        )

    @abstractmethod
    def sequence_step(self, features: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple]:
        """Advance the sequence model by one frame.

        Args:
            features: ``(B, D) float32`` the newest frame's features.
            state: what :meth:`initial_state` or the previous call returned.

        Returns:
            ``probs (B, K) float32`` and the new state (same shapes as ``state``).
        """

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What runs, JSON-serialisable.

        Keys: ``backend``, ``device`` (CPU model string / GPU name), ``precision`` and backend details
        (providers, thread counts, TensorRT version, engine cache file ...).
        """

    @abstractmethod
    def _release(self) -> None:
        """Free the backend's resources (called once by :meth:`close`)."""

    def stream(self) -> FrameStream:
        """A new per-camera streaming state (empty window, initial sequence state)."""
        self._check_open()
        return HostFrameStream(self)

    def warmup(self, iterations: int = 10) -> None:
        """Run both graphs ``iterations`` times at batch 1 (JIT, autotuning, allocator, caches)."""
        self._check_open()
        windows = np.zeros((1, *self.window_shape), np.uint8)
        state = self.initial_state(1)
        for _ in range(max(1, iterations)):
            features, _ = self.encode(windows)
            _, state = self.sequence_step(features, state)

    def infer_frames(self, frames: np.ndarray, batch_size: int = 32, progress: bool = False) -> OfflineResult:
        """Offline inference over a whole sequence: batched encoder on causal windows, then the sequence steps.

        Gives the same per-frame probabilities as pushing the frames one by one through :meth:`stream`.

        Args:
            frames: ``(N, H, W, 3) uint8`` at the bundle's input size.
            batch_size: windows per encoder call.
            progress: show a progress bar.

        Returns:
            an :class:`OfflineResult` with ``(N, D)`` features and ``(N, K)`` logits and probabilities.
        """
        self._check_open()
        if not isinstance(frames, np.ndarray) or frames.ndim != 4 or len(frames) == 0:
            got = getattr(frames, "shape", type(frames).__name__)
            raise FrameError(f"frames must be a non-empty (N, H, W, 3) uint8 array, got {got}")
        for_check = frames[:1][:, None].repeat(self.frames_per_window, axis=1)
        self.check_windows(for_check)
        n = len(frames)
        features = np.empty((n, self.feature_size), np.float32)
        logits = np.empty((n, self.num_behaviours), np.float32)
        starts = range(0, n, batch_size)
        if progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc=f"encoder ({self.name})", unit="batch")
        for start in starts:
            stop = min(n, start + batch_size)
            f, lg = self.encode(causal_windows(frames, start, stop, self.frames_per_window))
            features[start:stop], logits[start:stop] = f, lg
        probs = np.empty((n, self.num_behaviours), np.float32)
        state = self.initial_state(1)
        for t in range(n):
            p, state = self.sequence_step(features[t : t + 1], state)
            probs[t] = p[0]
        return OfflineResult(features=features, logits=logits, probs=probs)

    # -------------------------------------------------------------------------------------- lifecycle
    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Release the backend (sessions, device buffers, graphs). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._release()

    def _check_open(self) -> None:
        if self._closed:
            raise EngineError(f"the {self.name} engine is closed")

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} device={self.device!r} precision={self.precision!r}>"


class FrameStream(ABC):
    """One camera's streaming state on an engine: the window of the last ``T`` frames and the sequence state.

    ``push`` takes one frame ``(H, W, 3) uint8`` already at the bundle's size, puts it ONCE into the window
    buffer (the first frame fills the whole window: causal padding), runs the encoder on the window ending at
    this frame and the sequence step with the carried state, and returns a :class:`StepResult`.
    Not thread-safe: one stream belongs to one worker.
    """

    def __init__(self, engine: Engine):
        self.engine = engine
        self._count = 0

    @abstractmethod
    def push(self, frame: np.ndarray, index: int | None = None) -> StepResult:
        """Process the next frame of this stream.

        Args:
            frame: ``(H, W, 3) uint8`` RGB at the bundle's input size.
            index: the frame's index to report (default: frames pushed since the last reset).

        Raises:
            FrameError: wrong shape or dtype.
        """

    @abstractmethod
    def reset(self) -> None:
        """Start a new stream: empty window, initial sequence state, count from 0."""

    def _next_index(self, index: int | None) -> int:
        value = self._count if index is None else int(index)
        self._count += 1
        return value


class HostFrameStream(FrameStream):
    """The default stream: the window lives in host memory and each push calls ``encode``/``sequence_step``.

    The ring buffer holds ``2T`` slots and each frame is written at slot ``p`` and ``p + T``, so the window
    ``slots[p+1 : p+1+T]`` is always one contiguous block (no reordering copy per frame).
    """

    def __init__(self, engine: Engine):
        super().__init__(engine)
        t = engine.frames_per_window
        self._ring = np.zeros((2 * t, *engine.frame_shape), np.uint8)
        self.reset()

    def reset(self) -> None:
        """Start a new stream: empty window, initial sequence state, count from 0."""
        self._pos = -1
        self._state = self.engine.initial_state(1)
        self._count = 0

    def push(self, frame: np.ndarray, index: int | None = None) -> StepResult:
        """Process the next frame; see :meth:`FrameStream.push`."""
        engine = self.engine
        frame = engine.check_frame(frame)
        t = engine.frames_per_window
        t0 = time.perf_counter()
        if self._pos < 0:
            self._ring[:] = frame  # causal padding: the first frame fills the window
            self._pos = t - 1
        else:
            self._pos = (self._pos + 1) % t
            self._ring[self._pos] = frame
            self._ring[self._pos + t] = frame
        window = self._ring[self._pos + 1 : self._pos + 1 + t][None]
        t1 = time.perf_counter()
        features, logits = engine.encode(window)
        t2 = time.perf_counter()
        probs, self._state = engine.sequence_step(features, self._state)
        t3 = time.perf_counter()
        return StepResult(
            index=self._next_index(index),
            probs=probs[0],
            logits=logits[0],
            features=features[0],
            timings={"upload": t1 - t0, "encoder": t2 - t1, "sequence": t3 - t2, "total": t3 - t0},
        )
