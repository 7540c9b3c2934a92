"""One contract over every registered frame source that can run here, plus each source's own promises."""

import os

os.environ.setdefault("PYLON_CAMEMU", "1")  # pylon's emulated camera; must precede the first pypylon import

import itertools
import time
from pathlib import Path

import numpy as np
import pytest

from camera_adapters.settings import ConfigError
from camera_adapters.sources import (
    Capabilities,
    EndOfStream,
    SourceError,
    SourceUnavailable,
    create_source,
    get_source_class,
    source_names,
)
from camera_adapters.sources.synthetic import read_barcode
from camera_adapters.video import VideoReader, write_video

RAT_VIDEO = Path("tests/data/rat_behavior/cage1_6_20_22_56/cage1_6_20_22_56.mp4")
N = 12

# Options that make each source run here, quickly, for N frames.
RUNNABLE = {
    "synthetic": ["width=96", "height=64", "fps=0", f"max_frames={N}"],
    "video": [f"path={RAT_VIDEO}", "rate=0", f"max_frames={N}"],
    "ffmpeg": ["url=testsrc2=size=96x64:rate=30", "format=lavfi", f"max_frames={N}"],
    "basler": ["emulate=true", "width=96", "height=64", "fps=200", f"max_frames={N}"],
}
# Options naming a device or file that does not exist.
MISSING = {
    "video": ["path=/nonexistent/session.mp4"],
    "ffmpeg": ["url=/dev/video97", "format=v4l2"],
    "basler": ["emulate=true", "serial=no-such-camera"],
    "genicam": ["producer=/nonexistent/producer.cti"],
}


# Sources built on the core dependencies (numpy, PyAV): they must run on every machine, so a probe that says
# otherwise (or raises) is a failure, never a skip. The others need a vendor SDK, a producer or a device.
MUST_RUN = {"synthetic", "video", "ffmpeg"}


def _require_or_skip(name):
    """Fail when a source that must exist everywhere is unusable; skip (with the reason) for hardware ones."""
    usable, why = get_source_class(name).availability()  # raising here is a failure, not a skip
    if name in MUST_RUN:
        assert usable, f"{name} must run on every machine, but its probe says: {why}"
    elif not usable:
        pytest.skip(f"{name} cannot run here ({why})")


def test_sources_that_must_exist_everywhere_are_registered():
    assert set(source_names()) >= MUST_RUN
    assert MUST_RUN <= set(RUNNABLE)


@pytest.mark.parametrize("name", source_names())
def test_source_contract(name):
    if name not in RUNNABLE:
        pytest.skip(f"{name} has no runnable options without its device")
    _require_or_skip(name)
    source = create_source(name, RUNNABLE[name], camera_id="camX")
    with pytest.raises(SourceError):
        source.capabilities  # noqa: B018 - not open yet
    with source as opened:
        assert opened is source
        caps = source.capabilities
        assert isinstance(caps, Capabilities) and caps.width > 0 and caps.height > 0 and caps.is_finite
        frames = list(source)  # stops at EndOfStream after max_frames
        with pytest.raises(EndOfStream):
            source.read()
    assert len(frames) == N
    assert [f.index for f in frames] == list(range(N)), "exact, consecutive indices from 0"
    captures = [f.capture_time_ns for f in frames]
    assert captures == sorted(captures) and captures[0] > 0
    stamps = [f.camera_timestamp_ns for f in frames if f.camera_timestamp_ns is not None]
    if caps.has_hardware_timestamps:
        assert len(stamps) == N
    assert all(b > a for a, b in itertools.pairwise(stamps)), "camera timestamps strictly increase"
    for f in frames:
        assert f.pixels.shape == caps.shape and f.pixels.dtype == np.uint8
        assert f.pixel_format == caps.pixel_format and f.camera_id == "camX"
    assert source.lost_frames == 0
    source.close()  # idempotent
    source.close()
    with pytest.raises(SourceError):
        source.read()
    with pytest.raises(SourceError):
        source.open()


@pytest.mark.parametrize("name", sorted(MISSING))
def test_missing_device_is_a_clean_error(name):
    source = create_source(name, MISSING[name])
    with pytest.raises(SourceError) as info:
        source.open()
    assert str(info.value) and "Traceback" not in str(info.value)
    source.close()
    source.close()


def test_genicam_without_producer_says_where_it_looked(monkeypatch, tmp_path):
    monkeypatch.setenv("GENICAM_GENTL64_PATH", str(tmp_path))
    usable, why = get_source_class("genicam").availability()
    assert not usable and str(tmp_path) in why
    with pytest.raises(SourceUnavailable, match=r"GENICAM_GENTL64_PATH|producer"):
        create_source("genicam").open()
    monkeypatch.delenv("GENICAM_GENTL64_PATH")
    with pytest.raises(SourceUnavailable, match="not set"):
        create_source("genicam").open()


def test_registry_and_options_fail_listing_what_exists():
    with pytest.raises(ConfigError, match=r"known sources: .*synthetic"):
        create_source("webcam9000")
    with pytest.raises(ConfigError, match=r"exposure.*known keys here: .*fps"):
        create_source("synthetic", ["exposure=3"])
    with pytest.raises(ConfigError, match="width"):
        create_source("synthetic", ["width=wide"])
    with pytest.raises(ConfigError, match="path is required"):
        create_source("video")
    with pytest.raises(ConfigError, match="trigger"):
        create_source("basler", ["trigger=line9"])


def test_synthetic_ground_truth_barcode_and_scripted_faults():
    opts = [
        "width=64",
        "height=32",
        "fps=0",
        "script=[[still, 3], [walk, 2]]",
        "drop_frames=[4, 5]",
        "disconnect_after=6",
        "pixel_format=gray8",
    ]
    with create_source("synthetic", opts) as source:
        frames = [source.read() for _ in range(6)]
        with pytest.raises(SourceError, match="disconnected"):
            source.read()
    assert [f.index for f in frames] == [0, 1, 2, 3, 6, 7]
    assert [f.truth["behaviour"] for f in frames] == ["still", "still", "still", "walk", "still", "still"]
    assert [read_barcode(f.pixels) for f in frames] == [f.index for f in frames]
    assert source.lost_frames == 2


def test_synthetic_paced_rate():
    with create_source("synthetic", ["width=64", "height=32", "fps=100", "max_frames=30"]) as source:
        frames = list(source)
    span = (frames[-1].capture_time_ns - frames[0].capture_time_ns) / 1e9
    assert 0.25 < span < 0.6  # 29 periods of 10 ms


def test_video_indices_match_the_file_and_loop_keeps_counting():
    with VideoReader(RAT_VIDEO) as reader:
        n = len(reader)
        tail = reader.read_range(n - 3, n)
        head = reader.read_range(0, 2)
    opts = [f"path={RAT_VIDEO}", "rate=0", "loop=true", f"start={n - 3}", "max_frames=5"]
    with create_source("video", opts) as source:
        frames = list(source)
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert [f.source_frame for f in frames] == [n - 3, n - 2, n - 1, 0, 1]
    for f, want in zip(frames, [*tail, *head]):
        np.testing.assert_array_equal(f.pixels, want)
    stamps = [f.camera_timestamp_ns for f in frames]
    assert stamps == sorted(stamps)


def test_video_paced_at_given_rate():
    with create_source("video", [f"path={RAT_VIDEO}", "rate=50", "max_frames=15"]) as source:
        frames = list(source)
    span = (frames[-1].capture_time_ns - frames[0].capture_time_ns) / 1e9
    assert 0.22 < span < 0.6  # 14 periods of 20 ms


def test_video_that_ends_early(tmp_path):
    path = tmp_path / "short.mp4"
    write_video(path, np.random.default_rng(0).integers(0, 255, (20, 32, 48, 3), dtype=np.uint8), fps=25)
    with create_source("video", [f"path={path}", "rate=0", "max_frames=100"]) as source:
        frames = list(source)  # the file has fewer frames than asked: a clean end, not an error
    assert len(frames) == 20
    data = path.read_bytes()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(data[: len(data) // 3])  # truncated: no index, no frames
    with pytest.raises(SourceError, match=r"broken\.mp4"):
        create_source("video", [f"path={broken}"]).open()


def test_ffmpeg_network_stream_that_never_comes_back_fails_cleanly():
    opts = ["url=tcp://127.0.0.1:9", "reconnect=true", "max_reconnects=2", "reconnect_delay_s=0.05", "open_timeout_s=1"]
    with pytest.raises(SourceError, match="cannot open"):
        create_source("ffmpeg", opts).open()


def test_basler_settings_lost_frames_and_image_folder(tmp_path):
    _require_or_skip("basler")
    from PIL import Image

    for i in range(3):
        Image.fromarray(np.full((64, 96, 3), 40 * (i + 1), np.uint8)).save(tmp_path / f"img{i}.png")
    opts = [
        "emulate=true",
        "width=96",
        "height=64",
        "camera_pixel_format=RGB8Packed",
        f"image_folder={tmp_path}",
        "exposure_us=1000",
        "gain_db=0",
        "fps=200",
        "max_frames=6",
    ]
    with create_source("basler", opts) as source:
        frames = list(source)
    assert [int(f.pixels[10, 10, 0]) for f in frames] == [40, 80, 120, 40, 80, 120]

    with create_source("basler", ["emulate=true", "width=96", "height=64", "fps=200", "pixel_format=gray8"]) as source:
        indices = []
        for i in range(20):
            if i == 8:  # the emulator fails the next 2 buffers: the camera counter shows the gap
                source._camera.ForceFailedBufferCount.Value = 2
                source._camera.ForceFailedBuffer.Execute()
            frame = source.read()
            assert frame.pixels.shape == (64, 96)
            indices.append(frame.index)
    assert indices == [*range(8), *range(10, 22)]
    assert source.lost_frames == 2 and source.failed_grabs == 2


_SERVER = """
import sys, time, av, numpy as np
port, rounds, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
print("ready", flush=True)  # imports done (seconds on a busy machine): the listening socket comes next
for r in range(rounds):
    out = av.open(f"tcp://127.0.0.1:{port}?listen=1", "w", format="mpegts")
    s = out.add_stream("mpeg2video", rate=30)
    s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
    for i in range(n):
        for p in s.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 5, np.uint8), format="rgb24")):
            out.mux(p)
        time.sleep(0.01)
    for p in s.encode():
        out.mux(p)
    out.close()
"""


def test_ffmpeg_network_camera_that_drops_is_reconnected():
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # drops once, comes back
    server = subprocess.Popen([sys.executable, "-c", _SERVER, str(port), "2", "30"], stdout=subprocess.PIPE, text=True)
    try:
        # Wait for the server's imports however slow this machine is, not a fixed time.
        assert server.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        opts = [
            f"url=tcp://127.0.0.1:{port}",
            "format=mpegts",
            "reconnect_delay_s=0.2",
            "max_reconnects=2",
            "read_timeout_s=2",
        ]
        frames = []
        with create_source("ffmpeg", opts) as source:
            with pytest.raises(SourceError, match="2 reconnection attempts failed"):
                while True:
                    frames.append(source.read())
            assert source.reconnects == 1
    finally:
        server.kill()
        server.wait()
    assert [f.index for f in frames] == list(range(60))
    stamps = [f.camera_timestamp_ns for f in frames]
    assert all(b > a for a, b in itertools.pairwise(stamps))


@pytest.mark.parametrize("name", source_names())
def test_example_config_lists_every_setting(name):
    import dataclasses

    from camera_adapters.settings import read_yaml

    path = Path("configs/cameras") / f"{name}.yaml"
    data = read_yaml(path)
    assert set(data) == {f.name for f in dataclasses.fields(get_source_class(name).Settings)}
    create_source(name, config=path)
