"""Encode frames (Pillow images or uint8 arrays) into H.264 MP4 through an ffmpeg pipe."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from reelflow.media.ffmpeg import ffmpeg_exe, h264_args
from reelflow.schemas.errors import MediaError

Frame = Image.Image | np.ndarray


def _rgb_bytes(frame: Frame, size: tuple[int, int]) -> bytes:
    if isinstance(frame, Image.Image):
        if frame.mode != "RGB":
            frame = frame.convert("RGB")
        if frame.size != size:
            raise MediaError(f"frame is {frame.size[0]}x{frame.size[1]}, expected {size[0]}x{size[1]}")
        return frame.tobytes()
    array = np.ascontiguousarray(frame, dtype=np.uint8)
    if array.shape != (size[1], size[0], 3):
        raise MediaError(f"frame array has shape {array.shape}, expected {(size[1], size[0], 3)}")
    return array.tobytes()


def encode_frames(frames: Iterable[Frame], out: Path, *, fps: int, size: tuple[int, int],
                  x264: dict[str, str | int] | None = None) -> int:
    """Write `frames` (all `size` = (width, height)) to `out` at `fps` with `x264` settings (default: the product's);
    returns the frame count."""
    width, height = size
    if width % 2 or height % 2:
        raise MediaError(f"video size {width}x{height} must be even for yuv420p")
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [
        ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "pipe:0",
        "-r", str(fps), *h264_args(x264, size), str(out),
    ]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdin is not None and process.stderr is not None
    count = 0
    try:
        for frame in frames:
            process.stdin.write(_rgb_bytes(frame, size))
            count += 1
    except BrokenPipeError:
        count = 0  # ffmpeg stopped reading: the error it printed is raised below
    except BaseException:
        process.kill()
        process.wait()
        raise
    finally:
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()
    stderr = process.stderr.read().decode("utf-8", "replace")
    if process.wait() != 0 or count == 0:
        last = next((line for line in reversed(stderr.splitlines()) if line.strip()), "no frames")
        raise MediaError(f"encoding {out.name} failed: {last.strip()}")
    return count
