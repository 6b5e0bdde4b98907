"""Gate 1 artifact checks: every check is tripped by a generated defect and passed by a clean input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from reelflow.media.encode import encode_frames
from reelflow.media.qc import (
    check_image,
    check_pair,
    check_split_panel,
    check_video,
    decode_luma,
    decode_lumas,
    hamming,
    perceptual_hash,
)
from reelflow.schemas.errors import MediaError
from reelflow.schemas.qc import Gate1Report, Gate1Thresholds

SIZE = (288, 504)  # 4:7, the production 768x1344 aspect at a test-friendly size
PANEL = (160, 280)
CLIP = (64, 96)
FPS = 16


def _texture(size: tuple[int, int], seed: int = 7) -> np.ndarray:
    """A well-exposed RGB texture: coarse bicubic blobs plus fine grain, as an (h, w, 3) uint8 array."""
    rng = np.random.default_rng(seed)
    width, height = size
    coarse = Image.fromarray(rng.integers(40, 215, (height // 16, width // 16), dtype=np.uint8))
    grain = rng.normal(0, 14, (height, width))
    luma = np.clip(np.asarray(coarse.resize(size, Image.Resampling.BICUBIC), dtype=float) + grain, 0, 255)
    return np.repeat(luma.astype(np.uint8)[:, :, None], 3, axis=2)


def _png(array: np.ndarray | Image.Image, path: Path) -> Path:
    image = array if isinstance(array, Image.Image) else Image.fromarray(array)
    image.save(path)
    return path


def _failed(report: Gate1Report) -> set[str]:
    return {finding.check for finding in report.failures}


# --- stills -------------------------------------------------------------------------------------------------------


def test_textured_image_passes_every_image_check(tmp_path: Path) -> None:
    report = check_image(_png(_texture(SIZE), tmp_path / "ok.png"), expected_size=SIZE)
    assert [f.check for f in report.findings] == ["uniform", "blur", "exposure", "size", "aspect"]
    assert report.passed, [f.message for f in report.failures]


def test_flat_grey_image_trips_uniform(tmp_path: Path) -> None:
    report = check_image(_png(np.full((SIZE[1], SIZE[0], 3), 128, np.uint8), tmp_path / "grey.png"))
    assert "uniform" in _failed(report)
    assert report.finding("uniform").message == "uniform: luma std 0.00 < 4"


def test_blurred_texture_trips_blur_only(tmp_path: Path) -> None:
    blurred = Image.fromarray(_texture(SIZE)).filter(ImageFilter.GaussianBlur(3))
    report = check_image(_png(blurred, tmp_path / "soft.png"), expected_size=SIZE)
    assert _failed(report) == {"blur"}
    finding = report.finding("blur")
    assert finding.value < finding.threshold == 40
    assert finding.message.startswith("blur: Laplacian variance ") and finding.message.endswith(" < 40")


def test_blur_is_measured_at_a_fixed_size(tmp_path: Path) -> None:
    small = check_image(_png(_texture(SIZE), tmp_path / "small.png")).finding("blur").value
    big = Image.fromarray(_texture(SIZE)).resize((SIZE[0] * 2, SIZE[1] * 2), Image.Resampling.LANCZOS)
    large = check_image(_png(big, tmp_path / "large.png")).finding("blur").value
    assert large == pytest.approx(small, rel=0.35)


def test_half_white_image_trips_exposure(tmp_path: Path) -> None:
    array = _texture(SIZE)
    array[: SIZE[1] // 2] = 255
    report = check_image(_png(array, tmp_path / "blown.png"))
    assert "exposure" in _failed(report)
    assert report.finding("exposure").value == pytest.approx(0.5, abs=0.01)


def test_wrong_width_trips_size_and_aspect(tmp_path: Path) -> None:
    report = check_image(_png(_texture((700, 1344)), tmp_path / "narrow.png"), expected_size=(768, 1344))
    assert _failed(report) == {"size", "aspect"}
    assert report.finding("size").message == "size: 700x1344, expected 768x1344 (off 68 px, tolerance 0 px)"


def test_size_checks_are_skipped_without_an_expected_size(tmp_path: Path) -> None:
    report = check_image(_png(_texture((700, 1344)), tmp_path / "narrow.png"))
    assert {f.check for f in report.findings} == {"uniform", "blur", "exposure"}


def test_thresholds_come_from_the_config(tmp_path: Path) -> None:
    path = _png(_texture(SIZE), tmp_path / "ok.png")
    strict = Gate1Thresholds(blur_min_laplacian_var=1e6, size_tolerance_px=100)
    report = check_image(path, expected_size=(SIZE[0] + 50, SIZE[1]), thresholds=strict)
    assert _failed(report) == {"blur", "aspect"}
    with pytest.raises(ValueError):
        Gate1Thresholds(clipped_max_fraction=2.0)


# --- split triptych panels ----------------------------------------------------------------------------------------


def test_clean_panel_passes(tmp_path: Path) -> None:
    for axis in ("vertical", "horizontal"):
        report = check_split_panel(_png(_texture(PANEL), tmp_path / "clean.png"), axis=axis)
        assert report.passed, [f.message for f in report.failures]


def test_dark_band_at_left_edge_trips_gutter_and_seam(tmp_path: Path) -> None:
    array = _texture(PANEL)
    array[:, :6] = 12
    report = check_split_panel(_png(array, tmp_path / "band.png"), axis="vertical")
    assert _failed(report) == {"gutter", "seam"}
    assert report.finding("gutter").value == 6
    assert "at the left edge" in report.finding("gutter").message
    assert "6 px from the left edge" in report.finding("seam").message


def test_flat_sky_running_in_from_the_edge_is_not_a_gutter(tmp_path: Path) -> None:
    array = _texture(PANEL)
    array[: PANEL[1] // 3] = 150  # a clear sky: flat rows from the top edge well into the panel
    report = check_split_panel(_png(array, tmp_path / "sky.png"), axis="horizontal")
    assert report.finding("gutter").passed, report.finding("gutter").message
    array[:3] = 250  # a white separator line left above that sky
    assert not check_split_panel(_png(array, tmp_path / "line.png"), axis="horizontal").finding("gutter").passed


def test_grainy_band_at_bottom_edge_trips_seam(tmp_path: Path) -> None:
    array = _texture(PANEL)
    grain = np.random.default_rng(1).normal(20, 8, (5, PANEL[0], 1))
    array[-5:] = np.clip(grain, 0, 255).astype(np.uint8)
    path = _png(array, tmp_path / "grainy.png")
    report = check_split_panel(path, axis="horizontal")
    assert _failed(report) == {"seam"}
    assert "5 px from the bottom edge" in report.finding("seam").message
    assert check_split_panel(path, axis="vertical").passed


def test_unknown_split_axis_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="diagonal"):
        check_split_panel(_png(_texture(PANEL), tmp_path / "p.png"), axis="diagonal")  # type: ignore[arg-type]


# --- first/last pairs ---------------------------------------------------------------------------------------------


def test_brightened_copy_trips_near_identical(tmp_path: Path) -> None:
    first = _texture(SIZE)
    brighter = np.clip(first.astype(int) + 12, 0, 255).astype(np.uint8)
    report = check_pair(_png(first, tmp_path / "first.png"), _png(brighter, tmp_path / "last.png"))
    assert _failed(report) == {"near_identical"}
    assert report.finding("near_identical").value < 5


def test_different_picture_passes_pair(tmp_path: Path) -> None:
    report = check_pair(_png(_texture(SIZE, 7), tmp_path / "first.png"), _png(_texture(SIZE, 8), tmp_path / "last.png"))
    assert report.passed
    assert report.finding("near_identical").value >= 16


def test_perceptual_hash_and_hamming() -> None:
    image = Image.fromarray(_texture(SIZE))
    assert 0 <= perceptual_hash(image) < 2**64
    assert hamming(perceptual_hash(image), perceptual_hash(image.resize((SIZE[0] // 2, SIZE[1] // 2)))) <= 2
    assert hamming(perceptual_hash(image), perceptual_hash(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))) >= 16
    assert hamming(0b1011, 0b0001) == 2 and hamming(2**64 - 1, 0) == 64


# --- clips --------------------------------------------------------------------------------------------------------


def _moving(count: int) -> list[np.ndarray]:
    base = _texture(CLIP, 3)
    return [np.roll(base, 3 * i, axis=0) for i in range(count)]


def _clip(frames: list[np.ndarray], path: Path) -> Path:
    encode_frames(frames, path, fps=FPS, size=CLIP)
    return path


def test_moving_clip_passes_every_video_check(tmp_path: Path) -> None:
    report = check_video(_clip(_moving(24), tmp_path / "ok.mp4"), frames=24, fps=FPS, duration_s=1.5)
    assert [f.check for f in report.findings] == ["black_run", "frozen_run", "frame_count", "fps", "duration"]
    assert report.passed, [f.message for f in report.failures]


def test_ten_black_frames_trip_black_run(tmp_path: Path) -> None:
    frames = _moving(24)
    frames[5:15] = [np.zeros_like(frames[0])] * 10
    report = check_video(_clip(frames, tmp_path / "black.mp4"), frames=24, fps=FPS, duration_s=1.5)
    assert _failed(report) == {"black_run"}
    assert report.finding("black_run").value == 10


def test_a_second_of_repeated_frames_trips_frozen_run(tmp_path: Path) -> None:
    frames = _moving(32)
    frames[6:24] = [frames[6]] * 18
    report = check_video(_clip(frames, tmp_path / "frozen.mp4"), frames=32, fps=FPS, duration_s=2.0)
    assert _failed(report) == {"frozen_run"}
    assert report.finding("frozen_run").message == (
        "frozen_run: longest run of frozen frames (mean abs diff < 0.25) is 18 >= 16 (1 s)"
    )


def test_a_short_hold_is_not_frozen(tmp_path: Path) -> None:
    frames = _moving(32)
    frames[6:18] = [frames[6]] * 12
    report = check_video(_clip(frames, tmp_path / "hold.mp4"), frames=32, fps=FPS, duration_s=2.0)
    assert report.passed, [f.message for f in report.failures]


def test_a_small_slow_move_is_not_frozen(tmp_path: Path) -> None:
    """A slow move of a small part of the picture (an eased start, a blink) is motion, not a stuck generation."""
    base = _texture(CLIP, 3)
    frames = []
    for i in range(24):
        frame = base.copy()
        frame[10:22, 4 + i:16 + i] = 255 - frame[10:22, 4 + i:16 + i]
        frames.append(frame)
    report = check_video(_clip(frames, tmp_path / "slow.mp4"), frames=24, fps=FPS, duration_s=1.5)
    assert report.passed, [f.message for f in report.failures]


def test_wrong_frame_count_trips_count_and_duration(tmp_path: Path) -> None:
    report = check_video(_clip(_moving(20), tmp_path / "short.mp4"), frames=24, fps=FPS, duration_s=1.5)
    assert _failed(report) == {"frame_count", "duration"}
    assert report.finding("frame_count").message == "frame_count: 20 frames, expected 24 ± 1"


def test_wrong_rate_trips_fps(tmp_path: Path) -> None:
    report = check_video(_clip(_moving(24), tmp_path / "rate.mp4"), frames=24, fps=24, duration_s=1.5)
    assert _failed(report) == {"fps"}


def test_several_videos_decode_in_one_run_as_each_alone(tmp_path: Path) -> None:
    """Clip QC decodes a shot's segments and clip in one ffmpeg run: the same frames as one run per file."""
    frames = _moving(24)
    frames[5:9] = [np.zeros_like(frames[0])] * 4
    paths = [_clip(_moving(20), tmp_path / "a.mp4"), _clip(frames, tmp_path / "b.mp4"), _clip(_moving(7), tmp_path / "c.mp4")]
    together = decode_lumas(paths)
    assert [luma.shape[0] for luma in together] == [20, 24, 7]
    for path, luma in zip(paths, together, strict=True):
        assert np.array_equal(luma, decode_luma(path))
    report = check_video(paths[1], frames=24, fps=FPS, duration_s=1.5, luma=together[1])
    assert report.finding("black_run").value == 4


def test_a_broken_video_among_several_names_them(tmp_path: Path) -> None:
    good = _clip(_moving(8), tmp_path / "good.mp4")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    with pytest.raises(MediaError, match=r"decoding good.mp4, broken.mp4 failed: "):
        decode_lumas([good, broken])
