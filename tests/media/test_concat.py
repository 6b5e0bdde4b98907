"""concat: stream-copy joins, normalising mismatched inputs, and exact-length retimed shot clips."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reelflow.media.concat import concat_videos, fit_clip, last_frame, same_streams
from reelflow.media.encode import encode_frames
from reelflow.schemas.assets import MediaInfo
from reelflow.schemas.errors import MediaError

MakeVideo = Callable[..., Path]
Decode = Callable[[Path], np.ndarray]
Digest = Callable[[Path], str]

BASE = MediaInfo(kind="video", width=768, height=1344, frames=48, fps=16.0, duration_s=3.0, codec="h264")


def test_same_streams() -> None:
    assert same_streams(BASE, BASE.model_copy(update={"frames": 7, "duration_s": 7 / 16}))
    assert not same_streams(BASE, BASE.model_copy(update={"width": 720}))
    assert not same_streams(BASE, BASE.model_copy(update={"height": 1280}))
    assert not same_streams(BASE, BASE.model_copy(update={"fps": 24.0}))
    assert not same_streams(BASE, BASE.model_copy(update={"codec": "hevc"}))


def _greys(frames: np.ndarray) -> np.ndarray:
    return frames.mean(axis=(1, 2, 3))


def test_concat_copies_matching_inputs_in_order(
    make_video: MakeVideo, decode: Decode, sha256: Digest, tmp_path: Path
) -> None:
    a = make_video("it's a clip.mp4", 10, start=0)  # quote and space must survive the concat list
    b = make_video("b.mp4", 7, start=100)
    out = tmp_path / "cut" / "cut.mp4"
    info = concat_videos([a, b], out)
    assert (info.frames, info.width, info.height, info.fps) == (17, 64, 112, 16.0)
    assert info.duration_s == pytest.approx(17 / 16)
    greys = _greys(decode(out))
    assert np.allclose(greys, np.concatenate([_greys(decode(a)), _greys(decode(b))]), atol=1.5)
    again = tmp_path / "again.mp4"
    concat_videos([a, b], again)
    assert sha256(again) == sha256(out)


def test_concat_normalises_mismatched_sizes(make_video: MakeVideo, decode: Decode, tmp_path: Path) -> None:
    a = make_video("a.mp4", 8, (64, 112), start=10)
    b = make_video("b.mp4", 5, (32, 56), start=200)
    info = concat_videos([a, b], tmp_path / "cut.mp4")
    assert (info.frames, info.width, info.height, info.fps) == (13, 64, 112, 16.0)
    greys = _greys(decode(tmp_path / "cut.mp4"))
    assert greys[:8] == pytest.approx(_greys(decode(a)), abs=1.5)
    assert greys[8:] == pytest.approx(_greys(decode(b)), abs=3)


def test_concat_normalises_mismatched_rates(make_video: MakeVideo, tmp_path: Path) -> None:
    a = make_video("a.mp4", 16, fps=16)
    b = make_video("b.mp4", 12, fps=24)  # half a second
    info = concat_videos([a, b], tmp_path / "cut.mp4")
    assert (info.frames, info.fps) == (24, 16.0)
    assert info.duration_s == pytest.approx(1.5)


def test_concat_without_inputs_raises(tmp_path: Path) -> None:
    with pytest.raises(MediaError):
        concat_videos([], tmp_path / "cut.mp4")


@pytest.mark.parametrize(
    ("segments", "duration_s", "frames"),
    [
        ((49, 49), 6.0, 96), ((49, 49), 2.5, 40), ((81,), 4.5, 72), ((81,), 3.3, 53),
        ((49,), 9.0, 144), ((49,), 0.05, 1),
    ],
)
def test_fit_clip_retimes_uniformly_to_exact_frames(
    make_video: MakeVideo, decode: Decode, tmp_path: Path,
    segments: tuple[int, ...], duration_s: float, frames: int,
) -> None:
    inputs = [make_video(f"seg{i}.mp4", count, start=100 * i) for i, count in enumerate(segments)]
    out = tmp_path / "clip.mp4"
    info = fit_clip(inputs, out, duration_s=duration_s, fps=16, size=(96, 168))
    assert (info.frames, info.width, info.height, info.fps) == (frames, 96, 168, 16.0)
    assert info.duration_s == pytest.approx(frames / 16)
    # Each output frame shows the source frame nearest its uniform position; first and last are kept.
    source = np.concatenate([_greys(decode(path)) for path in inputs])
    shown = [int(np.abs(source - grey).argmin()) for grey in _greys(decode(out))]
    total = sum(segments)
    assert shown == [round(j * (total - 1) / max(frames - 1, 1)) for j in range(frames)]


def test_fit_clip_drops_the_frame_segments_share(make_video: MakeVideo, decode: Decode, tmp_path: Path) -> None:
    # Split first-last-frame: segment 2 starts on the hero frame segment 1 ends on (grey 40).
    first = make_video("seg1.mp4", 5, start=0, step=10)
    second = make_video("seg2.mp4", 5, start=40, step=10)
    out = tmp_path / "clip.mp4"
    info = fit_clip([first, second], out, duration_s=9 / 16, fps=16, size=(64, 112), shared_boundaries=True)
    assert info.frames == 9
    shown = [int(round(grey / 10)) * 10 for grey in _greys(decode(out))]
    assert shown == [0, 10, 20, 30, 40, 50, 60, 70, 80]


def test_fit_clip_trims_the_end_without_retiming(make_video: MakeVideo, decode: Decode, tmp_path: Path) -> None:
    # A 0.8 s shot from the model's 17-frame minimum, and a 3 s one whose two halves (25 + 25) make one frame more.
    short = make_video("short.mp4", 17, start=0, step=10)
    out = tmp_path / "clip.mp4"
    assert fit_clip([short], out, duration_s=0.8, fps=16, size=(64, 112), trim=4).frames == 13
    assert [round(grey / 10) for grey in _greys(decode(out))] == list(range(13)), "the first 13 frames, one each"
    halves = [make_video(f"half{i}.mp4", 25, start=120 * i, step=5) for i in range(2)]  # they share grey 120
    info = fit_clip(halves, out, duration_s=3.0, fps=16, size=(64, 112), shared_boundaries=True, trim=1)
    assert info.frames == 48
    assert [round(grey / 5) for grey in _greys(decode(out))] == list(range(48))


def test_last_frame_is_the_last_decoded_frame(make_video: MakeVideo, decode: Decode, tmp_path: Path) -> None:
    video = make_video("seg1.mp4", 9, (64, 112), start=20, step=20)
    out = last_frame(video, tmp_path / "frames" / "last.png")
    with Image.open(out) as image:
        assert (image.mode, image.size) == ("RGB", (64, 112))
        assert np.array_equal(np.asarray(image), decode(video)[-1])


def test_fit_clip_at_production_size(make_video: MakeVideo, tmp_path: Path) -> None:
    segments = [make_video(f"seg{i}.mp4", 49, (720, 1280), start=50 * i, step=1) for i in range(2)]
    info = fit_clip(segments, tmp_path / "clip.mp4", duration_s=6.0, fps=16, size=(768, 1344))
    assert (info.frames, info.width, info.height, info.duration_s) == (96, 768, 1344, 6.0)


def test_fit_clip_cover_crops_another_aspect_and_is_deterministic(
    tmp_path: Path, decode: Decode, sha256: Digest, make_video: MakeVideo
) -> None:
    wide = np.full((56, 160, 3), (255, 0, 0), np.uint8)
    wide[:, 56:104] = (40, 160, 220)  # 160x56 covers 64x112 at 2x: only columns 64 to 96 remain
    landscape = tmp_path / "wide.mp4"
    encode_frames([wide] * 5, landscape, fps=16, size=(160, 56))
    segments = [landscape, make_video("small.mp4", 4, (32, 56), start=90)]
    out, again = tmp_path / "clip.mp4", tmp_path / "again.mp4"
    info = fit_clip(segments, out, duration_s=1.0, fps=16, size=(64, 112))
    assert (info.frames, info.width, info.height) == (16, 64, 112)
    first, last = decode(out)[[0, -1]].astype(int)
    assert np.abs(first - (40, 160, 220)).max() <= 8
    assert np.abs(last - 96).max() <= 3  # the small segment's last frame (grey 90 + 2 * 3), upscaled
    fit_clip(segments, again, duration_s=1.0, fps=16, size=(64, 112))
    assert sha256(again) == sha256(out)


def test_fit_clip_without_segments_raises(tmp_path: Path) -> None:
    with pytest.raises(MediaError):
        fit_clip([], tmp_path / "clip.mp4", duration_s=1.0, fps=16, size=(64, 112))
