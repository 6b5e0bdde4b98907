"""motion: exact frame counts, a jitter-free sub-pixel push with a fixed focus, and static holds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reelflow.media.images import save_png
from reelflow.media.motion import frames_for, ken_burns, push_windows, static_hold
from reelflow.schemas.errors import MediaError

Decode = Callable[[Path], np.ndarray]
Digest = Callable[[Path], str]

SIZE = (128, 224)


@pytest.mark.parametrize(
    ("duration_s", "fps", "frames"), [(3.0, 16, 48), (4.5, 16, 72), (3.3, 16, 53), (2.5, 16, 40), (0.01, 16, 1)]
)
def test_frames_for(duration_s: float, fps: int, frames: int) -> None:
    assert frames_for(duration_s, fps) == frames


def test_push_windows_shrink_smoothly_around_a_fixed_focus() -> None:
    windows = np.array(push_windows(48, (768, 1344), (768, 1344), zoom=(1.0, 1.15), focus=(0.3, 0.45)))
    left, top, width, height = windows.T
    assert windows[0] == pytest.approx([0, 0, 768, 1344])
    assert width[-1] == pytest.approx(768 / 1.15) and height[-1] == pytest.approx(1344 / 1.15)
    assert (np.diff(width) < 0).all()
    assert height / width == pytest.approx(np.full(48, 1344 / 768))
    # The focus point sits at the same fraction of every window, so it does not move in frame.
    assert (0.3 * 768 - left) / width == pytest.approx(np.full(48, 0.3))
    assert (0.45 * 1344 - top) / height == pytest.approx(np.full(48, 0.45))
    # Smoothstep easing: a cubic in time, so third differences are constant (no jitter) ...
    third = np.diff(width, 3)
    assert np.ptp(third) < 1e-9 * 768
    # ... starting and ending gently, fastest in the middle.
    steps = -np.diff(width)
    assert steps[0] < steps[23] / 10 and steps[-1] < steps[23] / 10
    assert (left >= 0).all() and (top >= 0).all()
    assert (left + width <= 768 + 1e-9).all() and (top + height <= 1344 + 1e-9).all()


def test_push_windows_cover_a_source_of_another_aspect() -> None:
    windows = push_windows(3, (1000, 1000), (100, 200), zoom=(1.0, 2.0), focus=(0.5, 0.5))
    assert windows[0] == pytest.approx((250, 0, 500, 1000))
    assert windows[-1] == pytest.approx((375, 250, 250, 500))


@pytest.mark.parametrize("kwargs", [{"zoom": (0.9, 1.1)}, {"focus": (1.2, 0.5)}])
def test_push_windows_reject_bad_parameters(kwargs: dict) -> None:
    with pytest.raises(MediaError):
        push_windows(10, (100, 100), (100, 100), **kwargs)


def _blob(cx: float, cy: float, sigma: float = 4.0) -> np.ndarray:
    ys, xs = np.mgrid[0 : SIZE[1], 0 : SIZE[0]] + 0.5
    return np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))


def _centroid(grey: np.ndarray, x0: int, x1: int, y0: int, y1: int) -> tuple[float, float]:
    patch = np.clip(grey[y0:y1, x0:x1] - 20, 0, None)
    ys, xs = np.mgrid[y0:y1, x0:x1] + 0.5
    return float((patch * xs).sum() / patch.sum()), float((patch * ys).sum() / patch.sum())


def test_ken_burns_moves_content_sub_pixel_exactly_and_keeps_focus_still(
    tmp_path: Path, decode: Decode, sha256: Digest
) -> None:
    marker, focus = (40.0, 60.0), (0.5, 0.45)
    grey = np.clip(255 * (_blob(*marker) + _blob(focus[0] * SIZE[0], focus[1] * SIZE[1])), 0, 255).astype(np.uint8)
    still = tmp_path / "still.png"
    save_png(Image.fromarray(grey).convert("RGB"), still)
    out = tmp_path / "push.mp4"
    info = ken_burns(still, out, duration_s=1.5, fps=16, size=SIZE, zoom=(1.0, 1.5), focus=focus)
    assert (info.frames, info.width, info.height, info.fps, info.duration_s) == (24, *SIZE, 16.0, 1.5)

    frames = decode(out).mean(axis=3)
    windows = push_windows(24, SIZE, SIZE, zoom=(1.0, 1.5), focus=focus)
    expected = np.array([((marker[0] - left) / w * SIZE[0], (marker[1] - t) / h * SIZE[1]) for left, t, w, h in windows])
    measured = np.array([_centroid(frame, 0, 58, 0, 90) for frame in frames])
    # Integer crop windows would be off by up to half a source pixel times the zoom; this is sub-pixel.
    assert np.abs(measured - expected).max() < 0.3
    radius = np.hypot(*(measured - (64, 100.8)).T)
    assert (np.diff(radius) > -0.1).all() and radius[-1] - radius[0] > 20
    still_point = np.array([_centroid(frame, 44, 84, 80, 120) for frame in frames])
    assert np.abs(still_point - (64, 100.8)).max() < 0.2

    again = tmp_path / "again.mp4"
    ken_burns(still, again, duration_s=1.5, fps=16, size=SIZE, zoom=(1.0, 1.5), focus=focus)
    assert sha256(again) == sha256(out)


def test_ken_burns_resamples_a_larger_source_to_size(tmp_path: Path) -> None:
    still = tmp_path / "big.png"
    save_png(Image.new("RGB", (400, 300), (200, 100, 50)), still)
    info = ken_burns(still, tmp_path / "push.mp4", duration_s=0.2, fps=16, size=(64, 112))
    assert (info.frames, info.width, info.height) == (3, 64, 112)


def test_static_hold_is_still_exact_and_deterministic(tmp_path: Path, decode: Decode, sha256: Digest) -> None:
    still = tmp_path / "shot%03d.png"  # a name ffmpeg must not read as an image-sequence pattern
    source = Image.new("RGB", (300, 112), (255, 0, 0))
    source.paste((40, 160, 220), (110, 0, 190, 112))
    save_png(source, still)
    out = tmp_path / "hold.mp4"
    info = static_hold(still, out, duration_s=1.3, fps=16, size=(64, 112))
    assert (info.frames, info.width, info.height, info.fps, info.duration_s) == (21, 64, 112, 16.0, 21 / 16)
    frames = decode(out).astype(int)
    assert (frames == frames[0]).all()
    # Cover-resized and centre-cropped: only the middle colour is left.
    assert np.abs(frames[0] - (40, 160, 220)).max() <= 6
    again = tmp_path / "again.mp4"
    static_hold(still, again, duration_s=1.3, fps=16, size=(64, 112))
    assert sha256(again) == sha256(out)


def test_missing_still_raises_media_error(tmp_path: Path) -> None:
    with pytest.raises(MediaError):
        ken_burns(tmp_path / "nope.png", tmp_path / "a.mp4", duration_s=1, fps=16, size=(64, 112))
    with pytest.raises(MediaError):
        static_hold(tmp_path / "nope.png", tmp_path / "b.mp4", duration_s=1, fps=16, size=(64, 112))
