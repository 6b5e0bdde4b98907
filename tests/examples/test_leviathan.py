"""The sample project: valid, and rich enough to show every approach.

`make demo` renders its EP1 on the local provider; tests/flows/test_cloud_render.py takes the same code paths on
fal and Gemini (fakes) with a four-shot project, inside the suite's five-minute budget.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from reelflow.media.images import load_image, resize_cover
from reelflow.media.motion import overlay_rows
from reelflow.providers.local.draw import video_overlay
from reelflow.schemas.requests import FrameNotes

from conftest import run_cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "leviathan"


def test_example_is_valid_and_covers_every_approach() -> None:
    result = run_cli("validate", str(EXAMPLE))
    assert result.code == 0, result.stderr
    assert "2 storyboard(s) are valid" in result.stdout
    board = json.loads((EXAMPLE / "storyboards" / "storyboard_ep_001.json").read_text())
    assert len(board["shots"]) == 21
    counts = Counter(shot["generation_approach"] for shot in board["shots"])
    assert counts["triptych_split_flf"] >= 5 and counts["standard_flf"] >= 5
    assert counts["held_frame_push"] >= 3 and counts["held_frame_static"] >= 2
    breakdown = json.loads((EXAMPLE / "breakdown.json").read_text())
    assert {c["id"] for c in breakdown["characters"]} == {"JINX", "KIAN", "VAREK"}
    assert len(breakdown["locations"]) >= 5


def frames(path: Path) -> list[np.ndarray]:
    """Every decoded frame of a video, as int16 rows x columns x RGB."""
    reader = imageio_ffmpeg.read_frames(str(path))
    width, height = next(reader)["size"]
    return [np.frombuffer(frame, np.uint8).reshape(height, width, 3).astype(np.int16) for frame in reader]


def middles(video: list[np.ndarray]) -> list[np.ndarray]:
    """Frames a quarter, half and three quarters of the way through: mid-dissolve and mid-push."""
    return [video[len(video) * k // 4] for k in (1, 2, 3)]


def band_error(frame: np.ndarray, crisp: np.ndarray) -> float:
    """Mean difference between the bottom rows of `frame` and `crisp` (those rows alone, drawn without motion)."""
    return float(np.abs(frame[-crisp.shape[0]:] - crisp).mean())


def test_ep1_moving_shots_show_their_label_whole_in_every_middle_frame(tmp_path: Path, prefect_api: str) -> None:
    """The animatic's caption band (shot, place, characters, prompt) is drawn after the motion: frames from the middle
    of every first-last-frame and push shot of EP1 on the local provider show it as it is drawn alone, not blended
    with another frame's (40+ levels off before) nor cropped by the push."""
    project = shutil.copytree(EXAMPLE, tmp_path / "leviathan")
    board = json.loads((project / "storyboards" / "storyboard_ep_001.json").read_text())
    moving = [shot for shot in board["shots"] if shot["generation_approach"] != "held_frame_static"]
    result = run_cli("render", str(project), "--episode", "1", "--json",
                     "--shots", ",".join(str(shot["shot"]) for shot in moving), env={"REELFLOW_FRAME_SCALE": "0.125"})
    assert result.code == 0, result.stderr
    folder = project / "storyboards" / "assets" / "ep_001"
    named = [entry["name"] for entry in json.loads((folder / "manifest.json").read_text())["assets"]]
    for shot in moving:
        mine = sorted(name for name in named if name.startswith(f"LEV_EP001_S{shot['shot']:02d}_"))
        clip = frames(folder / next(name for name in mine if name.endswith("_clip.mp4")))
        height, width = clip[0].shape[:2]
        if shot["generation_approach"] == "held_frame_push":  # the still's own band, held outside the push's crop
            still = load_image(folder / next(name for name in mine if name.endswith("_first.png")))
            rows = overlay_rows(still, (width, height))
            assert rows >= 0.15 * height, shot["shot"]
            crisp = np.asarray(resize_cover(still, (width, height)), np.int16)[-rows:]
            assert all(band_error(frame, crisp) < 4 for frame in middles(clip)), shot["shot"]
            continue
        notes = FrameNotes(project="LEV", episode=1, shot=shot["shot"], approach=shot["generation_approach"],
                           role="first", characters=tuple(shot["characters_in_shot"]), location=shot["location"])
        segments = [name for name in mine if "_seg" in name]
        assert segments, shot["shot"]
        for name in segments:  # each segment as the video service returned it: the clip's band over the motion
            video = frames(folder / name)
            size = video[0].shape[1], video[0].shape[0]
            crisp = np.asarray(video_overlay(size, notes, shot.get("motion_prompt") or "", ()), np.int16)
            assert all(band_error(frame, crisp) < 4 for frame in middles(video)), name
        steady = clip[0][-round(0.15 * height):]  # and the shot's clip keeps that band still, as its first frame shows it
        assert all(band_error(frame, steady) < 2 for frame in middles(clip)), shot["shot"]
