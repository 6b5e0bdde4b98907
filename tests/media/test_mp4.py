"""The MP4 box reader answers as ffmpeg does for plain files, and leaves every other file to ffmpeg."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelflow.media.ffmpeg import run_ffmpeg
from reelflow.media.mp4 import read_mp4
from reelflow.media.probe import _ffmpeg_probe

SOURCE = ["-f", "lavfi", "-i", "testsrc2=size={size}:rate={rate}", "-frames:v", "{frames}", "-pix_fmt", "yuv420p"]


def _encode(out: Path, *, size: str = "96x168", rate: str = "16", frames: int = 49, codec: list[str] | None = None,
            extra: list[str] | None = None) -> Path:
    source = [part.format(size=size, rate=rate, frames=frames) for part in SOURCE]
    run_ffmpeg([*source, *(codec or ["-c:v", "libx264", "-preset", "ultrafast"]), *(extra or []), str(out)])
    return out


@pytest.mark.parametrize(("name", "options"), [
    ("ultrafast.mp4", {}),
    ("b_frames.mp4", {"codec": ["-c:v", "libx264", "-preset", "medium"]}),  # an edit list for the B-frame delay
    ("faststart.mp4", {"extra": ["-movflags", "+faststart"]}),
    ("ntsc.mp4", {"rate": "24000/1001", "frames": 30}),
    ("odd.mp4", {"size": "100x60", "frames": 3}),
    ("quicktime.mov", {}),
    ("mpeg4.mp4", {"codec": ["-c:v", "mpeg4"]}),
])
def test_plain_files_read_as_ffmpeg_reads_them(tmp_path: Path, name: str, options: dict) -> None:
    path = _encode(tmp_path / name, **options)
    assert read_mp4(path) == _ffmpeg_probe(path)


def test_a_cut_short_file_is_left_to_ffmpeg(tmp_path: Path) -> None:
    path = _encode(tmp_path / "whole.mp4", extra=["-movflags", "+faststart"])
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) - 200])
    assert read_mp4(cut) is None


def test_fragmented_and_non_video_files_are_left_to_ffmpeg(tmp_path: Path) -> None:
    fragmented = _encode(tmp_path / "fragmented.mp4", extra=["-movflags", "frag_keyframe+empty_moov"])
    assert read_mp4(fragmented) is None
    audio = tmp_path / "tone.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", "sine=duration=0.5", "-c:a", "aac", str(audio)])
    assert read_mp4(audio) is None
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    assert read_mp4(junk) is None
