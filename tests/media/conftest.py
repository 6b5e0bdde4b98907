"""Shared fixtures for the media tests: tiny synthetic videos and a decoder to check their frames."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from reelflow.media.encode import encode_frames
from reelflow.media.ffmpeg import ffmpeg_exe
from reelflow.media.probe import probe_video

MakeVideo = Callable[..., Path]
Decode = Callable[[Path], np.ndarray]


@pytest.fixture
def make_video(tmp_path: Path) -> MakeVideo:
    """Factory: a video whose frame i is flat grey `start + step * i`, so frames can be identified."""

    def make(
        name: str, frames: int, size: tuple[int, int] = (64, 112), *, fps: int = 16, start: int = 0, step: int = 2
    ) -> Path:
        path = tmp_path / name
        width, height = size
        encode_frames(
            (np.full((height, width, 3), start + step * i, np.uint8) for i in range(frames)), path, fps=fps, size=size
        )
        return path

    return make


@pytest.fixture
def decode() -> Decode:
    """Decoder: every frame of a video as an (frames, height, width, 3) uint8 array."""

    def run(path: Path) -> np.ndarray:
        info = probe_video(path)
        raw = subprocess.run(
            [ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
            capture_output=True, check=True,
        ).stdout
        return np.frombuffer(raw, np.uint8).reshape(-1, info.height, info.width, 3)

    return run


@pytest.fixture
def sha256() -> Callable[[Path], str]:
    """Hex digest of a file's bytes."""
    return lambda path: hashlib.sha256(path.read_bytes()).hexdigest()
