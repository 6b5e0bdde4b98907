"""Benchmark mode for the local provider's video: one clip drawn per shape, replayed for every call of that shape.

A cloud video service spends none of this machine's CPU; the local provider draws and encodes every first-last
clip (an ffmpeg process and Pillow frames per call). With `REELFLOW_LOCAL_VIDEO=replay` each (size, frames, fps)
is drawn once per process from fixed pictures and every call writes a copy, its request key appended in an MP4
`free` box (ISO/IEC 14496-12 §8.1.2, skipped by every reader) so no two calls' files are the same bytes: the
clips reelflow fits and checks from them are still made once per shot. A benchmark then measures reelflow's own
work, not the stand-in's drawing. The outputs differ from drawn ones, so the mode is part of the cache identity.
"""

from __future__ import annotations

import struct
import tempfile
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from reelflow.providers.local.flf import render_first_last, render_stuck
from reelflow.schemas.errors import ContractError

VIDEO_VAR = "REELFLOW_LOCAL_VIDEO"
MODES = ("draw", "replay")

Shape = tuple[tuple[int, int], int, int, bool]  # size, frames, fps, stuck


def replaying(value: str | None) -> bool:
    """Whether `REELFLOW_LOCAL_VIDEO`'s value asks for replayed clips (`draw`, the default, draws every one)."""
    mode = (value or "draw").strip()
    if mode not in MODES:
        raise ContractError(f"{VIDEO_VAR}: {mode!r} is not a mode (use {' or '.join(MODES)})")
    return mode == "replay"


def _picture(size: tuple[int, int], phase: int) -> Image.Image:
    """A fixed gradient picture with a bright block, different for each `phase`, so the clip moves."""
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width]
    rgb = np.stack([(xs * 255) // max(1, width - 1), (ys * 255) // max(1, height - 1),
                    np.full_like(xs, 96 + 64 * phase)], axis=-1).astype(np.uint8)
    top = (height // 4) * (1 + phase)
    rgb[top:top + height // 6, width // 4:3 * width // 4] = 235
    return Image.fromarray(rgb, "RGB")


def _free_box(key: str) -> bytes:
    payload = f"reelflow local replay {key}".encode()
    return struct.pack(">I4s", 8 + len(payload), b"free") + payload


class Replays:
    """The clips drawn so far in this process, by shape; each call writes one with its key appended."""

    def __init__(self) -> None:
        self._clips: dict[Shape, bytes] = {}
        self._lock = threading.Lock()

    def write(self, out: Path, key: str, *, size: tuple[int, int], num_frames: int, fps: int, stuck: bool) -> None:
        """Write the shape's clip (drawn now if it is the first of its shape) to `out`, then `key` in a free box."""
        shape: Shape = (size, num_frames, fps, stuck)
        with self._lock:
            clip = self._clips.get(shape)
            if clip is None:
                clip = self._clips[shape] = _draw(shape)
        out.write_bytes(clip + _free_box(key))


def _draw(shape: Shape) -> bytes:
    size, num_frames, fps, stuck = shape
    with tempfile.TemporaryDirectory(prefix="reelflow-replay-") as scratch:
        first, last, clip = Path(scratch) / "first.png", Path(scratch) / "last.png", Path(scratch) / "clip.mp4"
        _picture(size, 0).save(first)
        _picture(size, 1).save(last)
        if stuck:
            render_stuck(first, clip, num_frames=num_frames, fps=fps, size=size)
        else:
            render_first_last(first, last, clip, num_frames=num_frames, fps=fps, size=size, seed=0)
        return clip.read_bytes()
