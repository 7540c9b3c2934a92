"""Stage 2 -> stage 3: run a trained frame encoder over whole videos and save per-frame features to HDF5.

For every frame t of a video the encoder sees the CAUSAL window of frames ``t-T+1 .. t`` (frame 0 repeated
before the start), exactly :meth:`deg_train.project.frame_cache.FrameCache.clip` and exactly what the live pipeline
feeds it, so features saved here are the features live inference computes. The results go to the video's
``<video>_outputs.h5`` (DeepEthogram's layout, :mod:`deg_live.outputs`), in a group named by the latent name.

Throughput (the part a person waits for):

- frames are decoded and resized (FFmpeg's area scaler, :func:`camera_adapters.video.resize_rgb`, THE project
  resize) in a separate thread, which overlaps with the encoder (PyAV releases the GIL while decoding);
- windows are strided views over a rolling buffer of frames: no copy of the T frames of each window;
- the encoder runs in batches under ``torch.inference_mode`` with channels-last weights, on uint8 input
  (normalisation is inside :class:`~deg_train.models.frame_encoder.FrameEncoder`).

``benchmarks/infer_throughput.py`` measures it and splits the time into decode, resize, encoder and sequence.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from camera_adapters.errors import UserFacingError
from camera_adapters.progress import progress_bar
from camera_adapters.video import VideoReader
from deg_live.outputs import PRODUCER, group_attrs, group_producer, our_group_name, outputs_path_for, write_outputs
from deg_live.windows import iter_causal_windows
from deg_train.inference.opencv_resize import resize_opencv_linear
from deg_train.models.checkpoints import build_model_from_checkpoint
from deg_train.models.frame_encoder import FrameEncoder
from deg_train.project.frame_cache import FrameCache

log = logging.getLogger(__name__)


PRECISIONS = ("fp32", "bf16")
#: How frame t's window is taken: ours (causal), or DeepEthogram's centred clip for models imported from it.
WINDOWS = ("causal", "deepethogram_centred")
#: How frames are resized to the model's input: ours (FFmpeg area), or DeepEthogram's (OpenCV bilinear).
RESIZES = ("area", "opencv_linear")


class ExtractError(UserFacingError, ValueError):
    """A run or video cannot be used for feature extraction; the message says what to do."""


# ---------------------------------------------------------------------------------------------------------------
# The encoder, loaded from a feature run
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class LoadedEncoder:
    """A feature run, ready to encode frames.

    Attributes:
        encoder: the :class:`FrameEncoder` (uint8 ``(B, T, H, W, 3)`` -> features ``(B, D)``, logits ``(B, K)``).
        size: ``(height, width)`` the encoder expects.
        frames_per_window: T.
        behaviours: K names, background first.
        spatial_size: Ds; features ``[:, :Ds]`` are the spatial stream's, the rest the flow stream's.
        latent_name: the outputs group name (DeepEthogram's convention: the feature arch, e.g. ``resnet18``).
        run_dir: the run directory.
        meta: the checkpoint's metadata (config, epoch, metrics...).
        window: which frames encode frame t: ``"causal"`` (t-T+1..t, ours) or ``"deepethogram_centred"``
            (t-T//2..t+T//2, frames outside the video replaced by ``pad_rgb``: a model imported from DeepEthogram,
            offline only; see :func:`iter_centred_windows`).
        pad_rgb: the colour of those padding frames (DeepEthogram: ``uint8(mean * 255)``).
        resize: ``"area"`` (ours: :func:`camera_adapters.video.resize_rgb`, the same offline and live) or
            ``"opencv_linear"`` (DeepEthogram's ``cv2.resize``, :mod:`deg_train.inference.opencv_resize`; imported
            centred runs, offline only).
    """

    encoder: torch.nn.Module
    size: tuple[int, int]
    frames_per_window: int
    behaviours: list[str]
    spatial_size: int
    latent_name: str
    run_dir: Path | None
    meta: dict[str, Any] = field(default_factory=dict)
    window: str = "causal"
    pad_rgb: tuple[int, int, int] | None = None
    resize: str = "area"

    @property
    def exclusive(self) -> bool:
        """Mutually exclusive behaviours: the logits are a softmax's, not independent sigmoids'."""
        return is_exclusive(self.meta)

    @property
    def feature_size(self) -> int:
        """D = Ds + Df."""
        return int(self.encoder.num_features)

    def fingerprint(self) -> str:
        """What identifies these weights in an outputs file's attributes (stale features are redone)."""
        path = self.meta.get("path")
        if path is None:
            return f"in-memory:{id(self.encoder)}"
        stat = Path(path).stat()
        return f"{Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def load_encoder(feature_run: str | os.PathLike | LoadedEncoder, *, device: str = "cpu") -> LoadedEncoder:
    """Load a stage-2 run (run directory or checkpoint file) as a :class:`LoadedEncoder` in eval mode.

    Raises:
        CheckpointError: the run is unreadable or is not a feature run.
    """
    if isinstance(feature_run, LoadedEncoder):
        return feature_run

    model, meta = build_model_from_checkpoint(feature_run, expect_stage="feature")
    config = meta.get("config") or {}
    data = config.get("data", {})
    size = tuple(int(s) for s in data.get("size", (128, 128)))
    extra = meta.get("extra") or {}
    if extra.get("window", "causal") not in WINDOWS:
        raise ExtractError(f"{meta.get('path')}: window {extra.get('window')!r}: expected one of {', '.join(WINDOWS)}")
    if extra.get("resize", "area") not in RESIZES:
        raise ExtractError(f"{meta.get('path')}: resize {extra.get('resize')!r}: expected one of {', '.join(RESIZES)}")
    encoder = FrameEncoder(model)
    encoder.eval()
    return LoadedEncoder(
        encoder=prepare_for_inference(encoder, device),
        size=(size[0], size[1]),
        frames_per_window=int(encoder.num_frames),
        behaviours=list(meta["behaviours"]),
        spatial_size=int(model.spatial_dim),
        latent_name=latent_name_for(meta),
        run_dir=Path(meta["run_dir"]),
        meta=meta,
        window=str(extra.get("window", "causal")),
        pad_rgb=tuple(int(v) for v in extra["pad_rgb"]) if extra.get("pad_rgb") is not None else None,
        resize=str(extra.get("resize", "area")),
    )


def prepare_for_inference(module: torch.nn.Module, device: str = "cpu") -> torch.nn.Module:
    """Eval mode, no gradients, on ``device``; channels-last weights on CPU (faster oneDNN convolutions)."""
    module = module.eval().requires_grad_(False).to(device)
    if str(device).startswith("cpu"):
        for sub in module.modules():
            if isinstance(sub, torch.nn.Conv2d):
                sub.to(memory_format=torch.channels_last)
    return module


def encoder_from_model(
    model: torch.nn.Module,
    behaviours: Sequence[str],
    size: tuple[int, int],
    *,
    latent_name: str = "features",
    device: str = "cpu",
) -> LoadedEncoder:
    """A :class:`LoadedEncoder` from an in-memory :class:`TwoStream` (tests, export checks); no run directory."""
    encoder = FrameEncoder(model)
    return LoadedEncoder(
        encoder=prepare_for_inference(encoder, device),
        size=(int(size[0]), int(size[1])),
        frames_per_window=int(encoder.num_frames),
        behaviours=list(behaviours),
        spatial_size=int(model.spatial_dim),
        latent_name=latent_name,
        run_dir=None,
        meta={"feature_size": int(encoder.num_features)},
    )


def is_exclusive(meta: dict[str, Any]) -> bool:
    """Whether a run (its checkpoint metadata) was trained for mutually exclusive behaviours (softmax)."""
    extra = meta.get("extra") or {}
    if "exclusive" in extra:
        return bool(extra["exclusive"])
    return bool(((meta.get("config") or {}).get("data") or {}).get("exclusive") or False)


def probabilities(logits: np.ndarray, exclusive: bool = False) -> np.ndarray:
    """``(N, K) float32`` probabilities from logits: softmax over the classes (exclusive) or a sigmoid each."""
    x = np.asarray(logits, dtype=np.float64)
    if exclusive:
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
    return np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x)))).astype(
        np.float32
    )


def latent_name_for(meta: dict[str, Any]) -> str:
    """The outputs group for a feature run.

    ``sequence.latent_name`` if the config sets one, else the run's own (``extra.latent_name``: imported
    DeepEthogram runs), else ``deg_train_<feature arch>``
    (:func:`deg_live.outputs.our_group_name`: never one of DeepEthogram's own group names, so its ``resnet18``
    features stay as it wrote them).
    """
    config = meta.get("config") or {}
    name = (config.get("sequence") or {}).get("latent_name") or (meta.get("extra") or {}).get("latent_name")
    if name:
        return str(name)
    arch = (config.get("feature") or {}).get("arch") or meta.get("arch") or "features"
    return our_group_name(str(arch))


# ---------------------------------------------------------------------------------------------------------------
# Causal windows
# ---------------------------------------------------------------------------------------------------------------


def _decode_thread(
    reader: VideoReader, chunk: int, out: queue.Queue, stop: threading.Event, timings: dict[str, float]
) -> None:
    """Decode (and resize) frames into chunks of ``chunk`` frames; put them on ``out``, then None at the end."""
    try:
        n = len(reader)
        buf = np.empty((min(chunk, n), reader.height, reader.width, 3), np.uint8)
        filled = 0
        t0 = time.perf_counter()
        for _, frame in reader.iter_frames(0):
            buf[filled] = frame
            filled += 1
            if filled == len(buf):
                timings["decode"] += time.perf_counter() - t0
                out.put(buf)
                if stop.is_set():
                    return
                buf = np.empty_like(buf)
                filled = 0
                t0 = time.perf_counter()
        timings["decode"] += time.perf_counter() - t0
        if filled:
            out.put(buf[:filled])
        out.put(None)
    except BaseException as err:
        out.put(err)


def iter_frame_chunks(
    video: str | os.PathLike, size: tuple[int, int] | None, chunk: int = 64, timings: dict[str, float] | None = None
) -> Iterator[np.ndarray]:
    """Yield consecutive ``(b, H, W, 3) uint8`` chunks of a video's frames at ``size`` (None: native), in a thread."""
    timings = timings if timings is not None else {}
    timings.setdefault("decode", 0.0)
    q: queue.Queue = queue.Queue(maxsize=4)
    stop = threading.Event()
    with VideoReader(video, size=size) as reader:
        thread = threading.Thread(target=_decode_thread, args=(reader, chunk, q, stop, timings), daemon=True)
        thread.start()
        try:
            while True:
                item = q.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while thread.is_alive():  # drain so the producer is never stuck on a full queue
                try:
                    q.get(timeout=0.05)
                except queue.Empty:
                    pass
            thread.join()


def iter_centred_windows(
    chunks: Iterator[np.ndarray], frames_per_window: int, pad_rgb: Sequence[int]
) -> Iterator[np.ndarray]:
    """DeepEthogram's centred windows (offline only): frame t is encoded from frames t-T//2 .. t+T-1-T//2.

    Frames before the first and after the last are a plain image of colour ``pad_rgb`` (DeepEthogram's
    ``VideoIterable``: the normalisation mean as uint8). Yields ``(b, T, H, W, 3) uint8`` batches, one window per
    frame of the video, in order.
    """
    t = int(frames_per_window)
    before = t // 2
    carry: np.ndarray | None = None
    pad = None

    def padded(n: int, like: np.ndarray) -> np.ndarray:
        frame = np.empty(like.shape[1:], np.uint8)
        frame[...] = np.asarray(pad_rgb, np.uint8)
        return np.repeat(frame[None], n, axis=0)

    def stream() -> Iterator[np.ndarray]:
        nonlocal pad
        last = None
        for chunk in chunks:
            if pad is None:
                pad = padded(before, chunk)
                yield pad
            last = chunk
            yield chunk
        if last is not None:
            yield padded(t - 1 - before, last)

    for chunk in stream():
        buf = chunk if carry is None else np.concatenate([carry, chunk])
        if len(buf) >= t:
            windows = np.lib.stride_tricks.sliding_window_view(buf, t, axis=0)  # (n - t + 1, H, W, 3, t)
            yield np.ascontiguousarray(np.moveaxis(windows, -1, 1))
            carry = buf[len(buf) - (t - 1) :] if t > 1 else buf[:0]
        else:
            carry = buf


# ---------------------------------------------------------------------------------------------------------------
# Encoding a video
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class EncodedVideo:
    """A video's encoder outputs. ``features (N, D) float32``, ``logits (N, K) float32``; timings in seconds."""

    features: np.ndarray
    logits: np.ndarray
    timings: dict[str, float]

    @property
    def probabilities(self) -> np.ndarray:
        """Sigmoid of the logits, ``(N, K) float32``."""
        return (1.0 / (1.0 + np.exp(-self.logits))).astype(np.float32)


def encode_frames(
    encoder: torch.nn.Module,
    windows: Iterator[np.ndarray | torch.Tensor],
    n_frames: int,
    *,
    batch_size: int = 32,
    device: str = "cpu",
    progress: bool | str = False,
    timings: dict[str, float] | None = None,
    precision: str = "fp32",
) -> tuple[np.ndarray, np.ndarray]:
    """Run the encoder over an iterator of window batches; returns ``features (N, D)``, ``logits (N, K)``.

    ``windows`` yields ``(b, T, H, W, 3) uint8`` batches (numpy or torch), e.g. from
    :func:`deg_live.windows.iter_causal_windows`.

    ``precision="bf16"`` runs under bfloat16 autocast (about 1.5-2x faster on CPUs with AVX512-BF16 or AMX, and on
    GPUs); results then differ from fp32 by about 1e-2, so the offline reference stays fp32 by default.
    """
    if precision not in PRECISIONS:
        raise ExtractError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    timings = timings if timings is not None else {}
    timings.setdefault("encoder", 0.0)
    features = logits = None
    pos = 0
    desc = progress if isinstance(progress, str) else "encode"
    bar = progress_bar(total=n_frames, desc=desc, unit="frame", leave=False, disable=not progress, logger=log)
    device_type = torch.device(device).type
    autocast = torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16")
    with torch.inference_mode(), autocast:
        for batch in windows:
            for start in range(0, batch.shape[0], batch_size):
                x = torch.as_tensor(batch[start : start + batch_size]).to(device)
                t0 = time.perf_counter()
                f, z = encoder(x)
                timings["encoder"] += time.perf_counter() - t0
                if features is None:
                    features = np.empty((n_frames, f.shape[1]), np.float32)
                    logits = np.empty((n_frames, z.shape[1]), np.float32)
                b = f.shape[0]
                features[pos : pos + b] = f.float().cpu().numpy()
                logits[pos : pos + b] = z.float().cpu().numpy()
                pos += b
                bar.update(b)
    bar.close()
    if features is None or pos != n_frames:
        raise ExtractError(f"encoded {pos} frames, expected {n_frames}; is the video truncated?")
    return features, logits


def encode_video(
    video: str | os.PathLike,
    encoder: LoadedEncoder,
    *,
    batch_size: int = 32,
    device: str = "cpu",
    frame_cache_dir: str | os.PathLike | None = None,
    progress: bool | str = False,
    precision: str = "fp32",
) -> EncodedVideo:
    """Encode every frame of a video (causal windows) with a loaded feature run.

    Args:
        video: the video file.
        encoder: from :func:`load_encoder`.
        batch_size: windows per encoder call.
        device: torch device.
        frame_cache_dir: a project's cache dir; if a valid frame cache at the encoder's size already exists
            there, frames are read from it instead of decoded (bit-identical: the cache uses the same resize).
        progress: show a progress bar (a string is its label).
        precision: ``fp32`` (default, the reference) or ``bf16`` (faster, see :func:`encode_frames`).
    """
    timings: dict[str, float] = {"decode": 0.0, "encoder": 0.0}
    t0 = time.perf_counter()
    chunk = max(batch_size, 64)
    cache = _existing_cache(video, frame_cache_dir, encoder.size) if frame_cache_dir else None
    if encoder.resize == "opencv_linear":  # DeepEthogram's resize (the frame cache holds ours): native size first
        cache = None
    if cache is not None:
        n = len(cache)
        chunks: Iterator[np.ndarray] = (cache.frames[i : i + chunk] for i in range(0, n, chunk))
    else:
        with VideoReader(video) as reader:
            n = len(reader)
        if encoder.resize == "opencv_linear":
            native = iter_frame_chunks(video, None, chunk, timings)
            chunks = (np.stack([resize_opencv_linear(f, encoder.size) for f in c]) for c in native)
        else:
            chunks = iter_frame_chunks(video, encoder.size, chunk, timings)
    if encoder.window == "causal":
        windows = iter_causal_windows(chunks, encoder.frames_per_window)
    else:
        windows = iter_centred_windows(chunks, encoder.frames_per_window, encoder.pad_rgb or (0, 0, 0))
    features, logits = encode_frames(
        encoder.encoder,
        windows,
        n,
        batch_size=batch_size,
        device=device,
        progress=progress,
        timings=timings,
        precision=precision,
    )
    timings["total"] = time.perf_counter() - t0
    return EncodedVideo(features, logits, timings)


def _existing_cache(video: str | os.PathLike, cache_dir: str | os.PathLike, size: tuple[int, int]) -> Any:
    """A project's frame cache for the video if one at ``size`` is on disk, else None.

    An existing cache is reused (or rebuilt by ``FrameCache.open`` if the video changed); extraction never builds
    a cache just for itself.
    """
    data_path, meta_path = FrameCache.paths_for(Path(video).resolve(), cache_dir, size)
    if not (data_path.is_file() and meta_path.is_file()):
        return None
    return FrameCache.open(video, cache_dir, size=size, progress=False)


# ---------------------------------------------------------------------------------------------------------------
# Whole projects
# ---------------------------------------------------------------------------------------------------------------


def select_shard(
    items: Sequence[Any], shard: tuple[int, int] | str | None, key: Callable[[Any], str] | None = None
) -> list[Any]:
    """The items of shard ``i`` of ``n`` (0-based): every n-th item starting at i, after sorting by name.

    Names are ``key(item)``; by default the item's ``name`` attribute or the item itself as a string.

    Deterministic and independent of the order given, so ``n`` machines running ``--shard 0/n .. n-1/n`` cover
    every item exactly once.

    Raises:
        ExtractError: a malformed shard (``"i/n"`` with ``0 <= i < n``).
    """
    if shard is None:
        return list(items)
    i, n = parse_shard(shard) if isinstance(shard, str) else shard
    ordered = sorted(items, key=key or (lambda x: str(getattr(x, "name", x))))
    return ordered[i::n]


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)``; raises :class:`ExtractError` for anything else or ``i`` outside ``0..n-1``."""
    try:
        i_text, n_text = str(text).split("/")
        i, n = int(i_text), int(n_text)
    except ValueError:
        raise ExtractError(f"--shard {text!r}: expected i/n, e.g. 0/4 for the first of four shards") from None
    if n < 1 or not 0 <= i < n:
        raise ExtractError(f"--shard {text!r}: need n >= 1 and 0 <= i < n (shards are numbered from 0)")
    return i, n


def extract_features(
    project: Any,
    feature_run: str | os.PathLike | LoadedEncoder,
    videos: Sequence[Any] | None = None,
    shard: tuple[int, int] | str | None = None,
    *,
    batch_size: int = 32,
    device: str = "cpu",
    overwrite: bool = False,
    progress: bool = True,
    precision: str = "fp32",
) -> list[Path]:
    """Extract features for a project's videos into their ``<video>_outputs.h5``.

    A video whose outputs already hold this run's features (same checkpoint) is skipped unless ``overwrite``;
    features of another run under the same latent name are replaced.

    Args:
        project: an open :class:`deg_train.project.layout.Project`.
        feature_run: a stage-2 run directory / checkpoint, or a :class:`LoadedEncoder`.
        videos: names (or records) to process; None = every video in the project.
        shard: ``(i, n)`` or ``"i/n"``: process only shard i of n (see :func:`select_shard`).
        batch_size: windows per encoder call.
        device: torch device.
        overwrite: redo videos whose features are already there, and replace a group of that name another program
            (DeepEthogram) wrote; without it such a group is kept and used as it is.
        progress: progress bars.
        precision: ``fp32`` (default) or ``bf16`` (faster on CPUs with AVX512-BF16; features differ ~1e-2).

    Returns:
        The outputs files of the selected videos (in the order processed).
    """
    loaded = load_encoder(feature_run, device=device)
    records = {r.name: r for r in project.videos}
    names = list(records) if videos is None else [getattr(v, "name", v) for v in videos]
    unknown = [n for n in names if n not in records]
    if unknown:
        raise ExtractError(f"videos {unknown} are not in the project {project.root}; known: {sorted(records)}")
    names = select_shard(names, shard)
    fingerprint = loaded.fingerprint() + ("" if precision == "fp32" else f":{precision}")
    paths = []
    for name in progress_bar(names, desc="extract", unit="video", disable=not progress, logger=log):
        record = records[name]
        out = Path(getattr(record, "outputs_path", None) or outputs_path_for(record.video_path))
        attrs = group_attrs(out, loaded.latent_name)
        if not overwrite and attrs is not None and attrs.get("encoder") == fingerprint:
            paths.append(out)
            continue
        if not overwrite and group_producer(out, loaded.latent_name) not in (None, PRODUCER):
            log.warning(
                "%s: group %r was written by another program (DeepEthogram); using its features as they are "
                "(--overwrite replaces them with this run's)",
                out,
                loaded.latent_name,
            )
            paths.append(out)
            continue
        write_encoded(
            out,
            video_outputs(
                record.video_path,
                loaded,
                batch_size=batch_size,
                device=device,
                cache_dir=getattr(project, "cache_dir", None),
                progress=name if progress else False,
                precision=precision,
            ),
            loaded,
            fingerprint,
            overwrite=overwrite,
        )
        paths.append(out)
    return paths


def video_outputs(
    video: str | os.PathLike,
    loaded: LoadedEncoder,
    *,
    batch_size: int = 32,
    device: str = "cpu",
    cache_dir: str | os.PathLike | None = None,
    progress: bool | str = False,
    precision: str = "fp32",
) -> EncodedVideo:
    """Encode one video (see :func:`encode_video`) and log its throughput."""
    result = encode_video(
        video,
        loaded,
        batch_size=batch_size,
        device=device,
        frame_cache_dir=cache_dir,
        progress=progress,
        precision=precision,
    )
    n = result.features.shape[0]
    t = result.timings
    log.info(
        "%s: %d frames in %.1f s (%.1f frames/s; encoder %.1f s, decode %.1f s)",
        Path(video).name,
        n,
        t["total"],
        n / max(t["total"], 1e-9),
        t["encoder"],
        t["decode"],
    )
    return result


def write_encoded(
    out: Path,
    result: EncodedVideo,
    loaded: LoadedEncoder,
    fingerprint: str | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Write one video's encoder outputs as the feature group of its outputs file.

    ``overwrite`` lets it replace a group of that name another program (DeepEthogram) wrote.
    """
    ds = loaded.spatial_size or result.features.shape[1] // 2
    return write_outputs(
        out,
        loaded.latent_name,
        spatial_features=result.features[:, :ds],
        flow_features=result.features[:, ds:],
        logits=result.logits,
        probabilities=probabilities(result.logits, loaded.exclusive),
        thresholds=loaded.meta.get("thresholds"),
        behaviours=loaded.behaviours,
        attrs={
            "stage": "feature",
            "run": str(loaded.run_dir) if loaded.run_dir else "",
            "encoder": fingerprint or loaded.fingerprint(),
            "frames_per_window": loaded.frames_per_window,
            "size": list(loaded.size),
            "causal_window": "t-T+1..t, frame 0 repeated before the start",
        },
        overwrite=overwrite,
    )
