"""First-last-frame clips: exact frame count, ends on the inputs, real motion in between, determinism."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from reelflow.media.images import load_image, resize_cover, save_png
from reelflow.media.probe import probe
from reelflow.providers.local.draw import draw_keyframe
from reelflow.providers.local.flf import read_ahead, render_first_last
from reelflow.schemas.errors import MediaError
from reelflow.schemas.requests import FrameNotes, FrameRole, ImageRequest

SIZE = (128, 224)


def keyframe(role: FrameRole, path: Path, size: tuple[int, int] = SIZE) -> Path:
    notes = FrameNotes(project="LEV", episode=1, shot=3, approach="standard_flf", role=role,
                       characters=("JINX", "KIAN"), location="HABITAT_RING_C")
    request = ImageRequest(model="fal-ai/flux-2/lora", prompt="Jinx jolts awake as red light pulses", seed=4,
                           width=size[0], height=size[1], notes=notes)
    save_png(draw_keyframe(request), path)
    return path


@pytest.fixture
def ends(tmp_path: Path) -> tuple[Path, Path]:
    return keyframe("first", tmp_path / "first.png"), keyframe("hero", tmp_path / "last.png")


def decode(path: Path) -> list[np.ndarray]:
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    return [np.frombuffer(frame, dtype=np.uint8).reshape(height, width, 3).astype(np.int16) for frame in reader]


def target(path: Path, size: tuple[int, int] = SIZE) -> np.ndarray:
    return np.asarray(resize_cover(load_image(path), size), dtype=np.int16)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("frames", [9, 17])
def test_clip_has_exactly_the_requested_frames_size_and_rate(ends: tuple[Path, Path], tmp_path: Path, frames: int) -> None:
    out = tmp_path / "clip.mp4"
    render_first_last(*ends, out, num_frames=frames, fps=16, size=SIZE, seed=1)
    info = probe(out)
    assert (info.frames, info.width, info.height, info.fps, info.codec) == (frames, *SIZE, 16.0, "h264")
    assert len(decode(out)) == frames


def test_clip_starts_on_the_first_frame_and_ends_on_the_last(ends: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    render_first_last(*ends, out, num_frames=17, fps=16, size=SIZE, seed=1)
    decoded = decode(out)
    first, last = target(ends[0]), target(ends[1])
    assert np.abs(first - last).mean() > 15
    assert np.abs(decoded[0] - first).mean() < 5 and np.abs(decoded[0] - last).mean() > 15
    assert np.abs(decoded[-1] - last).mean() < 5 and np.abs(decoded[-1] - first).mean() > 15
    middle = decoded[len(decoded) // 2]
    assert np.abs(middle - first).mean() > 5 and np.abs(middle - last).mean() > 5


def test_motion_is_continuous_not_a_slideshow(ends: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    render_first_last(*ends, out, num_frames=17, fps=16, size=SIZE, seed=1)
    decoded = decode(out)
    steps = np.array([np.abs(after - before).mean() for before, after in pairwise(decoded)])
    jump = np.abs(target(ends[0]) - target(ends[1])).mean()
    assert np.all(steps > 0.3)
    assert steps.max() < 3 * np.median(steps) and steps.max() < 0.6 * jump


def test_two_frames_are_just_the_two_inputs(ends: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    render_first_last(*ends, out, num_frames=2, fps=16, size=SIZE, seed=1)
    first, last = decode(out)
    assert np.abs(first - target(ends[0])).mean() < 5 and np.abs(last - target(ends[1])).mean() < 5


def test_same_inputs_and_seed_give_the_same_file_and_another_seed_does_not(ends: tuple[Path, Path], tmp_path: Path) -> None:
    for name, seed in (("a.mp4", 1), ("b.mp4", 1), ("c.mp4", 2)):
        render_first_last(*ends, tmp_path / name, num_frames=9, fps=16, size=SIZE, seed=seed)
    assert sha256(tmp_path / "a.mp4") == sha256(tmp_path / "b.mp4") != sha256(tmp_path / "c.mp4")


def test_inputs_of_other_sizes_are_cover_resized(tmp_path: Path) -> None:
    first = keyframe("first", tmp_path / "big.png", (256, 448))
    last = keyframe("last", tmp_path / "wide.png", (300, 200))
    out = tmp_path / "clip.mp4"
    render_first_last(first, last, out, num_frames=9, fps=24, size=SIZE, seed=0)
    decoded = decode(out)
    assert decoded[0].shape == (SIZE[1], SIZE[0], 3) and probe(out).fps == 24.0
    assert np.abs(decoded[0] - target(first)).mean() < 5 and np.abs(decoded[-1] - target(last)).mean() < 5


def test_bad_requests_raise_media_errors(ends: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="at least 2 frames"):
        render_first_last(*ends, tmp_path / "one.mp4", num_frames=1, fps=16, size=SIZE, seed=0)
    with pytest.raises(MediaError, match="even"):
        render_first_last(*ends, tmp_path / "odd.mp4", num_frames=9, fps=16, size=(127, 224), seed=0)
    with pytest.raises(MediaError, match="cannot read image"):
        render_first_last(tmp_path / "missing.png", ends[1], tmp_path / "x.mp4", num_frames=9, fps=16, size=SIZE, seed=0)


def test_read_ahead_keeps_order_passes_errors_on_and_stops_its_worker() -> None:
    frames = [Image.new("RGB", (2, 2), (value, 0, 0)) for value in range(10)]
    assert [frame.getpixel((0, 0)) for frame in read_ahead(iter(frames), 3)] == [(v, 0, 0) for v in range(10)]

    def failing() -> Iterator[Image.Image]:
        yield frames[0]
        raise MediaError("broken frame")

    reader = read_ahead(failing(), 3)
    assert next(reader) is frames[0]
    with pytest.raises(MediaError, match="broken frame"):
        next(reader)

    def endless() -> Iterator[Image.Image]:
        while True:
            yield frames[0]

    before = threading.active_count()
    reader = read_ahead(endless(), 2)
    next(reader)
    reader.close()
    assert threading.active_count() == before
