"""Shared by the live tests: a tiny exported bundle (cached between runs), its torch twin, and a camera thread.

The bundle is built from randomly initialised models of the ``deg_live_cpu`` preset made tiny (32x32 input,
T=3, quarter-width streams, a small causal TGM). Exporting costs ~30-50 s on 2 cores, so it is cached under
pytest's cache directory (a per-session directory under ``-p no:cacheprovider``), keyed by a hash of the code that
produces it (models, export, bundle format) and of the torch / onnx / onnxruntime / Python versions: a change to
any of them rebuilds it. The torch modules' weights are saved beside it, so the offline reference
(:func:`deg_train.inference.predict.infer_video`) runs the very same weights.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deg_live.processors import Processor

REPO = Path(__file__).resolve().parents[2]
RAT = REPO / "tests" / "data" / "rat_behavior"
SHORT_SESSION = "cage1_6_23_17_5"  # 144 frames, 320x180, 25 fps
SHORT_VIDEO = RAT / SHORT_SESSION / f"{SHORT_SESSION}.mp4"
BEHAVIOURS = ["background", "grooming", "rearing"]
SIZE = (32, 32)
T = 3
THRESHOLDS = [0.5, 0.5, 0.5]
POSTPROCESS = {"hysteresis": 0.02, "min_duration_frames": 2, "min_off_frames": 1}
_CODE = [
    "deg_train/models",
    "deg_train/export.py",
    "deg_live/bundle.py",
    "tests/deg_live/live_support.py",
]


# The exported graphs depend on these as much as on the code: a torch or onnx upgrade must rebuild the bundle.
_PACKAGES = ("torch", "onnx", "onnxscript", "onnxruntime")


def _package_versions() -> str:
    versions = []
    for name in _PACKAGES:
        try:
            versions.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} absent")
    return f"python {sys.version_info[:3]}; " + "; ".join(versions)


def _code_hash() -> str:
    """Key of the cached bundle: the code that produces it and the versions of the packages that export it."""
    digest = hashlib.sha256(_package_versions().encode())
    for rel in _CODE:
        path = REPO / rel
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for f in files:
            digest.update(str(f.relative_to(REPO)).encode())
            digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


def build_models():
    """The tiny FrameEncoder and SequenceStep (random weights, seed 0), their TwoStream and sequence model."""
    import torch

    from deg_train.models.feature.two_stream import TwoStream
    from deg_train.models.frame_encoder import FrameEncoder, SequenceStep
    from deg_train.models.registry import create_model
    from deg_train.training.presets import get_preset, sequence_kwargs, two_stream_kwargs

    torch.manual_seed(0)
    preset = get_preset("deg_live_cpu")
    preset["flow"]["num_frames"] = T
    preset["flow"]["width"] = 0.25
    preset["feature"]["width"] = 0.25
    k = len(BEHAVIOURS)
    two_stream = TwoStream(**two_stream_kwargs(preset, k)).eval()
    arch, kwargs = sequence_kwargs(preset, k, two_stream.num_features)
    kwargs.update(num_features=16)
    sequence = create_model("sequence", arch, **kwargs).eval()
    # Sharper probabilities than random init gives, so thresholds are crossed and events happen.
    with torch.no_grad():
        for p in sequence.parameters():
            p.mul_(3.0)
    return two_stream, FrameEncoder(two_stream).eval(), sequence, SequenceStep(sequence).eval()


@dataclass
class TinyBundle:
    """A cached tiny bundle and where its torch weights are."""

    path: Path
    weights: Path

    def torch_models(self):
        """(two_stream, encoder, sequence, step) with the bundle's weights loaded."""
        import torch

        two_stream, encoder, sequence, step = build_models()
        state = torch.load(self.weights, weights_only=True)
        two_stream.load_state_dict(state["two_stream"])
        sequence.load_state_dict(state["sequence"])
        return two_stream, encoder, sequence, step


def tiny_bundle(cache_dir: Path) -> TinyBundle:
    """The tiny bundle, exported into ``cache_dir/<code hash>`` unless it is already there."""
    root = Path(cache_dir) / _code_hash()
    bundle, weights = root / "bundle", root / "weights.pt"
    if (bundle / "manifest.json").is_file() and weights.is_file():
        return TinyBundle(bundle, weights)
    import torch

    from deg_train.export import export_bundle

    torch.set_num_threads(1)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    two_stream, encoder, sequence, step = build_models()
    export_bundle(
        encoder,
        step,
        bundle,
        behaviours=BEHAVIOURS,
        height=SIZE[0],
        width=SIZE[1],
        frames_per_window=T,
        thresholds=THRESHOLDS,
        postprocess=POSTPROCESS,
        preset="tiny_test",
        torch_programs=True,
    )
    torch.save({"two_stream": two_stream.state_dict(), "sequence": sequence.state_dict()}, weights)
    return TinyBundle(bundle, weights)


class CameraThread:
    """A ``camera_adapters`` source published in a thread (the same code ``deg-camera`` runs).

    Args:
        source: a FrameSource (e.g. ``create_source("video", {"path": ..., "rate": 0})``).
        endpoint: live endpoint to bind.
        lossless: lossless endpoint to bind, or None.
        lossless_block: the publisher waits for the lossless receiver (nothing dropped, full speed).
        start_delay_s: wait before the first frame (lets subscribers connect: ZeroMQ's slow joiner).
    """

    def __init__(
        self,
        source,
        endpoint: str,
        *,
        lossless: str | None = None,
        lossless_block: bool = False,
        camera_id: str = "cam0",
        stream_id: str | None = None,
        start_delay_s: float = 0.5,
        max_frames: int | None = None,
    ):
        from camera_adapters.publisher import FramePublisher

        self.source = source
        self.publisher = FramePublisher(
            endpoint, lossless=lossless, lossless_block=lossless_block, camera_id=camera_id, stream_id=stream_id
        )
        self.stop = threading.Event()
        self.result: dict | None = None
        self.error: BaseException | None = None
        self._delay = start_delay_s
        self._max_frames = max_frames
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from camera_adapters.publisher import stream

        try:
            if self.stop.wait(self._delay):
                return
            self.result = stream(self.source, self.publisher, stop=self.stop, max_frames=self._max_frames)
        except BaseException as err:  # reported by join()
            self.error = err

    def start(self) -> CameraThread:
        self._thread.start()
        return self

    def join(self, timeout: float = 60.0) -> dict | None:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("camera thread did not finish")
        if self.error is not None:
            raise self.error
        return self.result

    def close(self) -> None:
        self.stop.set()
        self._thread.join(10)
        self.publisher.close()
        self.source.close()

    def __enter__(self) -> CameraThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


class SlowProcessor(Processor):
    """Holds the pipeline for ``delay_ms`` per frame (``--processor "live_support:SlowProcessor delay_ms=40"``)."""

    name = "slow"

    def __init__(self, delay_ms: str = "40"):
        self.delay_s = float(delay_ms) / 1000

    def process(self, result) -> None:
        time.sleep(self.delay_s)


def free_endpoint(tmp_path: Path, name: str) -> str:
    """A fresh ipc endpoint inside ``tmp_path`` (no port clashes between concurrent test runs)."""
    return f"ipc://{tmp_path}/{name}.sock"


def offline_probabilities(bundle: TinyBundle, video: Path = SHORT_VIDEO):
    """``deg-train infer``'s reference on ``video`` with the bundle's torch twin: an InferenceResult."""
    import torch

    from deg_live.postprocess import PostprocessSettings
    from deg_train.inference.extract import LoadedEncoder
    from deg_train.inference.predict import LoadedSequence, infer_video

    torch.set_num_threads(1)
    two_stream, encoder, sequence, _ = bundle.torch_models()
    loaded_encoder = LoadedEncoder(
        encoder=encoder,
        size=SIZE,
        frames_per_window=T,
        behaviours=BEHAVIOURS,
        spatial_size=int(getattr(two_stream, "spatial_features", two_stream.num_features // 2)),
        latent_name="tiny",
        run_dir=None,
    )
    from deg_live.bundle import read_bundle

    settings = read_bundle(bundle.path).postprocess_settings()
    loaded_sequence = LoadedSequence(
        model=sequence,
        behaviours=BEHAVIOURS,
        thresholds=np.asarray(THRESHOLDS, np.float32),
        postprocess=settings if isinstance(settings, PostprocessSettings) else PostprocessSettings(**POSTPROCESS),
        causal=True,
        latent_name="tiny",
        output_name="tgm",
        run_dir=None,
    )
    return infer_video(video, loaded_encoder, loaded_sequence, batch_size=16)
