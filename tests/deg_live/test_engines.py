"""Engines: every backend reproduces ``deg-train infer`` on a real rat video, and streaming equals offline.

The same contract tests run over every backend variant; those that cannot run here (torch on CUDA, TensorRT)
carry the ``cuda`` / ``tensorrt`` markers and skip cleanly with the reason. The CPU variants (ONNX Runtime, torch
fp32 and bf16) run on every x86-64 CPU: bf16 is emulated where the CPU has no native bf16 (slower, same
rounding), so no test depends on the CPU model. The bundle is the tiny one shared with
the live tests (tests/deg_live/live_support.py, exported once and cached by code hash).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from live_support import SHORT_VIDEO, SIZE, offline_probabilities, tiny_bundle

from camera_adapters.video import VideoReader
from deg_live.bundle import BundleError, read_bundle, write_bundle
from deg_live.engines import (
    EngineError,
    EngineUnavailableError,
    FrameError,
    create_engine,
    list_engines,
    probe,
    probe_all,
)
from deg_live.engines.registry import choose_auto, cuda_device_count

FP32 = {"atol": 2e-5, "rtol": 1e-4}
REDUCED = {"atol": 3e-2, "rtol": 0}  # fp16 / bf16: probabilities within 0.03

# (name, options, tolerance vs the torch reference); GPU variants are marked and skip without a GPU.
VARIANTS = [
    pytest.param(("onnxruntime", {}, FP32), id="onnxruntime"),
    pytest.param(("torch", {"device": "cpu"}, FP32), id="torch-cpu"),
    pytest.param(("torch", {"device": "cpu", "precision": "bf16"}, REDUCED), id="torch-cpu-bf16"),
    pytest.param(("torch", {"device": "cuda"}, FP32), id="torch-cuda", marks=pytest.mark.cuda),
    pytest.param(
        ("torch", {"device": "cuda", "cuda_graphs": True}, FP32), id="torch-cuda-graphs", marks=pytest.mark.cuda
    ),
    pytest.param(("onnxruntime", {"device": "cuda"}, FP32), id="onnxruntime-cuda", marks=pytest.mark.cuda),
    pytest.param(("tensorrt", {}, REDUCED), id="tensorrt-fp16", marks=pytest.mark.tensorrt),
    pytest.param(
        ("tensorrt", {"precision": "fp32"}, {"atol": 1e-3, "rtol": 0}), id="tensorrt-fp32", marks=pytest.mark.tensorrt
    ),
]


@pytest.fixture(scope="session")
def bundle_info(cache_dir):
    return tiny_bundle(cache_dir("deg_live_tiny_bundle"))


@pytest.fixture(scope="session")
def bundle(bundle_info):
    return read_bundle(bundle_info.path)


@pytest.fixture(scope="session")
def reference(bundle_info):
    """``deg-train infer`` on the short rat video with the bundle's torch twin (InferenceResult)."""
    return offline_probabilities(bundle_info)


@pytest.fixture(scope="session")
def video_frames(reference):
    with VideoReader(SHORT_VIDEO, size=SIZE) as video:
        frames = video.read_range(0, len(video))
    assert len(frames) == reference.n_frames == 144
    return frames


# Engines that must run on every machine (CPU backends of the live and train extras): a probe that fails or
# raises for them is a test failure, never a skip. TensorRT and CUDA variants skip with the probe's reason.
MUST_RUN = {("onnxruntime", "cpu"), ("torch", "cpu")}


def _skip_unless_usable(name: str, options: dict) -> None:
    device = options.get("device", "cpu")
    av = probe(name)
    if (name, device) in MUST_RUN:
        assert av.available and "cpu" in av.devices, f"{name} on the CPU must work everywhere: {av.reason}"
        return
    if not av.available:
        pytest.skip(f"{name}: {av.reason}")
    if device.startswith("cuda") and not any(d.startswith("cuda") for d in av.devices):
        pytest.skip(f"{name} has no CUDA device here ({av.reason})")


def test_cpu_engines_probe_without_failing():
    """``probe`` turns exceptions into "unavailable": for the CPU engines that would hide a broken install."""
    from deg_live.engines.registry import engine_class

    for name, _ in sorted(MUST_RUN):
        av = engine_class(name).availability()  # the class's own check, unguarded: an import error fails here
        assert av.available and "cpu" in av.devices, av.reason


@pytest.fixture(params=VARIANTS)
def variant(request, bundle):
    name, options, tol = request.param
    _skip_unless_usable(name, options)
    with create_engine(bundle, name, **options) as engine:
        yield engine, tol


def test_offline_reproduces_deg_train_infer(variant, reference, video_frames):
    engine, tol = variant
    result = engine.infer_frames(video_frames, batch_size=16)
    assert result.probs.shape == reference.probabilities.shape
    np.testing.assert_allclose(result.probs, reference.probabilities, **tol)
    np.testing.assert_allclose(result.logits, reference.feature_logits, atol=max(tol["atol"], 1e-4) * 10, rtol=0)
    # The probabilities must actually vary across the video, or the comparison proves little.
    assert reference.probabilities.std(axis=0).max() > 1e-3


def test_streaming_equals_offline(variant, reference, video_frames):
    engine, tol = variant
    offline = engine.infer_frames(video_frames, batch_size=32)
    stream = engine.stream()
    results = [stream.push(frame) for frame in video_frames]
    streamed = np.stack([r.probs for r in results])
    assert [r.index for r in results] == list(range(len(video_frames)))
    same_backend = {"atol": 1e-5, "rtol": 1e-5} if tol is FP32 else tol
    np.testing.assert_allclose(streamed, offline.probs, **same_backend)
    np.testing.assert_allclose(streamed, reference.probabilities, **tol)
    timings = results[-1].timings
    assert {"upload", "encoder", "sequence", "total"} <= set(timings)
    assert timings["total"] >= timings["encoder"] >= 0


def test_reset_and_independent_streams(variant, video_frames):
    engine, _ = variant
    frames = video_frames[:20]
    first = engine.stream()
    alone = np.stack([first.push(f).probs for f in frames])
    first.reset()
    again = np.stack([first.push(f, index=100 + i).probs for i, f in enumerate(frames)])
    np.testing.assert_array_equal(alone, again)
    # Two cameras interleaved on one engine do not disturb each other.
    a, b = engine.stream(), engine.stream()
    other = video_frames[50:70]
    out_a, out_b = [], []
    for fa, fb in zip(frames, other):
        out_a.append(a.push(fa).probs)
        out_b.append(b.push(fb).probs)
    np.testing.assert_allclose(np.stack(out_a), alone, atol=1e-6, rtol=0)
    solo_b = engine.stream()
    np.testing.assert_allclose(np.stack(out_b), np.stack([solo_b.push(f).probs for f in other]), atol=1e-6, rtol=0)


def test_bad_frames_are_clear_errors(variant, video_frames):
    engine, _ = variant
    stream = engine.stream()
    with pytest.raises(FrameError, match="shape"):
        stream.push(np.zeros((SIZE[0] + 1, SIZE[1], 3), np.uint8))
    with pytest.raises(FrameError, match="uint8"):
        stream.push(video_frames[0].astype(np.float32))
    with pytest.raises(FrameError, match="uint8"):
        stream.push(video_frames[0].tolist())
    with pytest.raises(FrameError, match=r"\(B, 3, 32, 32, 3\)"):
        engine.encode(np.zeros((2, 4, *SIZE, 3), np.uint8))
    # The stream still works after rejecting bad frames.
    assert stream.push(video_frames[0]).probs.shape == (3,)


def test_describe_and_close(variant):
    engine, _ = variant
    info = engine.describe()
    assert info["backend"] == engine.name and info["device"] and info["precision"] == engine.precision
    json.dumps(info)
    engine.warmup(2)
    engine.close()
    engine.close()  # idempotent
    assert engine.closed
    with pytest.raises(EngineError, match="closed"):
        engine.encode(np.zeros((1, 3, *SIZE, 3), np.uint8))


# ------------------------------------------------------------------------------------------------- registry


def test_registry_lists_and_rejects_unknown(bundle):
    assert set(list_engines()) >= {"onnxruntime", "torch", "tensorrt"}
    with pytest.raises(EngineError, match=r"known engines: auto, .*onnxruntime"):
        create_engine(bundle, "openvino")
    with pytest.raises(EngineError, match="unknown option"):
        create_engine(bundle, "onnxruntime", turbo=True)
    with pytest.raises(EngineError, match="precision"):
        create_engine(bundle, "onnxruntime", precision="int4")
    assert all(isinstance(a.available, bool) and a.reason for a in probe_all().values())


@pytest.mark.skipif(cuda_device_count() > 0, reason="this machine has a CUDA device")
def test_tensorrt_without_gpu_says_what_to_install(bundle):
    with pytest.raises(EngineUnavailableError, match=r"pip install --extra-index-url https://pypi.nvidia.com tensorrt"):
        create_engine(bundle, "tensorrt")
    from deg_live.engines.tensorrt_engine import TensorRTEngine

    with pytest.raises(EngineUnavailableError, match="NVIDIA GPU"):
        TensorRTEngine(bundle)
    assert "tensorrt" not in sys.modules


def test_auto_picks_and_logs_why(bundle, caplog):
    caplog.set_level(logging.INFO, logger="deg_live.engines.registry")
    name, options, reason = choose_auto(bundle)
    with create_engine(bundle, "auto") as engine:
        assert engine.name == name and engine.precision == options.get("precision", engine.precision)
    assert any("engine auto: chose" in r.getMessage() and reason in r.getMessage() for r in caplog.records)
    if cuda_device_count() == 0:
        from deg_live.engines.torch_engine import cpu_has_bf16

        assert engine.device == "cpu"
        assert (name, options.get("precision")) == (("torch", "bf16") if cpu_has_bf16() else ("onnxruntime", None))


def test_engines_do_not_import_torch_or_tensorrt():
    code = (
        "import sys, deg_live.engines, deg_live.engines.onnxruntime_engine, deg_live.engines.tensorrt_engine\n"
        "import deg_live.engines.torch_engine, deg_live.commands.bench_engine\n"
        "from deg_live.engines import probe; probe('tensorrt'); probe('onnxruntime')\n"
        "print(','.join(m for m in ('torch', 'tensorrt', 'deg_train') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# ------------------------------------------------------------------------------------------------ bad input


@pytest.fixture
def bundle_copy(bundle_info, tmp_path):
    target = tmp_path / "bundle"
    shutil.copytree(bundle_info.path, target, ignore=shutil.ignore_patterns("engines"))
    return target


def test_corrupt_onnx_is_a_clear_error(bundle_copy):
    # Garbage with a matching hash (re-written manifest): only the engine can notice.
    (bundle_copy / "encoder.onnx").write_bytes(b"\x08\x07garbage, not a protobuf" * 10)
    manifest = read_bundle(bundle_copy, verify=False).manifest
    bundle = write_bundle(bundle_copy, manifest)
    with pytest.raises(EngineError, match=r"encoder\.onnx.*re-export"):
        create_engine(bundle, "onnxruntime")


def test_corrupt_torch_program_is_a_clear_error(bundle_copy):
    (bundle_copy / "encoder.pt2").write_bytes(b"PK\x03\x04 broken zip")
    bundle = write_bundle(bundle_copy, read_bundle(bundle_copy, verify=False).manifest)
    with pytest.raises(EngineError, match=r"encoder\.pt2.*re-export"):
        create_engine(bundle, "torch")


def test_changed_file_and_newer_schema_are_refused(bundle_copy):
    with open(bundle_copy / "sequence_step.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match=r"sequence_step\.onnx"):
        read_bundle(bundle_copy)
    data = json.loads((bundle_copy / "manifest.json").read_text())
    data["schema_version"] = 99
    (bundle_copy / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="newer"):
        read_bundle(bundle_copy)


def test_torch_engine_needs_the_exported_program(bundle_copy):
    manifest = read_bundle(bundle_copy, verify=False).manifest
    del manifest.encoder.files["torch"]
    (bundle_copy / "encoder.pt2").unlink()
    bundle = write_bundle(bundle_copy, manifest)
    with pytest.raises(EngineUnavailableError, match="onnxruntime"):
        create_engine(bundle, "torch")
    with create_engine(bundle, "onnxruntime") as engine:  # the ONNX path still works
        assert engine.encode(np.zeros((1, 3, *SIZE, 3), np.uint8))[0].shape[0] == 1
    if cuda_device_count() == 0:  # auto passes over torch for this bundle, and says why
        name, _, reason = choose_auto(bundle)
        assert name == "onnxruntime" and ".pt2" in reason


class _OpensAFile:
    """A pickle that runs code: it opens (creates) a file when unpickled by a loader that allows it."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_crafted_exported_program_runs_no_code(bundle, tmp_path):
    """``torch.export.load`` retries a pickled part its safe loader refuses with ``weights_only=False``; the torch
    engine never lets it. The crafted bundle is re-sealed (its hashes rewritten), as whoever sends it can."""
    import io
    import zipfile

    import torch

    copy = tmp_path / "bundle"
    shutil.copytree(bundle.directory, copy)
    manifest = read_bundle(copy).manifest
    marker = tmp_path / "code-ran"
    program = copy / bundle.manifest.encoder.files["torch"]
    payload = io.BytesIO()
    torch.save(_OpensAFile(marker), payload)
    original = zipfile.ZipFile(io.BytesIO(program.read_bytes()))
    replaced = 0
    with zipfile.ZipFile(program, "w") as crafted:
        for info in original.infolist():
            data = original.read(info.filename)
            if "/data/sample_inputs/" in info.filename:
                data, replaced = payload.getvalue(), replaced + 1
            crafted.writestr(info, data)
    assert replaced, "the exported program has no pickled sample inputs to replace"
    write_bundle(copy, manifest, files=list(manifest.files))
    switch = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    with pytest.raises(EngineError, match="cannot load this exported program"):
        create_engine(read_bundle(copy), "torch", device="cpu")
    assert not marker.exists(), "loading the bundle ran code from it"
    assert os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD") == switch  # set only while loading
