"""Gate 1 (artifacts): pure numpy checks of keyframes, split triptych panels, first/last pairs and clips."""

from __future__ import annotations

import math
import subprocess
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from reelflow.media.ffmpeg import ffmpeg_exe, input_args, one_thread, thread_args
from reelflow.media.images import load_image
from reelflow.media.probe import probe_video
from reelflow.schemas.errors import MediaError
from reelflow.schemas.qc import Gate1Finding, Gate1Report, Gate1Thresholds

DEFAULT_THRESHOLDS = Gate1Thresholds()
VIDEO_SAMPLE_SIZE = 64  # clips are decoded to VIDEO_SAMPLE_SIZE x VIDEO_SAMPLE_SIZE luma; aspect does not matter here
Axis = Literal["vertical", "horizontal"]


def _luma(path: Path) -> Image.Image:
    """An image file as 8-bit luma (ITU-R 601)."""
    return load_image(path).convert("L")


def _finding(check: str, failed: bool, value: float, threshold: float, message: str) -> Gate1Finding:
    """A finding whose message is prefixed with its check name."""
    return Gate1Finding(check=check, passed=not failed, value=value, threshold=threshold, message=f"{check}: {message}")


def laplacian_variance(luma: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of a 2-D luma array (0 for arrays under 3x3)."""
    g = luma.astype(np.float64)
    if min(g.shape) < 3:
        return 0.0
    lap = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4.0 * g[1:-1, 1:-1]
    return float(lap.var())


def _analysis_luma(luma: Image.Image, long_side: int) -> np.ndarray:
    """Luma resized (Lanczos) to a fixed long side, as float64."""
    width, height = luma.size
    scale = long_side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(luma.resize(size, Image.Resampling.LANCZOS), dtype=np.float64)


def check_image(
    path: Path, *, expected_size: tuple[int, int] | None = None, thresholds: Gate1Thresholds = DEFAULT_THRESHOLDS
) -> Gate1Report:
    """Blank/near-uniform, blur, clipped exposure and (when `expected_size` is given) size and aspect of a still."""
    t = thresholds
    luma = _luma(path)
    pixels = np.asarray(luma, dtype=np.float64)
    std = float(pixels.std())
    sharpness = laplacian_variance(_analysis_luma(luma, t.analysis_long_side))
    clipped = float(np.mean((pixels <= t.clip_low) | (pixels >= t.clip_high)))
    findings = [
        _finding(
            "uniform", std < t.uniform_min_std, std, t.uniform_min_std,
            f"luma std {std:.2f} {'<' if std < t.uniform_min_std else '>='} {t.uniform_min_std:g}",
        ),
        _finding(
            "blur", sharpness < t.blur_min_laplacian_var, sharpness, t.blur_min_laplacian_var,
            f"Laplacian variance {sharpness:.1f} {'<' if sharpness < t.blur_min_laplacian_var else '>='} "
            f"{t.blur_min_laplacian_var:g}",
        ),
        _finding(
            "exposure", clipped > t.clipped_max_fraction, clipped, t.clipped_max_fraction,
            f"{clipped:.1%} of pixels clipped (<= {t.clip_low} or >= {t.clip_high}) "
            f"{'>' if clipped > t.clipped_max_fraction else '<='} {t.clipped_max_fraction:.1%}",
        ),
    ]
    if expected_size is not None:
        width, height = luma.size
        exp_w, exp_h = expected_size
        off_px = max(abs(width - exp_w), abs(height - exp_h))
        aspect_off = abs((width / height) / (exp_w / exp_h) - 1.0)
        findings += [
            _finding(
                "size", off_px > t.size_tolerance_px, off_px, t.size_tolerance_px,
                f"{width}x{height}, expected {exp_w}x{exp_h} (off {off_px} px, tolerance {t.size_tolerance_px} px)",
            ),
            _finding(
                "aspect", aspect_off > t.aspect_tolerance, aspect_off, t.aspect_tolerance,
                f"{width / height:.4f} (w/h), expected {exp_w / exp_h:.4f} "
                f"(off {aspect_off:.2%}, tolerance {t.aspect_tolerance:.2%})",
            ),
        ]
    return Gate1Report(subject=str(path), findings=findings)


def _seam_coverage(band: np.ndarray, min_step: float) -> np.ndarray:
    """Per boundary between neighbouring columns: fraction of rows stepping by >= min_step in the majority sign."""
    steps = np.diff(band, axis=1)
    if steps.shape[1] == 0:
        return np.zeros(1)
    return np.maximum(np.mean(steps >= min_step, axis=0), np.mean(steps <= -min_step, axis=0))


def check_split_panel(
    path: Path, *, axis: Axis, thresholds: Gate1Thresholds = DEFAULT_THRESHOLDS
) -> Gate1Report:
    """Leftover gutter or seam near the cut edges of a panel split from a triptych strip.

    `axis="vertical"`: the strip was cut by vertical lines (panels side by side), so the left and right edges are
    searched for flat columns and straight column-to-column steps; `"horizontal"`: top and bottom edges, by rows.
    """
    t = thresholds
    grey = np.asarray(_luma(path), dtype=np.float64)
    if axis == "horizontal":
        grey = grey.T
    elif axis != "vertical":
        raise MediaError(f"split axis must be 'vertical' or 'horizontal', got {axis!r}")
    lines = grey.shape[1]
    zone = min(max(t.gutter_min_px, math.ceil(t.gutter_edge_fraction * lines)), lines // 2)
    names = ("left", "right") if axis == "vertical" else ("top", "bottom")
    # Both bands are read outward-in: index 0 is the panel's outermost column (row).
    bands = {names[0]: grey[:, :zone], names[1]: grey[:, ::-1][:, :zone]}
    inside = {names[0]: grey[:, zone].mean(), names[1]: grey[:, -1 - zone].mean()}
    flat = {
        side: int(np.sum((band.std(axis=0) < t.gutter_flat_std)
                         & (np.abs(band.mean(axis=0) - inside[side]) >= t.gutter_min_contrast)))
        for side, band in bands.items()
    }
    coverage = {side: _seam_coverage(band, t.seam_min_step) for side, band in bands.items()}
    flat_side = max(flat, key=lambda side: flat[side])
    seam_side = max(coverage, key=lambda side: float(coverage[side].max()))
    flat_count = flat[flat_side]
    seam = float(coverage[seam_side].max())
    seam_at = int(coverage[seam_side].argmax()) + 1
    unit, length = ("columns", "height") if axis == "vertical" else ("rows", "width")
    findings = [
        _finding(
            "gutter", flat_count >= t.gutter_max_flat_lines, flat_count, t.gutter_max_flat_lines,
            f"{flat_count} flat {unit} (luma std < {t.gutter_flat_std:g}, apart from the content) in the outer {zone} px at the "
            f"{flat_side} edge {'>=' if flat_count >= t.gutter_max_flat_lines else '<'} {t.gutter_max_flat_lines}",
        ),
        _finding(
            "seam", seam >= t.seam_max_coverage, seam, t.seam_max_coverage,
            f"straight step >= {t.seam_min_step:g} along {seam:.0%} of the {length} {seam_at} px from the "
            f"{seam_side} edge {'>=' if seam >= t.seam_max_coverage else '<'} {t.seam_max_coverage:.0%}",
        ),
    ]
    return Gate1Report(subject=str(path), findings=findings)


def perceptual_hash(image: Image.Image) -> int:
    """64-bit difference hash (dHash): 9x8 luma thumbnail, bit set where a pixel is brighter than its right neighbour."""
    thumb = np.asarray(image.convert("L").resize((9, 8), Image.Resampling.LANCZOS), dtype=np.int16)
    bits = (thumb[:, :-1] > thumb[:, 1:]).ravel()
    return int(sum(1 << index for index, bit in enumerate(bits) if bit))


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two hashes."""
    return (a ^ b).bit_count()


def check_pair(first: Path, last: Path, thresholds: Gate1Thresholds = DEFAULT_THRESHOLDS) -> Gate1Report:
    """Fail when a shot's first and last frames are near-identical by perceptual hash (nothing happens in the shot)."""
    t = thresholds
    distance = hamming(perceptual_hash(load_image(first)), perceptual_hash(load_image(last)))
    finding = _finding(
        "near_identical", distance < t.pair_min_hamming, distance, t.pair_min_hamming,
        f"dHash distance {distance} {'<' if distance < t.pair_min_hamming else '>='} {t.pair_min_hamming}",
    )
    return Gate1Report(subject=f"{first} vs {last}", findings=[finding])


def _luma_output(index: int, out: str) -> list[str]:
    """ffmpeg output options: input `index`'s first video stream, every frame as 64x64 gray bytes, to `out`."""
    side = VIDEO_SAMPLE_SIZE
    return ["-map", f"{index}:v:0", "-vf", f"scale={side}:{side}:flags=area", "-fps_mode", "passthrough",
            "-f", "rawvideo", "-pix_fmt", "gray", out]


def _small(paths: list[Path]) -> bool:
    """Whether every video's frames are small enough to decode on one thread (one_thread); a blob's probe is
    memoised. A file that does not probe counts as large: ffmpeg's own error then names it."""
    try:
        return one_thread(*((info.width, info.height) for info in map(probe_video, paths)))
    except MediaError:
        return False


def _decode(paths: list[Path], outs: list[str]) -> bytes:
    single = _small(paths)
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", *thread_args(single)]
    for path in paths:
        command += input_args(path, single)
    for index, out in enumerate(outs):
        command += _luma_output(index, out)
    result = subprocess.run(command, capture_output=True)
    if result.returncode != 0:
        lines = result.stderr.decode("utf-8", "replace").splitlines()
        last = next((line for line in reversed(lines) if line.strip()), "no output")
        raise MediaError(f"decoding {', '.join(path.name for path in paths)} failed: {last.strip()}")
    return result.stdout


def _frames(raw: bytes) -> np.ndarray:
    side = VIDEO_SAMPLE_SIZE
    return np.frombuffer(raw, np.uint8).reshape(-1, side, side)


def decode_luma(path: Path) -> np.ndarray:
    """Every frame of a video's first video stream as (frames, 64, 64) uint8 luma (area-scaled, aspect ignored)."""
    return _frames(_decode([path], ["-"]))


def decode_lumas(paths: list[Path]) -> list[np.ndarray]:
    """decode_luma of each video, all in one ffmpeg run (a shot's segments and clip: one process, not three)."""
    if len(paths) < 2:
        return [decode_luma(path) for path in paths]
    with tempfile.TemporaryDirectory(prefix="reelflow-luma-") as scratch:
        outs = [str(Path(scratch) / f"{index}.gray") for index in range(len(paths))]
        _decode(paths, outs)
        return [_frames(Path(out).read_bytes()) for out in outs]


def _longest_run(flags: np.ndarray) -> int:
    """Length of the longest run of True values."""
    longest = current = 0
    for flag in flags.tolist():
        current = current + 1 if flag else 0
        longest = max(longest, current)
    return longest


def check_video(
    path: Path, *, frames: int, fps: float, duration_s: float, thresholds: Gate1Thresholds = DEFAULT_THRESHOLDS,
    luma: np.ndarray | None = None,
) -> Gate1Report:
    """Black runs, frozen runs, and frame count / fps / duration against what the clip should have (`luma`: the
    file's decode_luma, where it was decoded already)."""
    t = thresholds
    info = probe_video(path)
    luma = (decode_luma(path) if luma is None else luma).astype(np.float64)
    black = luma.mean(axis=(1, 2)) < t.black_max_luma
    black_run = _longest_run(black)
    still = np.abs(np.diff(luma, axis=0)).mean(axis=(1, 2)) < t.frozen_max_diff
    frozen_pairs = _longest_run(still & ~black[:-1] & ~black[1:])
    frozen_run = frozen_pairs + 1 if frozen_pairs else 0
    frozen_limit = max(2, math.ceil(t.frozen_max_s * fps))
    actual_frames, actual_fps = info.frames or 0, info.fps or 0.0
    actual_duration = info.duration_s or 0.0
    frames_off, fps_off = abs(actual_frames - frames), abs(actual_fps - fps)
    duration_off = abs(actual_duration - duration_s)
    findings = [
        _finding(
            "black_run", black_run >= t.black_max_frames, black_run, t.black_max_frames,
            f"longest run of black frames (mean luma < {t.black_max_luma:g}) is {black_run} "
            f"{'>=' if black_run >= t.black_max_frames else '<'} {t.black_max_frames}",
        ),
        _finding(
            "frozen_run", frozen_run >= frozen_limit, frozen_run, frozen_limit,
            f"longest run of frozen frames (mean abs diff < {t.frozen_max_diff:g}) is {frozen_run} "
            f"{'>=' if frozen_run >= frozen_limit else '<'} {frozen_limit} ({t.frozen_max_s:g} s)",
        ),
        _finding(
            "frame_count", frames_off > t.frames_tolerance, frames_off, t.frames_tolerance,
            f"{actual_frames} frames, expected {frames} ± {t.frames_tolerance}",
        ),
        _finding(
            "fps", fps_off > t.fps_tolerance, fps_off, t.fps_tolerance,
            f"{actual_fps:g} fps, expected {fps:g} ± {t.fps_tolerance:g}",
        ),
        _finding(
            "duration", duration_off > t.duration_tolerance_s, duration_off, t.duration_tolerance_s,
            f"{actual_duration:.3f} s, expected {duration_s:.3f} ± {t.duration_tolerance_s:g} s",
        ),
    ]
    return Gate1Report(subject=str(path), findings=findings)
