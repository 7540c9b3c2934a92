"""camera_adapters.video on real files: exact counts, frame-exact random access, odd formats, bad files."""

from pathlib import Path

import numpy as np
import pytest

from camera_adapters.video import (
    VideoError,
    VideoReader,
    VideoTruncatedError,
    check_complete,
    probe,
    resize_rgb,
    write_video,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "rat_behavior"
RAT = DATA / "cage1_6_23_17_5" / "cage1_6_23_17_5.mp4"


def _numbered_frames(n, h=48, w=64):
    """Frames whose brightness encodes their index, so a decoded frame tells which one it is."""
    return [np.full((h, w, 3), 6 * i, np.uint8) for i in range(n)]


def test_rat_video_count_is_exact_and_matches_labels():
    info = probe(RAT)
    labels = (RAT.parent / "cage1_6_23_17_5_labels.csv").read_text().strip().splitlines()
    assert info.n_frames == len(labels) - 1 == 144
    assert (info.width, info.height, info.fps) == (320, 180, 25.0)


def test_random_access_equals_sequential_decoding():
    with VideoReader(RAT) as video:
        sequential = np.stack(list(video))
        assert sequential.shape == (144, 180, 320, 3)
        order = np.random.default_rng(0).permutation(len(video))[:40]
        for i in order:
            np.testing.assert_array_equal(video[int(i)], sequential[i])
        np.testing.assert_array_equal(video.read_range(100, 111), sequential[100:111])
        np.testing.assert_array_equal(video[-1], sequential[-1])


@pytest.mark.parametrize(
    ("name", "codec", "pix_fmt", "options"),
    [
        ("yuv444.mp4", "libx264", "yuv444p", {"qp": "0"}),
        ("gray.mkv", "ffv1", "gray", None),
        ("mjpeg.avi", "mjpeg", "yuvj420p", None),
        ("tenbit.mkv", "libx264", "yuv420p10le", None),
        ("prores.mov", "prores_ks", "yuv422p10le", None),
    ],
)
def test_odd_formats_decode_to_rgb_uint8_frame_exactly(tmp_path, name, codec, pix_fmt, options):
    path = write_video(tmp_path / name, _numbered_frames(40), 25, codec=codec, pix_fmt=pix_fmt, options=options)
    info = probe(path)
    assert info.n_frames == 40
    with VideoReader(path) as video:
        assert len(video) == 40
        for i in (33, 2, 17, 39, 0):
            frame = video[i]
            assert frame.dtype == np.uint8 and frame.shape == (48, 64, 3)
            assert abs(int(frame.mean()) - 6 * i) <= 3, f"frame {i} decoded as brightness {frame.mean()}"


def test_resize_is_the_same_inside_the_reader_and_outside():
    with VideoReader(RAT, size=(128, 128)) as small, VideoReader(RAT) as full:
        for i in (0, 50, 143):
            np.testing.assert_array_equal(small[i], resize_rgb(full[i], (128, 128)))
    gray = resize_rgb(np.zeros((30, 40), np.uint8), (16, 16))
    assert gray.shape == (16, 16, 3)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(VideoError, match="not found"):
        probe(tmp_path / "nope.mp4")


def test_not_a_video_is_a_clear_error(tmp_path):
    bad = tmp_path / "labels.mp4"
    bad.write_text("frame,background\n0,1\n")
    with pytest.raises(VideoError, match=str(bad.name)):
        VideoReader(bad)


def test_truncated_file_is_detected(tmp_path):
    data = RAT.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    # An mp4 cut in half loses its index (moov atom at the end) or its last frames: either way, a clear error or
    # fewer frames than the original, never a silent full count.
    try:
        info = probe(cut)
    except VideoError as err:
        assert "cut.mp4" in str(err)
    else:
        assert info.n_frames < 144


def _faststart_mp4(path, n=160):
    """A real faststart MP4 (index at the front, as web and phone tools write them) of ``n`` numbered frames."""
    import av

    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for frame in _numbered_frames(n // 4) * 4:  # brightness 6 * i must fit uint8
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert path.read_bytes()[:64].find(b"moov") > 0, "the index is at the front"
    return path


@pytest.mark.parametrize("exact", [True, False])
def test_faststart_mp4_cut_short_is_refused_with_both_counts(tmp_path, exact):
    whole = _faststart_mp4(tmp_path / "whole.mp4")
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])  # decodes without an error, up to the cut
    check_complete(probe(whole, exact=exact))  # complete: passes
    info = probe(cut, exact=exact)
    assert info.n_frames_metadata == 160 and 0 < info.n_frames < 160 and info.missing_frames == 160 - info.n_frames
    with pytest.raises(
        VideoTruncatedError, match=rf"cut\.mp4: truncated: .*declares 160 frames but only {info.n_frames}"
    ):
        check_complete(info, accept_hint="pass --allow-truncated")
    with pytest.raises(VideoError, match="--allow-truncated"):
        check_complete(info, accept_hint="pass --allow-truncated")


def test_containers_without_a_declared_count_pass_the_completeness_check(tmp_path):
    fragmented = write_video(
        tmp_path / "frag.mp4", _numbered_frames(20), options={"movflags": "frag_keyframe+empty_moov"}
    )
    info = probe(fragmented)
    assert info.n_frames == 20 and info.missing_frames == 0
    check_complete(info)


def test_index_out_of_range_and_closed_reader():
    video = VideoReader(RAT)
    with pytest.raises(VideoError, match="out of range"):
        video[144]
    video.close()
    video.close()  # idempotent
    with pytest.raises(VideoError, match="closed"):
        video[0]
