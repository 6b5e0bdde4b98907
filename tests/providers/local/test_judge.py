"""The local Gate 2 judge passes frames that show the shot's characters and place, and fails others."""

from __future__ import annotations

from pathlib import Path

from reelflow.media.images import resize_cover, save_png
from reelflow.providers.local.draw import draw_keyframe
from reelflow.providers.local.provider import LocalProvider
from reelflow.schemas.pricing import load_prices
from reelflow.schemas.requests import FrameNotes, ImageRequest, JudgeRequest


def frame(tmp_path: Path, characters: tuple[str, ...], location: str) -> Path:
    notes = FrameNotes(project="TST", episode=1, shot=3, approach="standard_flf", role="first",
                       characters=characters, location=location)
    image = draw_keyframe(ImageRequest(model="m", prompt="a scene", width=576, height=1024, seed=7, notes=notes))
    path = tmp_path / f"{'-'.join(characters) or 'env'}-{location}.png"
    save_png(resize_cover(image, (768, 1344)), path)
    return path


def judge(path: Path, characters: tuple[str, ...], location: str) -> tuple[float, bool, list[str]]:
    request = JudgeRequest(model="gemini-2.5-flash", image=path, prompt="a scene", characters=characters, location=location)
    verdict = LocalProvider().judge_image(request)
    assert verdict.cost_usd == load_prices().cost("gemini-2.5-flash") > 0
    return verdict.score, verdict.passed, verdict.reasons


def test_a_frame_with_the_right_characters_and_place_passes(tmp_path: Path) -> None:
    path = frame(tmp_path, ("JINX", "KIAN"), "MOON_POOL")
    assert judge(path, ("JINX", "KIAN"), "MOON_POOL") == (1.0, True, [])


def test_a_missing_character_or_wrong_place_lowers_the_score(tmp_path: Path) -> None:
    path = frame(tmp_path, ("JINX",), "MOON_POOL")
    score, passed, reasons = judge(path, ("JINX", "VAREK"), "MOON_POOL")
    assert (round(score, 3), passed, reasons) == (0.667, True, ["character VAREK is not in the frame"])
    score, passed, reasons = judge(path, ("VAREK",), "REACTOR_SPINE")
    assert (score, passed) == (0.0, False)
    assert reasons == ["character VAREK is not in the frame", "the setting does not look like REACTOR_SPINE"]
