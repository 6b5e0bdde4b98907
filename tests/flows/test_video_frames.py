"""Frames from duration: a shot's video is made at the model's rate for its length, so its clip plays at 1.00×.

Standard FLF shots of 0.8, 3, 5, 8 and 14 s are rendered on the local provider (frames an eighth of the size, Gate 1
eased for them as bench/episode.py does). Each clip's speed is measured from the pictures: every clip frame is matched
to the segment frame it shows, and the matches must advance one source frame per clip frame (16 fps both).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from reelflow.media.concat import fit_clip
from reelflow.media.ffmpeg import cover_filter, ffmpeg_exe
from reelflow.media.probe import probe, probe_video
from reelflow.schemas.assets import AssetRef
from reelflow.schemas.load import load_project, load_storyboard
from reelflow.tasks.clip_qc import check_clips
from reelflow.tasks.job import StageResult

from conftest import run_cli
from projects import PROJECT, shots, write_project

pytestmark = pytest.mark.usefixtures("prefect_api")

SMALL = {"REELFLOW_FRAME_SCALE": "0.125"}
QC = {"max_regenerations": 0, "reject_below": 0, "pass_at": 0,
      "gate1": {"blur_min_laplacian_var": 0.001, "gutter_max_flat_lines": 10000, "pair_min_hamming": 0}}
DURATIONS = (3.0, 5.0, 8.0, 14.0, 0.8)  # shots 1-5
MODEL_FPS = 16


def board() -> dict:
    flf = shots()[1]
    return {"schema_version": 3, "episode": 1, "title": "Lengths",
            "shots": [flf | {"shot": n, "duration_s": d} for n, d in enumerate(DURATIONS, 1)]}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> tuple[Path, dict]:
    root = write_project(tmp_path_factory.mktemp("frames") / "proj", board(), PROJECT | {"qc": QC})
    result = run_cli("render", str(root), "--episode", "1", "--json", env=SMALL)
    assert result.code == 0, result.stderr
    return root, result.json()


def asset(root: Path, shot: int, suffix: str, ext: str = "mp4") -> Path:
    return root / "storyboards" / "assets" / "ep_001" / f"TST_EP001_S{shot:02d}_T01_BO_{suffix}.{ext}"


def rgb_frames(path: Path) -> np.ndarray:
    """Every decoded frame of a video as (frames, height, width, 3) RGB."""
    info = probe_video(path)
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, info.height, info.width, 3).astype(np.int16)


def lumas(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Every frame as 64x64 luma, cover-fitted to `size` first (as the clip stage fits segments), one row a frame."""
    fit = f"{cover_filter(size)}," if size else ""
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-vf", f"{fit}scale=64:64:flags=area",
                          "-f", "rawvideo", "-pix_fmt", "gray", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, 64 * 64).astype(np.float64)


def measured_speed(root: Path, shot: int, segments: int) -> tuple[float, list[int]]:
    """The clip's playback speed from its pictures: which joined segment frame each clip frame shows (nearest in
    squared luma difference, the segments fitted to the clip's size), the slope of those matches per clip frame (both
    at 16 fps), and the matches."""
    info = probe_video(asset(root, shot, "clip"))
    parts = [lumas(asset(root, shot, f"seg{k}"), (info.width, info.height)) for k in range(1, segments + 1)]
    source = np.concatenate([parts[0], *(part[1:] for part in parts[1:])])  # each shared boundary frame once
    clip = lumas(asset(root, shot, "clip"))
    distance = (clip**2).sum(axis=1)[:, None] + (source**2).sum(axis=1)[None, :] - 2 * clip @ source.T
    matches = distance.argmin(axis=1)
    slope = np.polyfit(np.arange(len(clip)), matches, 1)[0]
    return float(slope), matches.tolist()


def test_every_clip_plays_at_the_models_rate(rendered: tuple[Path, dict]) -> None:
    root, report = rendered
    assert report["shots"]["failed"] == 0 and report["shots"]["rendered"] == len(DURATIONS)
    manifest = json.loads((root / "storyboards" / "assets" / "ep_001" / "manifest.json").read_text())
    made = {entry["name"]: entry for entry in manifest["assets"] if entry["name"]}
    for shot, (duration, frames) in enumerate(zip(DURATIONS, ([49], [81], [129], [113, 113], [17]), strict=True), 1):
        sent = [made[f"TST_EP001_S{shot:02d}_T01_BO_seg{k}.mp4"]["params"] for k in range(1, len(frames) + 1)]
        assert [(p["num_frames"], p["fps"]) for p in sent] == [(n, MODEL_FPS) for n in frames], shot
        assert [probe(asset(root, shot, f"seg{k}")).frames for k in range(1, len(frames) + 1)] == frames
        clip = probe(asset(root, shot, "clip"))
        assert (clip.frames, clip.fps) == (round(duration * MODEL_FPS), MODEL_FPS)
        speed, matches = measured_speed(root, shot, len(frames))
        assert abs(speed - 1.0) <= 0.05, (shot, speed, matches)
        assert matches[0] == 0 and abs(matches[-1] - (clip.frames - 1)) <= 1, (shot, matches)
    checks = [check for shot in json.loads((root / "storyboards" / "dailies_ep_001.json").read_text())["shots"]
              for check in shot["clip_checks"]]
    assert [check["passed"] for check in checks] == [True] * len(DURATIONS)


def test_a_long_shot_is_consecutive_segments_that_join_frame_for_frame(rendered: tuple[Path, dict]) -> None:
    root, _ = rendered
    manifest = json.loads((root / "storyboards" / "assets" / "ep_001" / "manifest.json").read_text())
    made = {entry["name"]: entry for entry in manifest["assets"] if entry["name"]}
    mid = made["TST_EP001_S04_T01_BO_mid1.png"]
    assert mid["stage"] == "upscale" and asset(root, 4, "mid1", "png").is_file(), "an upscaled intermediate keyframe"
    first, second = made["TST_EP001_S04_T01_BO_seg1.mp4"], made["TST_EP001_S04_T01_BO_seg2.mp4"]
    assert [ref["name"] for ref in first["inputs"]] == ["TST_EP001_S04_T01_BO_first.png", "TST_EP001_S04_T01_BO_mid1.png"]
    start, end = second["inputs"]
    assert end["name"] == "TST_EP001_S04_T01_BO_last.png"
    [taken] = [e for e in manifest["intermediates"] if e["sha256"] == start["sha256"]]
    assert taken["stage"] == "last-frame" and [ref["sha256"] for ref in taken["inputs"]] == [first["sha256"]]

    one, two = rgb_frames(asset(root, 4, "seg1")), rgb_frames(asset(root, 4, "seg2"))
    join = np.abs(one[-1] - two[0]).mean()
    step = np.abs(two[1] - two[0]).mean()
    assert join < 2.0, f"the last frame of seg1 and the first of seg2 differ by {join:.2f} levels (codec tolerance 2)"
    assert join < np.abs(one[-1] - np.asarray(two[len(two) // 2])).mean() / 4, "the join is not a cut"
    assert step > 0, "seg2 moves"


def test_a_shot_shorter_than_the_models_minimum_is_trimmed_not_sped_up(rendered: tuple[Path, dict]) -> None:
    root, _ = rendered
    assert probe(asset(root, 5, "seg1")).frames == 17
    assert probe(asset(root, 5, "clip")).frames == 13
    speed, matches = measured_speed(root, 5, 1)
    assert abs(speed - 1.0) <= 0.05 and matches[-1] <= 13, f"the clip shows the first 13 of 17 frames: {matches}"


def test_clip_qc_fails_a_clip_at_1_2x_speed_naming_it(rendered: tuple[Path, dict], tmp_path: Path) -> None:
    from reelflow.flows.render import shot_jobs

    root, _ = rendered
    folder = load_project(root)
    [job] = shot_jobs(folder, load_storyboard(folder, 1), {1: 1}, run="test")
    segment = asset(root, 1, "seg1")
    fast = tmp_path / "fast.mp4"  # the 3 s shot's 48 source frames in 2.5 s
    fit_clip([segment], fast, duration_s=2.5, fps=16, size=(96, 168), trim=1)

    def ref(path: Path) -> AssetRef:
        return AssetRef(path=path, sha256=hashlib.sha256(path.read_bytes()).hexdigest(), media=probe(path))

    qc = check_clips.fn(job, StageResult(assets={"seg1": ref(segment)}), StageResult(assets={"clip": ref(fast)}))
    speed = [line for line in qc.failures if line.startswith("clip: speed:")]
    assert speed == ["clip: speed: TST_EP001_S01_T01_BO_clip.mp4 plays at 1.20× (48 source frames in 2.50 s, WAN 2.2 "
                     "makes 16 fps), expected 1.00 ± 0.05"]
    passing = check_clips.fn(job, StageResult(assets={"seg1": ref(segment)}),
                             StageResult(assets={"clip": ref(asset(root, 1, "clip"))}))
    assert passing.passed, passing.failures
