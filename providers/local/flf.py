"""First-last-frame video without a model: matched camera moves, a dissolve, and moving light."""

from __future__ import annotations

import hashlib
import math
import queue
import random
import threading
from collections.abc import Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from reelflow.media.encode import encode_frames
from reelflow.media.images import load_image, resize_cover
from reelflow.schemas.errors import MediaError

SWEEP_LEVELS = 32
MOTE_LEVELS = (60, 140)
WARM_GREEN = [round(v * 0.92) for v in range(256)]
WARM_BLUE = [round(v * 0.75) for v in range(256)]
AHEAD = 4
# The local provider stands in for a video service, which returns its own encode whatever reelflow's settings are.
SERVICE_X264: dict[str, str | int] = {"preset": "ultrafast", "crf": 18}


def ease(t: float) -> float:
    """Eased progress that still moves at both ends (so no two consecutive frames are equal)."""
    return 0.4 * t + 0.6 * t * t * (3.0 - 2.0 * t)


def dissolve(t: float) -> float:
    """Weight of the last frame at progress `t`: 0 early, 1 late, smootherstep in between."""
    x = min(1.0, max(0.0, (t - 0.12) / 0.76))
    return x * x * x * (x * (6.0 * x - 15.0) + 10.0)


@dataclass(frozen=True)
class Move:
    """The camera move: a push of `zoom` while the framing slides from `start` to `end` anchors."""

    zoom: float
    start: tuple[float, float]
    end: tuple[float, float]

    @classmethod
    def from_seed(cls, seed: int) -> Move:
        pick = random.Random(int.from_bytes(hashlib.sha256(f"flf-move\x1f{seed}".encode()).digest()[:16], "big"))
        return cls(
            zoom=pick.uniform(0.06, 0.1),
            start=(pick.uniform(0.2, 0.8), pick.uniform(0.25, 0.75)),
            end=(pick.uniform(0.2, 0.8), pick.uniform(0.25, 0.75)),
        )

    def warp(self, image: Image.Image, push: float, progress: float) -> Image.Image:
        """`image` pushed in by `push` (0..1 of the zoom), framed where the slide is at `progress`."""
        if push <= 0.0:
            return image
        scale = 1.0 + self.zoom * push
        width, height = image.size
        anchor_x = self.start[0] + (self.end[0] - self.start[0]) * progress
        anchor_y = self.start[1] + (self.end[1] - self.start[1]) * progress
        left = (width - width / scale) * anchor_x
        top = (height - height / scale) * anchor_y
        window = (left, top, left + width / scale, top + height / scale)
        return image.resize(image.size, Image.Resampling.BILINEAR, box=window)


class Light:
    """A soft diagonal light sweep and drifting motes, the same for a given seed and size.

    The sweep is built from a profile computed with `math.exp` and integer shears, so its pixels do
    not depend on which SIMD path numpy picks on a given CPU.
    """

    def __init__(self, size: tuple[int, int], seed: int) -> None:
        width, height = size
        pick = random.Random(int.from_bytes(hashlib.sha256(f"flf-light\x1f{seed}".encode()).digest()[:16], "big"))
        self.size = size
        sigma = 0.12 * width
        slant = pick.uniform(0.2, 0.6)
        centre = width + 3 * sigma
        self.travel = math.ceil(centre + height * slant + 3 * sigma)
        profile = np.array(
            [round(SWEEP_LEVELS * math.exp(-(((x - centre) / sigma) ** 2))) for x in range(width + self.travel)], np.uint8
        )
        shear = np.array([round(y * slant) for y in range(height)], np.int64)
        columns = np.clip(np.arange(width + self.travel, dtype=np.int64)[None, :] - shear[:, None], 0, None)
        self.canvas = Image.fromarray(profile[columns], "L")
        unit = min(width, height)
        self.motes = [
            (pick.random(), pick.random(), pick.uniform(-0.25, 0.25), pick.uniform(-0.4, -0.1),
             max(1.0, pick.uniform(0.002, 0.006) * unit), pick.randint(*MOTE_LEVELS))
            for _ in range(pick.randint(24, 48))
        ]

    def mask(self, t: float) -> Image.Image | None:
        """The brightening to add at progress `t` (None at the ends, where frames equal the inputs)."""
        strength = math.sin(math.pi * t) ** 0.5 if 0.0 < t < 1.0 else 0.0
        if strength <= 0.0:
            return None
        width, height = self.size
        offset = round(self.travel * (1.0 - t))
        mask = self.canvas.crop((offset, 0, offset + width, height))
        draw = ImageDraw.Draw(mask)
        for x, y, vx, vy, radius, level in self.motes:
            cx, cy = (x + vx * t) % 1.0 * width, (y + vy * t) % 1.0 * height
            draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=level)
        return mask.point([round(v * strength) for v in range(256)])


def _frames(
    start: Image.Image, end: Image.Image, count: int, move: Move, light: Light, overlay: Image.Image | None
) -> Iterator[Image.Image]:
    """The clip: `start` pushes in and dissolves into `end` settling out of the same push, under moving light; then
    `overlay` (a caption band) is composited along the bottom of every frame, over the moving picture."""
    for index in range(count):
        t = index / (count - 1)
        progress = ease(t)
        weight = dissolve(t)
        frame = move.warp(start, progress, progress)
        if weight > 0.0:
            arrival = move.warp(end, 1.0 - progress, progress)
            frame = arrival if weight >= 1.0 else Image.blend(frame, arrival, weight)
        mask = light.mask(t)
        if mask is not None:
            frame = ImageChops.add(frame, Image.merge("RGB", (mask, mask.point(WARM_GREEN), mask.point(WARM_BLUE))))
        if overlay is not None:
            frame = frame.copy() if frame is start or frame is end else frame
            frame.paste(overlay, (0, frame.height - overlay.height))
        yield frame


def read_ahead(frames: Iterator[Image.Image], depth: int) -> Generator[Image.Image, None, None]:
    """Yield `frames`, drawn on a worker thread up to `depth` frames ahead, so drawing overlaps encoding."""
    pending: queue.Queue[Image.Image | BaseException | None] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: Image.Image | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                pending.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for frame in frames:
                if not offer(frame):
                    return
        except BaseException as error:
            offer(error)
            return
        offer(None)

    worker = threading.Thread(target=work, name="flf-frames", daemon=True)
    worker.start()
    try:
        while (item := pending.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def render_first_last(
    first: Path, last: Path, out: Path, *, num_frames: int, fps: int, size: tuple[int, int], seed: int,
    overlay: Image.Image | None = None,
) -> None:
    """Encode `num_frames` frames at `size` that move from `first` to `last` (both cover-resized), with `overlay`
    (as wide as `size`) along the bottom of every frame, drawn after the motion."""
    if num_frames < 2:
        raise MediaError(f"a first-last clip needs at least 2 frames, got {num_frames}")
    start = resize_cover(load_image(first), size)
    end = resize_cover(load_image(last), size)
    if overlay is not None and (overlay.width != size[0] or overlay.height > size[1]):
        raise MediaError(f"a first-last overlay of {overlay.width}x{overlay.height} does not fit {size[0]}x{size[1]}")
    frames = _frames(start, end, num_frames, Move.from_seed(seed), Light(size, seed), overlay)
    with closing(read_ahead(frames, AHEAD)) as ahead:
        encode_frames(ahead, out, fps=fps, size=size, x264=SERVICE_X264)


def render_stuck(first: Path, out: Path, *, num_frames: int, fps: int, size: tuple[int, int]) -> None:
    """A failed generation: `num_frames` copies of `first` (cover-resized), as a video model stuck on its input."""
    start = resize_cover(load_image(first), size)
    encode_frames((start for _ in range(num_frames)), out, fps=fps, size=size, x264=SERVICE_X264)
