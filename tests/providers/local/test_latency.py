"""The local provider's latency: fixed seconds, or the seed's service times divided by N."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelflow.providers.local.latency import Latency, seed_seconds
from reelflow.schemas.requests import ImageRequest, JudgeRequest, UpscaleRequest, VideoRequest

IMAGE = ImageRequest(model="m", prompt="p", width=8, height=8)


def video(frames: int) -> VideoRequest:
    return VideoRequest(model="m", first=Path("a.png"), last=Path("b.png"), prompt="p", num_frames=frames, fps=16,
                        width=8, height=8)


def test_the_seed_profile_times_each_call_as_the_cloud_does() -> None:
    assert seed_seconds(IMAGE) == 9.0
    assert seed_seconds(UpscaleRequest(model="m", image=Path("a.png"), width=8, height=8)) == 10.0
    assert seed_seconds(JudgeRequest(model="m", image=Path("a.png"), prompt="p")) == 2.0
    assert (seed_seconds(video(49)), seed_seconds(video(81))) == (39.0, 138.0)
    assert 39.0 < seed_seconds(video(65)) < 138.0
    profile = Latency.parse("seed/100")
    assert profile.seconds(IMAGE) == pytest.approx(0.09) and profile.seconds(video(81)) == pytest.approx(1.38)


def test_a_number_is_the_same_wait_for_every_call() -> None:
    fixed = Latency.parse("0.25")
    assert fixed.seconds(IMAGE) == fixed.seconds(video(81)) == 0.25
    assert Latency.parse("").seconds(IMAGE) == Latency.parse(None).seconds(IMAGE) == 0.0
