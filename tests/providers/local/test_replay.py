"""Benchmark mode: first-last clips replayed per shape, each call's file still its own bytes and cache identity."""

from __future__ import annotations

import hashlib
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from reelflow.media.images import save_png
from reelflow.media.mp4 import read_mp4
from reelflow.media.probe import probe_video
from reelflow.providers.local.draw import draw_keyframe
from reelflow.providers.local.faults import FaultSchedule
from reelflow.providers.local.provider import LocalProvider
from reelflow.schemas.errors import ContractError, ProviderError
from reelflow.schemas.requests import FrameNotes, ImageRequest, VideoRequest
from reelflow.state.ledger import Charge, Ledger

WAN = "fal-ai/wan/v2.2-a14b/image-to-video/lora"


def _keyframe(path: Path, role: str) -> Path:
    notes = FrameNotes(project="LEV", episode=1, shot=3, approach="standard_flf", role=role,  # type: ignore[arg-type]
                       characters=("JINX",), location="HABITAT_RING_C")
    save_png(draw_keyframe(ImageRequest(model="fal-ai/flux-2/lora", prompt="Jinx wakes", seed=4, width=64, height=112,
                                        notes=notes)), path)
    return path


def _request(tmp_path: Path, *, seed: int = 3, frames: int = 9) -> VideoRequest:
    first, last = tmp_path / "first.png", tmp_path / "last.png"
    if not first.exists():
        _keyframe(first, "first"), _keyframe(last, "hero")
    return VideoRequest(model=WAN, first=first, last=last, prompt="she dives", num_frames=frames, fps=16, width=64,
                        height=112, seed=seed)


def _frames(path: Path) -> list[bytes]:
    reader = imageio_ffmpeg.read_frames(str(path))
    next(reader)
    return list(reader)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_replayed_clips_have_the_requested_shape_and_motion_and_differ_in_bytes_per_call(tmp_path: Path) -> None:
    replay = LocalProvider(FaultSchedule(), replay=True)
    one, two, longer = tmp_path / "one.mp4", tmp_path / "two.mp4", tmp_path / "longer.mp4"
    replay.first_last_video(_request(tmp_path, seed=3), one)
    replay.first_last_video(_request(tmp_path, seed=4), two)
    replay.first_last_video(_request(tmp_path, frames=17), longer)
    for path, frames in ((one, 9), (two, 9), (longer, 17)):
        info = probe_video(path)
        assert (info.width, info.height, info.frames, info.fps) == (64, 112, frames, 16)
        assert read_mp4(path) == info, "the box reader skips the appended free box"
    assert _frames(one) == _frames(two), "one drawing per shape"
    assert _sha256(one) != _sha256(two), "each call's file is its own, so nothing downstream is shared by accident"
    pixels = [np.frombuffer(frame, np.uint8).astype(np.int16) for frame in _frames(one)]
    assert all(np.abs(b - a).mean() > 0.1 for a, b in zip(pixels, pixels[1:])), "the clip moves"


def test_replay_is_part_of_the_cache_identity_and_drawn_keys_do_not_change(tmp_path: Path) -> None:
    request = _request(tmp_path)
    drawn, replay = LocalProvider(FaultSchedule()), LocalProvider(FaultSchedule(), replay=True)
    assert "video" not in drawn.cache_params(request)
    assert replay.cache_params(request)["video"] == "replay"
    assert drawn.request_key("first_last_video", request) != replay.request_key("first_last_video", request)
    image = ImageRequest(model="fal-ai/flux-2/lora", prompt="x", seed=1, width=64, height=112)
    assert drawn.cache_params(image) == replay.cache_params(image), "only video is replayed"


def test_the_mode_comes_from_the_environment_and_a_bad_one_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REELFLOW_LOCAL_VIDEO", "replay")
    assert LocalProvider.from_env().replays is not None
    monkeypatch.setenv("REELFLOW_LOCAL_VIDEO", "draw")
    assert LocalProvider.from_env().replays is None
    monkeypatch.setenv("REELFLOW_LOCAL_VIDEO", "cheap")
    with pytest.raises(ContractError, match=r"^REELFLOW_LOCAL_VIDEO: 'cheap' is not a mode \(use draw or replay\)$"):
        LocalProvider.from_env()


def test_a_replayed_call_is_ledgered_like_a_drawn_one(tmp_path: Path) -> None:
    """Replay changes the file, not the money: one completed row at the clip's shadow cost, and a fault still fails
    the call, unbilled, before any file is written."""
    ledger = Ledger.at(tmp_path / ".reelflow")
    charge = Charge(run="run-1", stage="video", episode=1, shot=3, price_usd=0.2, shadow=True)
    clip = LocalProvider(FaultSchedule(), replay=True).first_last_video(
        _request(tmp_path), tmp_path / "clip.mp4", ticket=ledger.ticket("k-clip", "local", charge))
    failing = LocalProvider(FaultSchedule(rates={"server_error": 1.0}), replay=True)
    with pytest.raises(ProviderError):
        failing.first_last_video(_request(tmp_path, seed=9), tmp_path / "out" / "failed.mp4",
                                 ticket=ledger.ticket("k-failed", "local", charge))
    rows = {row.cache_key: row for row in ledger.rows()}
    assert (rows["k-clip"].status, rows["k-clip"].cost_usd, rows["k-clip"].request_id) == (
        "completed", clip.cost_usd, clip.request_id)
    assert clip.cost_usd > 0
    assert (rows["k-failed"].status, rows["k-failed"].cost_usd) == ("failed", 0.0)
    assert not (tmp_path / "out" / "failed.mp4").exists()
