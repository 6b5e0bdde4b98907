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


# Frames of at most 0.1 megapixel (a tenth of the product's 720x1280) are decoded, filtered and encoded on one thread:
# for them, starting ffmpeg's threads costs more CPU than the work they share (a 90x160 segment's encode: 97 ms of
# CPU on two x264 threads, 72 ms on one). Larger frames keep ffmpeg's decoder and filter threads and two x264
# threads. Either way the thread count follows from the size alone, so the same frames give the same bytes anywhere.
ONE_THREAD_PIXELS = 100_000


def one_thread(*sizes: tuple[int, int]) -> bool:
    """Whether a run whose frames are all of these sizes (width, height) works on one thread."""
    return all(width * height <= ONE_THREAD_PIXELS for width, height in sizes)


def thread_args(single: bool) -> list[str]:
    """Global options: a run's filter graphs on one thread if `single` (one_thread() of its frame sizes)."""
    return ["-filter_threads", "1", "-filter_complex_threads", "1"] if single else []


def input_args(path: Path, single: bool) -> list[str]:
    """`-i path`, its decoder on one thread if `single`."""
    return [*(["-threads", "1"] if single else []), "-i", str(path)]


def h264_args(settings: dict[str, str | int] | None = None, size: tuple[int, int] | None = None) -> list[str]:
    """Encoder settings every video shares (x264_settings() unless given; one thread for a small `size`): same
    frames and settings in, byte-identical file out, on any machine."""
    settings = settings or x264_settings()
    threads = ["-threads", "1", "-x264-params", "threads=1"] if size is not None and one_thread(size) else [
        "-threads", "2", "-x264-params", "threads=2:lookahead-threads=1"]
    return [
        "-c:v", "libx264", "-preset", str(settings["preset"]), "-crf", str(settings["crf"]), "-pix_fmt", "yuv420p",
        *threads,
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


def output_args(out: Path, fps: float, size: tuple[int, int]) -> list[str]:
    """Encoder arguments for an H.264 MP4 of `size` frames at `fps`, written to `out`."""
    return ["-r", str(fps), *h264_args(size=size), str(out)]


def cover_filter(size: tuple[int, int]) -> str:
    """Filter chain that scales (Lanczos) to cover `size` keeping aspect, then centre-crops to it."""
    width, height = size
    return (
        f"scale={width}:{height}:force_original_aspect_ratio=increase:flags=lanczos,"
        f"crop={width}:{height},setsar=1"
    )
