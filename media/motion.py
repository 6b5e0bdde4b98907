"""Video from one still: a sub-pixel Ken Burns push-in, or a static hold.

A still may carry an overlay band (a caption) along its bottom: its PNG names the band's share of its height under
OVERLAY_KEY. The push moves the picture only; the band is composited onto every frame as the still shows it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from reelflow.media.encode import encode_frames
from reelflow.media.ffmpeg import cover_filter, one_thread, output_args, run_ffmpeg, thread_args
from reelflow.media.images import load_image, resize_cover
from reelflow.media.probe import check_video
from reelflow.schemas.assets import MediaInfo
from reelflow.schemas.errors import MediaError

Window = tuple[float, float, float, float]
OVERLAY_KEY = "reelflow:overlay"  # PNG text: the share of the still's height, at its bottom, that is an overlay band


def frames_for(duration_s: float, fps: int) -> int:
    """Frame count of a shot of `duration_s` seconds at `fps` (at least one)."""
    return max(1, round(duration_s * fps))


def push_windows(
    frames: int,
    source: tuple[int, int],
    size: tuple[int, int],
    *,
    zoom: tuple[float, float] = (1.0, 1.15),
    focus: tuple[float, float] = (0.5, 0.45),
) -> list[Window]:
    """Per-frame source windows (left, top, width, height) of a smoothstep push keeping `focus` still."""
    if frames < 1:
        raise MediaError(f"a push needs at least one frame, got {frames}")
    if min(zoom) < 1.0:
        raise MediaError(f"push zoom {zoom} must be >= 1.0 at both ends")
    if not all(0.0 <= f <= 1.0 for f in focus):
        raise MediaError(f"push focus {focus} must lie within the frame (0 to 1)")
    # Zoom 1 is the centred window of `size`'s aspect that covers the source. The window goes from
    # 1/zoom[0] to 1/zoom[1] of it (a pull-out if zoom falls), anchored so the point at `focus`
    # (fractions of the frame) stays put.
    src_w, src_h = source
    scale = max(size[0] / src_w, size[1] / src_h)
    base_w, base_h = min(src_w, size[0] / scale), min(src_h, size[1] / scale)
    base_left, base_top = (src_w - base_w) / 2, (src_h - base_h) / 2
    start_w, end_w = base_w / zoom[0], base_w / zoom[1]
    windows = []
    for index in range(frames):
        t = index / (frames - 1) if frames > 1 else 0.0
        width = start_w + (end_w - start_w) * t * t * (3.0 - 2.0 * t)
        height = width * base_h / base_w
        left = base_left + focus[0] * (base_w - width)
        top = base_top + focus[1] * (base_h - height)
        windows.append((left, top, width, height))
    return windows


def overlay_rows(source: Image.Image, size: tuple[int, int]) -> int:
    """Rows at the bottom of a `size` frame that the still's overlay band takes once cover-resized (0: it has none)."""
    try:
        share = float(source.info.get(OVERLAY_KEY, 0))
    except (TypeError, ValueError):
        return 0
    if not 0.0 < share < 1.0:
        return 0
    src_w, src_h = source.size
    scale = max(size[0] / src_w, size[1] / src_h)
    crop_h = min(src_h, size[1] / scale)
    band_top = (src_h * (1.0 - share) - (src_h - crop_h) / 2) * scale
    return max(0, min(size[1], size[1] - math.floor(band_top + 1e-3)))  # the share is written to 6 decimals


def _render(source: Image.Image, windows: list[Window], size: tuple[int, int]) -> Iterator[Image.Image]:
    """The push's frames, the still's overlay band (if any) held where the still has it, outside the push's crop."""
    src_w, src_h = source.size
    rows = overlay_rows(source, size)
    band = resize_cover(source, size).crop((0, size[1] - rows, size[0], size[1])) if rows else None
    for left, top, width, height in windows:
        box = (left, top, min(left + width, src_w), min(top + height, src_h))
        frame = source.resize(size, Image.Resampling.LANCZOS, box=box)
        if band is not None:
            frame.paste(band, (0, size[1] - rows))
        yield frame


def ken_burns(
    image: Path,
    out: Path,
    *,
    duration_s: float,
    fps: int,
    size: tuple[int, int],
    zoom: tuple[float, float] = (1.0, 1.15),
    focus: tuple[float, float] = (0.5, 0.45),
) -> MediaInfo:
    """Encode a smooth push-in on `image`: frames_for(duration_s, fps) frames at `size`."""
    source = load_image(image)
    windows = push_windows(frames_for(duration_s, fps), source.size, size, zoom=zoom, focus=focus)
    encode_frames(_render(source, windows, size), out, fps=fps, size=size)
    return check_video(out, frames=len(windows), size=size)


def static_hold(image: Path, out: Path, *, duration_s: float, fps: int, size: tuple[int, int]) -> MediaInfo:
    """Encode `image` held still (cover-resized to `size`) for frames_for(duration_s, fps) frames."""
    frames = frames_for(duration_s, fps)
    out.parent.mkdir(parents=True, exist_ok=True)
    run_ffmpeg(
        [
            *thread_args(one_thread(size)), "-f", "image2", "-pattern_type", "none", "-loop", "1", "-framerate", str(fps),
            "-i", str(image), "-vf", cover_filter(size), "-frames:v", str(frames), *output_args(out, fps, size),
        ],
        what=f"static hold {out.name}",
    )
    return check_video(out, frames=frames, size=size)
