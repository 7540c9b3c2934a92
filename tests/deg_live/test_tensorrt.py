"""TensorRT specifics: the engine cache beside the bundle, rebuilt (not crashed on) when it does not fit.

The tests marked ``tensorrt`` need TensorRT and an NVIDIA GPU and skip cleanly elsewhere; the parity tests
(TensorRT == deg-train infer, streaming == offline) are the shared ones in test_engines.py. Run on a GPU machine:
``python -m pytest -m tensorrt tests/deg_live``.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest
from live_support import SIZE, tiny_bundle

from deg_live.bundle import read_bundle
from deg_live.engines import EngineUnavailableError, create_engine, probe
from deg_live.engines.registry import cuda_device_count


@pytest.fixture
def bundle(cache_dir, tmp_path):
    """A private copy of the tiny bundle (each test builds its own engine cache)."""
    info = tiny_bundle(cache_dir("deg_live_tiny_bundle"))
    target = tmp_path / "bundle"
    shutil.copytree(info.path, target, ignore=shutil.ignore_patterns("engines"))
    return read_bundle(target)


@pytest.fixture
def needs_tensorrt():
    av = probe("tensorrt")
    if not av.available:
        pytest.skip(av.reason)


WINDOWS = np.random.default_rng(0).integers(0, 256, (4, 3, *SIZE, 3), dtype=np.uint8)


@pytest.mark.tensorrt
def test_engine_cache_is_written_then_reused(bundle, needs_tensorrt, caplog):
    caplog.set_level(logging.INFO, logger="deg_live.engines.tensorrt_engine")
    with create_engine(bundle, "tensorrt") as engine:
        first = engine.encode(WINDOWS)
        files = engine.describe()["engine_cache"]
    plans = sorted(p.name for p in bundle.engine_cache_dir.glob("*.plan"))
    assert len(plans) == 2 and all(name in plans for name in (files["encoder"].split("/")[-1],))
    meta = json.loads(next(bundle.engine_cache_dir.glob("encoder-*.json")).read_text())
    assert {"gpu", "compute_capability", "tensorrt", "onnx_sha256", "precision"} <= set(meta)
    caplog.clear()
    with create_engine(bundle, "tensorrt") as engine:
        again = engine.encode(WINDOWS)
    assert any("using cached engine" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(first[0], again[0])
    # The bundle's hashes are unaffected by the cache directory.
    read_bundle(bundle.directory)


@pytest.mark.tensorrt
def test_cache_for_another_gpu_or_version_is_rebuilt(bundle, needs_tensorrt, caplog):
    with create_engine(bundle, "tensorrt"):
        pass
    for meta_path in bundle.engine_cache_dir.glob("*.json"):
        meta = json.loads(meta_path.read_text())
        meta["tensorrt"] = "8.6.1"  # as if built by another TensorRT
        meta_path.write_text(json.dumps(meta))
    caplog.set_level(logging.WARNING, logger="deg_live.engines.tensorrt_engine")
    with create_engine(bundle, "tensorrt") as engine:
        features, _ = engine.encode(WINDOWS)
    assert np.isfinite(features).all()
    assert any("built for another" in r.getMessage() and "tensorrt" in r.getMessage() for r in caplog.records)


@pytest.mark.tensorrt
def test_corrupt_cached_plan_is_rebuilt(bundle, needs_tensorrt, caplog):
    with create_engine(bundle, "tensorrt"):
        pass
    for plan in bundle.engine_cache_dir.glob("*.plan"):
        plan.write_bytes(b"not a TensorRT plan" * 100)
    caplog.set_level(logging.WARNING, logger="deg_live.engines.tensorrt_engine")
    with create_engine(bundle, "tensorrt") as engine:
        stream = engine.stream()
        probs = stream.push(WINDOWS[0, -1]).probs
    assert probs.shape == (3,) and np.isfinite(probs).all()
    assert any("cannot be loaded" in r.getMessage() for r in caplog.records)


@pytest.mark.tensorrt
def test_fp32_and_fp16_caches_are_separate(bundle, needs_tensorrt):
    with create_engine(bundle, "tensorrt", precision="fp32") as fp32, create_engine(bundle, "tensorrt") as fp16:
        a, _ = fp32.encode(WINDOWS)
        b, _ = fp16.encode(WINDOWS)
    assert len(list(bundle.engine_cache_dir.glob("*.plan"))) == 4
    np.testing.assert_allclose(a, b, atol=5e-2, rtol=5e-2)


@pytest.mark.skipif(cuda_device_count() > 0, reason="this machine has a CUDA device")
def test_without_a_gpu_tensorrt_is_never_imported(bundle):
    # In a fresh interpreter: asking for TensorRT gives the install message and never imports it.
    code = (
        "import sys\n"
        "from deg_live.bundle import read_bundle\n"
        "from deg_live.engines import create_engine, EngineUnavailableError\n"
        f"b = read_bundle({str(bundle.directory)!r})\n"
        "try:\n"
        "    create_engine(b, 'tensorrt')\n"
        "except EngineUnavailableError as err:\n"
        "    print(err)\n"
        "print('imported' if 'tensorrt' in sys.modules else 'not imported')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install --extra-index-url https://pypi.nvidia.com tensorrt" in out.stdout
    assert out.stdout.strip().endswith("not imported")
    with pytest.raises(EngineUnavailableError):
        create_engine(bundle, "tensorrt", precision="fp32")
