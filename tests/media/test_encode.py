"""x264 settings: the product's `veryfast` at CRF 18, a faster preset only through REELFLOW_X264_PRESET."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reelflow.media.encode import encode_frames
from reelflow.media.ffmpeg import PRESET_ENV, x264_settings
from reelflow.media.motion import static_hold
from reelflow.schemas.errors import MediaError

Digest = Callable[[Path], str]


def _note(path: Path, setting: str) -> int:
    """A number x264 wrote into the file's settings note (subme: 0 for ultrafast, 2 for veryfast; threads)."""
    found = re.search(rb" " + setting.encode() + rb"=(\d+)", path.read_bytes())
    assert found is not None, f"{path.name} has no x264 settings note"
    return int(found.group(1))


def _subme(path: Path) -> int:
    return _note(path, "subme")


def _frames(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    base = rng.integers(0, 255, (14, 8, 3), dtype=np.uint8).repeat(8, axis=0).repeat(8, axis=1)
    return [np.roll(base, 2 * i, axis=1) for i in range(count)]


def test_the_product_default_is_veryfast_at_crf_18(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PRESET_ENV, raising=False)
    assert x264_settings() == {"preset": "veryfast", "crf": 18}
    monkeypatch.setenv(PRESET_ENV, "")
    assert x264_settings() == {"preset": "veryfast", "crf": 18}


def test_the_environment_picks_the_preset_at_encode_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sha256: Digest
) -> None:
    monkeypatch.setenv(PRESET_ENV, "ultrafast")
    assert x264_settings() == {"preset": "ultrafast", "crf": 18}
    fast, same = tmp_path / "fast.mp4", tmp_path / "same.mp4"
    encode_frames(_frames(12), fast, fps=16, size=(64, 112))
    encode_frames(_frames(12), same, fps=16, size=(64, 112))
    monkeypatch.setenv(PRESET_ENV, "veryfast")
    product = tmp_path / "product.mp4"
    encode_frames(_frames(12), product, fps=16, size=(64, 112))
    assert (_subme(fast), _subme(product)) == (0, 2)
    assert sha256(fast) == sha256(same) != sha256(product)


def test_ffmpeg_encodes_follow_the_environment_too(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    still = tmp_path / "still.png"
    Image.fromarray(_frames(1)[0]).save(still)
    monkeypatch.setenv(PRESET_ENV, "veryfast")
    static_hold(still, tmp_path / "hold.mp4", duration_s=0.5, fps=16, size=(64, 112))
    assert _subme(tmp_path / "hold.mp4") == 2


def test_an_unknown_preset_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(PRESET_ENV, "warp")
    with pytest.raises(MediaError, match="REELFLOW_X264_PRESET='warp' is not an x264 preset"):
        encode_frames(_frames(2), tmp_path / "x.mp4", fps=16, size=(64, 112))


def test_small_frames_encode_on_one_thread_larger_ones_on_two(tmp_path: Path, sha256: Digest) -> None:
    """At most 0.1 megapixel (tests' and benchmarks' scaled frames) x264 runs one thread; the product's sizes two."""
    small, again, large = tmp_path / "small.mp4", tmp_path / "again.mp4", tmp_path / "large.mp4"
    encode_frames(_frames(6), small, fps=16, size=(64, 112))
    encode_frames(_frames(6), again, fps=16, size=(64, 112))
    big = [np.repeat(np.repeat(frame, 4, axis=0), 4, axis=1) for frame in _frames(6)]  # 256x448: 0.11 megapixel
    encode_frames(big, large, fps=16, size=(256, 448))
    assert (_note(small, "threads"), _note(large, "threads")) == (1, 2)
    assert sha256(small) == sha256(again)
    still = tmp_path / "still.png"
    Image.fromarray(_frames(1)[0]).save(still)
    static_hold(still, tmp_path / "hold.mp4", duration_s=0.5, fps=16, size=(64, 112))
    assert _note(tmp_path / "hold.mp4", "threads") == 1
