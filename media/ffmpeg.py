"""The ffmpeg binary that imageio-ffmpeg ships, and the encoder settings every video shares."""

from __future__ import annotations

import os
import subprocess
from functools import lru_cache
from pathlib import Path

import imageio_ffmpeg

from reelflow.schemas.errors import MediaError

# x264 at CRF 18: `veryfast` makes files about a third the size of `ultrafast` for several times the CPU. Tests may
# choose a faster preset through REELFLOW_X264_PRESET; the product's default never changes with them. Cached media
# operations put x264_settings() in their keys, so a file encoded one way is never served for another.
PRESET_ENV = "REELFLOW_X264_PRESET"
DEFAULT_PRESET = "veryfast"
CRF = 18
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")


def x264_settings() -> dict[str, str | int]:
    """The x264 preset and CRF encodes use now: REELFLOW_X264_PRESET's preset if set, else `veryfast`, at CRF 18."""
    preset = os.environ.get(PRESET_ENV) or DEFAULT_PRESET
    if preset not in X264_PRESETS:
        raise MediaError(f"{PRESET_ENV}={preset!r} is not an x264 preset ({', '.join(X264_PRESETS)})")
    return {"preset": preset, "crf": CRF}


def h264_args(settings: dict[str, str | int] | None = None) -> list[str]:
    """Encoder settings every video shares (x264_settings() unless given): same frames and settings in,
    byte-identical file out, on any machine."""
    settings = settings or x264_settings()
    return [
        "-c:v", "libx264", "-preset", str(settings["preset"]), "-crf", str(settings["crf"]), "-pix_fmt", "yuv420p",
        "-threads", "2", "-x264-params", "threads=2:lookahead-threads=1",
        "-movflags", "+faststart", "-fflags", "+bitexact", "-flags:v", "+bitexact",
        "-map_metadata", "-1", "-an",
    ]


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg."""
    return imageio_ffmpeg.get_ffmpeg_exe()


def run_ffmpeg(args: list[str], *, stdin: bytes | None = None, what: str = "ffmpeg") -> str:
    """Run ffmpeg quietly; on failure raise MediaError with the last line ffmpeg printed."""
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", *args]
    if stdin is not None:
        command.remove("-nostdin")
    result = subprocess.run(command, input=stdin, capture_output=True)
    stderr = result.stderr.decode("utf-8", "replace")
    if result.returncode != 0:
        last = next((line for line in reversed(stderr.splitlines()) if line.strip()), "no output")
        raise MediaError(f"{what} failed: {last.strip()}")
    return stderr


def output_args(out: Path, fps: float) -> list[str]:
    """Encoder arguments for an H.264 MP4 at `fps`, written to `out`."""
    return ["-r", str(fps), *h264_args(), str(out)]


def cover_filter(size: tuple[int, int]) -> str:
    """Filter chain that scales (Lanczos) to cover `size` keeping aspect, then centre-crops to it."""
    width, height = size
    return (
        f"scale={width}:{height}:force_original_aspect_ratio=increase:flags=lanczos,"
        f"crop={width}:{height},setsar=1"
    )
