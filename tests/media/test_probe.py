"""probe: image sizes via Pillow, exact video frame counts and rates via `ffmpeg -i`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from reelflow.media.ffmpeg import run_ffmpeg
from reelflow.media.probe import check_video, probe, probe_image, probe_video
from reelflow.schemas.assets import MediaInfo
from reelflow.schemas.errors import MediaError

MakeVideo = Callable[..., Path]


@pytest.mark.parametrize("name", ["still.png", "still.jpg", "still.JPEG", "still.webp"])
def test_probe_image_reads_size(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    Image.new("RGB", (96, 40), (10, 20, 30)).save(path)
    assert probe_image(path) == MediaInfo(kind="image", width=96, height=40)
    assert probe(path) == MediaInfo(kind="image", width=96, height=40)


def test_probe_video_counts_frames_exactly(make_video: MakeVideo) -> None:
    info = probe_video(make_video("clip.mp4", 21, (64, 112)))
    assert info == MediaInfo(kind="video", width=64, height=112, frames=21, fps=16.0, duration_s=21 / 16, codec="h264")


def test_probe_video_at_another_rate(make_video: MakeVideo) -> None:
    info = probe(make_video("clip.mp4", 7, (32, 56), fps=24))
    assert (info.width, info.height, info.frames, info.fps) == (32, 56, 7, 24.0)
    assert info.duration_s == pytest.approx(7 / 24)


def test_probe_video_reads_mov(make_video: MakeVideo, tmp_path: Path) -> None:
    mov = tmp_path / "clip.mov"
    run_ffmpeg(["-i", str(make_video("clip.mp4", 5)), "-c", "copy", str(mov)])
    info = probe(mov)
    assert (info.kind, info.frames, info.codec) == ("video", 5, "h264")


def test_probe_rejects_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(MediaError, match="unknown media suffix"):
        probe(path)


@pytest.mark.parametrize("name", ["broken.mp4", "broken.png"])
def test_probe_raises_media_error_on_garbage(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"not media at all" * 10)
    with pytest.raises(MediaError) as raised:
        probe(path)
    assert "\n" not in str(raised.value)


def test_probe_raises_media_error_on_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MediaError):
        probe_video(tmp_path / "missing.mp4")
    with pytest.raises(MediaError):
        probe_image(tmp_path / "missing.png")


def test_check_video_rejects_wrong_count_or_size(make_video: MakeVideo) -> None:
    path = make_video("clip.mp4", 6)
    assert check_video(path, frames=6, size=(64, 112)).frames == 6
    with pytest.raises(MediaError, match="6 frames at 64x112, expected 7"):
        check_video(path, frames=7, size=(64, 112))
    with pytest.raises(MediaError):
        check_video(path, frames=6, size=(112, 64))


def test_a_video_is_read_once_per_process_until_it_changes(make_video: MakeVideo, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from reelflow.media import probe as probing

    path = make_video("once.mp4", 9, (64, 112))
    reads: list[Path] = []
    real = probing._probe_video
    monkeypatch.setattr(probing, "_probe_video", lambda p: reads.append(p) or real(p))
    first = probe_video(path)
    moved = tmp_path / "store" / "blob.mp4"
    moved.parent.mkdir()
    path.rename(moved)  # into the blob store: the same file
    assert probe_video(moved) == first and len(reads) == 1
    make_video("once.mp4", 5, (64, 112)).replace(moved)  # another file in its place
    assert probe_video(moved).frames == 5 and len(reads) == 2
