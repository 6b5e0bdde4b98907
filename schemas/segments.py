"""How a shot's video is made: first-last-frame segments whose frames follow its duration at the video model's rate.

A shot of `duration_s` seconds shows round(duration_s × fps) frames of the model's motion, so its clip plays at
1.00×. The video runs between the shot's keyframe anchors (first → last; a triptych first → hero → last, each half
its share). A run longer than one call allows is made as consecutive segments: each after the first starts on the
last decoded frame of the one before and heads for an intermediate keyframe (`mid1`, `mid2`, … in shot order), the
run's own last anchor ending it. A model makes frame counts of the form step × k + 1 within its range: each segment
gets the fewest frames that cover its share, and the frames past the shot's duration (at most step - 1 per run, more
where a shot is shorter than the model's minimum) are trimmed from the end of the clip, never sped up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from annotated_types import Ge, Le

from reelflow.schemas.wire.fal import WanFlfInput

MID = "mid"  # intermediate keyframes: mid1, mid2, …
SEGMENT = "seg"  # segments, and their asset suffixes: seg1, seg2, …


@dataclass(frozen=True)
class FrameLimits:
    """What one call of a first-last-frame video model makes: frames at `fps`, counts step × k + 1 in min..max."""

    name: str
    fps: int
    min_frames: int
    max_frames: int
    step: int

    @property
    def min_steps(self) -> int:
        return math.ceil((self.min_frames - 1) / self.step)

    @property
    def max_steps(self) -> int:
        return (self.max_frames - 1) // self.step


def _wan22() -> FrameLimits:
    """WAN 2.2 A14B as fal publishes it (schemas/wire/fal.py): num_frames 17..161 made as 4k + 1, 16 fps."""
    fields = WanFlfInput.model_fields
    low = next(m.ge for m in fields["num_frames"].metadata if isinstance(m, Ge))
    high = next(m.le for m in fields["num_frames"].metadata if isinstance(m, Le))
    fps = fields["frames_per_second"].default
    assert isinstance(low, int) and isinstance(high, int) and isinstance(fps, int)
    return FrameLimits(name="WAN 2.2", fps=fps, min_frames=low, max_frames=high, step=4)


WAN22 = _wan22()


@dataclass(frozen=True)
class Segment:
    """One video model call: `frames` frames from the `first` image to the `last` keyframe.

    `first` is a keyframe role, or the name of the segment before whose last decoded frame starts this one.
    """

    name: str
    frames: int
    first: str
    last: str

    @property
    def continues(self) -> str | None:
        """The segment whose last frame this one starts on, if it continues one."""
        return self.first if self.first.startswith(SEGMENT) else None


@dataclass(frozen=True)
class VideoPlan:
    """A shot's segments in order, and how many of their joined frames its clip shows."""

    anchors: tuple[str, ...]  # the approach's own keyframes, in shot order
    duration_s: float
    limits: FrameLimits
    segments: tuple[Segment, ...]

    @property
    def shown(self) -> int:
        """Source frames the clip shows: the shot's duration at the model's rate."""
        return max(1, round(self.duration_s * self.limits.fps))

    @property
    def joined(self) -> int:
        """Frames of the segments joined, each shared boundary frame counted once (0 without segments)."""
        return sum(segment.frames for segment in self.segments) - max(0, len(self.segments) - 1)

    @property
    def trimmed(self) -> int:
        """Frames made past the shot's duration, cut from the end of the clip."""
        return max(0, self.joined - self.shown)

    @property
    def intermediates(self) -> tuple[str, ...]:
        """The intermediate keyframes, in shot order."""
        return tuple(s.last for s in self.segments if s.last.startswith(MID))

    @property
    def keyframe_roles(self) -> tuple[str, ...]:
        """Every keyframe the shot needs, in shot order."""
        if not self.segments:
            return self.anchors
        roles: list[str] = []
        for segment in self.segments:
            roles += [segment.last] if segment.continues else [segment.first, segment.last]
        return tuple(dict.fromkeys(roles))

    def segment(self, name: str) -> Segment:
        """A segment by name (`seg2`)."""
        for segment in self.segments:
            if segment.name == name:
                return segment
        raise KeyError(name)

    def position(self, role: str) -> float:
        """Where a keyframe sits in the joined segments, 0 (first frame) to 1 (last)."""
        offset = 0
        if role == self.segments[0].first:
            return 0.0
        for segment in self.segments:
            offset += segment.frames - 1
            if segment.last == role:
                return offset / max(1, self.joined - 1)
        raise KeyError(role)

    def describe(self) -> str:
        """One line: `1 segment of 65 frames @16 fps`, `2 consecutive segments (113+113 frames, 1 intermediate
        keyframe) @16 fps`, `1 segment of 17 frames @16 fps, trimmed from 17 frames to 13 (at least 17 a segment)`;
        `no video model` for held frames."""
        if not self.segments:
            return "no video model"
        rate = f"@{self.limits.fps} fps"
        if len(self.segments) == 1:
            text = f"1 segment of {self.segments[0].frames} frames {rate}"
        else:
            details = ["+".join(str(segment.frames) for segment in self.segments) + " frames"]
            details += [f"split at the {role} frame" for role in self.anchors[1:-1]]
            count = len(self.intermediates)
            details += [f"{count} intermediate keyframe{'s' if count > 1 else ''}"] if count else []
            kind = "consecutive segments" if any(segment.continues for segment in self.segments) else "segments"
            text = f"{len(self.segments)} {kind} ({', '.join(details)}) {rate}"
        if self.trimmed < self.limits.step:  # the frame counts' rounding: a few frames at the end, never noted
            return text
        return f"{text}, trimmed from {self.joined} frames to {self.shown} (at least {self.limits.min_frames} a segment)"

    def summary(self, label: str, approach: str) -> str:
        """`label approach 4.0 s: ` and describe(), e.g. `S03 standard_flf 4.0 s: 1 segment of 65 frames @16 fps`."""
        seconds = f"{self.duration_s:.1f}" if round(self.duration_s, 1) == self.duration_s else f"{self.duration_s:g}"
        return f"{label} {approach} {seconds} s: {self.describe()}"

    def as_json(self) -> dict[str, Any]:
        """The plan as `validate --json` prints it."""
        return {
            "model": self.limits.name, "fps": self.limits.fps, "frames_shown": self.shown,
            "frames_made": self.joined, "trimmed": self.trimmed, "intermediate_keyframes": list(self.intermediates),
            "segments": [{"name": s.name, "frames": s.frames, "first": s.first, "last": s.last} for s in self.segments],
            "describe": self.describe(),
        }


def _spread(steps: int, limits: FrameLimits) -> list[int]:
    """Frame counts of the fewest segments that cover `steps` steps (each within the model's range), as even as
    the steps allow; a run shorter than the minimum gets one segment of the minimum."""
    steps = max(steps, limits.min_steps)
    count = math.ceil(steps / limits.max_steps)
    base, extra = divmod(steps, count)
    return [(base + (index < extra)) * limits.step + 1 for index in range(count)]


def plan_segments(anchors: tuple[str, ...], duration_s: float, limits: FrameLimits = WAN22) -> VideoPlan:
    """The segments of a shot whose video runs through `anchors` (first, [hero,] last) in `duration_s` seconds;
    none where there is one anchor (a held frame: no video model)."""
    plan = VideoPlan(anchors=anchors, duration_s=duration_s, limits=limits, segments=())
    if len(anchors) < 2:
        return plan
    runs = len(anchors) - 1
    steps = math.ceil((plan.shown - 1) / limits.step)  # joined frames are step × steps + 1
    shares = [steps // runs + (index < steps % runs) for index in range(runs)]
    segments: list[Segment] = []
    mids = 0
    for start, end, share in zip(anchors[:-1], anchors[1:], shares, strict=True):
        counts = _spread(share, limits)
        first = start
        for index, frames in enumerate(counts):
            last = end
            if index < len(counts) - 1:  # an intermediate keyframe ends every segment of a run but its last
                mids += 1
                last = f"{MID}{mids}"
            segments.append(Segment(name=f"{SEGMENT}{len(segments) + 1}", frames=frames, first=first, last=last))
            first = segments[-1].name
    return VideoPlan(anchors=anchors, duration_s=duration_s, limits=limits, segments=tuple(segments))
