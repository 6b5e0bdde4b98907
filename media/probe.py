"""Read size, frame count, rate and codec of images (Pillow) and videos (MP4 boxes, else `ffmpeg -i`; no ffprobe)."""

from __future__ import annotations

import re
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from reelflow.media.ffmpeg import run_ffmpeg
from reelflow.media.identity import FileMemo
from reelflow.media.mp4 import read_mp4
from reelflow.schemas.assets import MediaInfo
from reelflow.schemas.errors import MediaError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".webm"})
MP4_SUFFIXES = frozenset({".mp4", ".mov"})

_VIDEO_STREAM = re.compile(r"^\s*Stream #0:\d+\S*: Video: (?P<codec>\w+)(?P<rest>.*)$", re.MULTILINE)
# Hex tags such as "0x31637661" start with 0, so they never match a size.
_SIZE = re.compile(r"(?<![\w.])([1-9]\d*)x([1-9]\d*)(?![\w.])")
_FPS = re.compile(r"(\d+(?:\.\d+)?) fps")
_TBR = re.compile(r"(\d+(?:\.\d+)?) tbr")
_FRAME = re.compile(r"frame=\s*(\d+)")


def probe_image(path: Path) -> MediaInfo:
    """Kind and size of an image file."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, UnidentifiedImageError) as error:
        raise MediaError(f"cannot read image {path.name}: {error}") from None
    return MediaInfo(kind="image", width=width, height=height)


_probed: FileMemo[MediaInfo] = FileMemo(8192)


def probe_video(path: Path) -> MediaInfo:
    """Size, exact frame count, rate, duration and codec of a video's first video stream.

    A file is read once per process: the answer is kept by its identity on disk (device, inode, size, modification
    time), which a rename into the blob store or a hard link to an asset keeps, and any rewrite changes. A shot's
    video was otherwise read whole six times (checked when made, stored, fitted, checked again, cut).
    """
    try:
        stat = path.stat()
    except OSError as error:
        raise MediaError(f"cannot read video {path.name}: {error.strerror or error}") from None
    return _probed.get(stat, lambda: _probe_video(path))


def _probe_video(path: Path) -> MediaInfo:
    """From the file's boxes where it is a plain MP4 or MOV (media/mp4.py), else from ffmpeg reading it through."""
    if path.suffix.lower() in MP4_SUFFIXES and (info := read_mp4(path)) is not None:
        return info
    return _ffmpeg_probe(path)


def _ffmpeg_probe(path: Path) -> MediaInfo:
    stderr = run_ffmpeg(
        ["-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "null", "-"], what=f"probing {path.name}"
    )
    stream = _VIDEO_STREAM.search(stderr)
    if stream is None:
        raise MediaError(f"{path.name} has no video stream")
    rest = stream.group("rest")
    size = _SIZE.search(rest)
    rate = _FPS.search(rest) or _TBR.search(rest)
    counts = _FRAME.findall(stderr.replace("\r", "\n"))
    if size is None or rate is None or not counts:
        raise MediaError(f"cannot read size, rate or frame count of {path.name}")
    frames, fps = int(counts[-1]), float(rate.group(1))
    if frames < 1 or fps <= 0:
        raise MediaError(f"{path.name} has no video frames")
    return MediaInfo(
        kind="video", width=int(size.group(1)), height=int(size.group(2)),
        frames=frames, fps=fps, duration_s=frames / fps, codec=stream.group("codec"),
    )


DATA_SUFFIXES = (".json", ".zip", ".safetensors")


def probe(path: Path) -> MediaInfo:
    """Probe an image or a video, chosen by the file's suffix; a `.json` record, a zip or LoRA weights are data
    without a picture."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return probe_image(path)
    if suffix in VIDEO_SUFFIXES:
        return probe_video(path)
    if suffix in DATA_SUFFIXES:
        return MediaInfo(kind="data", width=0, height=0)
    raise MediaError(f"cannot probe {path.name}: unknown media suffix {suffix or '(none)'}")


def check_video(path: Path, *, frames: int, size: tuple[int, int]) -> MediaInfo:
    """Probe a video just written and raise MediaError unless it has exactly `frames` frames at `size`."""
    info = probe_video(path)
    if info.frames != frames or (info.width, info.height) != size:
        raise MediaError(
            f"{path.name} has {info.frames} frames at {info.width}x{info.height}, "
            f"expected {frames} at {size[0]}x{size[1]}"
        )
    return info
