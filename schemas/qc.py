"""QC gates: Gate 1 thresholds and findings, and how keyframes are routed on Gate 2 scores."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Route = Literal["pass", "reject", "review"]


class Gate1Thresholds(BaseModel):
    """Every Gate 1 threshold in one place; the defaults are tuned for production keyframes and clips."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Images: all statistics are on 8-bit luma (0-255).
    uniform_min_std: float = Field(
        4.0, gt=0, description="an image whose luma standard deviation is below this is blank / near-uniform"
    )
    analysis_long_side: int = Field(
        512, ge=64, description="images are resized to this long side before the blur check, so it is size-independent"
    )
    blur_min_laplacian_var: float = Field(
        40.0, gt=0, description="variance of the 4-neighbour Laplacian of the resized luma below this is blurry"
    )
    clip_low: int = Field(2, ge=0, le=255, description="luma at or below this counts as crushed black")
    clip_high: int = Field(253, ge=0, le=255, description="luma at or above this counts as blown white")
    clipped_max_fraction: float = Field(
        0.25, ge=0, le=1, description="more than this fraction of crushed or blown pixels is clipped exposure"
    )
    size_tolerance_px: int = Field(
        0, ge=0, description="largest allowed difference of width or height from the expected size, in pixels"
    )
    aspect_tolerance: float = Field(
        0.01, ge=0, description="largest allowed relative difference of width/height from the expected aspect"
    )
    # Split triptych panels: the outer band of each panel along the split axis is searched for leftovers.
    gutter_edge_fraction: float = Field(
        0.05, gt=0, le=0.5, description="fraction of the panel's width (vertical) or height (horizontal) searched at each edge"
    )
    gutter_min_px: int = Field(4, ge=2, description="the searched edge band is at least this many pixels")
    gutter_flat_std: float = Field(
        4.0, gt=0, description="a column (row) in the edge band whose luma std is below this is a flat gutter line"
    )
    gutter_min_contrast: float = Field(
        12.0, ge=0, description="a flat line counts as gutter only if its mean luma differs this much from the panel "
        "just inside the searched band (a clear sky running in from the edge is not a gutter)"
    )
    gutter_max_flat_lines: int = Field(
        2, ge=1, description="this many flat columns (rows) in one edge band or more is a leftover gutter"
    )
    seam_min_step: float = Field(
        20.0, gt=0, description="a luma step of at least this between neighbouring columns (rows) counts toward a seam"
    )
    seam_max_coverage: float = Field(
        0.8, gt=0, le=1, description="a same-sign step along at least this fraction of the panel's length is a seam line"
    )
    # First/last frame pairs.
    pair_min_hamming: int = Field(
        5, ge=0, le=64, description="first and last frames whose 64-bit dHash distance is below this are near-identical"
    )
    # Videos: frames are decoded to 64x64 luma.
    black_max_luma: float = Field(20.0, ge=0, le=255, description="a frame whose mean luma is below this is black")
    black_max_frames: int = Field(
        8, ge=1, description="a run of this many consecutive black frames or more fails the clip"
    )
    frozen_max_diff: float = Field(
        0.25, ge=0, description="consecutive frames whose mean absolute luma difference is below this are frozen "
        "(about ffmpeg freezedetect's -60 dB noise: encoder noise on a held frame stays under it)"
    )
    frozen_max_s: float = Field(
        1.0, gt=0, description="frozen frames lasting this long or more fail a generated video (an eased camera move "
        "may start slower than the noise level for a fraction of a second)"
    )
    frames_tolerance: int = Field(1, ge=0, description="largest allowed difference from the expected frame count")
    fps_tolerance: float = Field(0.01, ge=0, description="largest allowed difference from the expected frame rate")
    duration_tolerance_s: float = Field(
        0.1, ge=0, description="largest allowed difference from the expected duration, in seconds"
    )


class Gate1Finding(BaseModel):
    """One check's outcome: the measured value, the threshold it was held to and a one-line message."""

    model_config = ConfigDict(frozen=True)

    check: str
    passed: bool
    value: float
    threshold: float
    message: str


class Gate1Report(BaseModel):
    """Every finding of Gate 1 for one subject (a file, or a pair of files)."""

    model_config = ConfigDict(frozen=True)

    subject: str
    findings: list[Gate1Finding] = Field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when no check failed."""
        return all(finding.passed for finding in self.findings)

    @property
    def failures(self) -> list[Gate1Finding]:
        """The findings that failed, in check order."""
        return [finding for finding in self.findings if not finding.passed]

    def finding(self, check: str) -> Gate1Finding:
        """The finding of the named check; KeyError when that check did not run."""
        for found in self.findings:
            if found.check == check:
                return found
        raise KeyError(check)


class Routing(BaseModel):
    """How a try of a shot's keyframes is routed: project.json `qc` may set any of these.

    A Gate 1 failure or a Gate 2 score below `reject_below` rejects the try, which is made again with a new
    seed up to `max_regenerations` times; a score of `pass_at` or more passes; anything between goes to review.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    pass_at: float = Field(0.6, ge=0, le=1, description="the lowest Gate 2 score of every keyframe that auto-passes")
    reject_below: float = Field(0.4, ge=0, le=1, description="a keyframe scoring below this is auto-rejected")
    max_regenerations: int = Field(2, ge=0, le=10, description="new-seed tries after the first, before the shot fails")
    require_gate2: bool = Field(True, description="false: a try Gate 2 could not judge passes on Gate 1 alone")
    gate1: Gate1Thresholds = Field(default_factory=Gate1Thresholds,
                                   description="Gate 1 and Clip QC thresholds; any of them may be set")

    def route(self, gate1_failures: list[str], scores: list[float]) -> Route:
        """`reject`, `pass` or `review` for one try; a try Gate 2 could not judge (no scores) is never waved through."""
        if gate1_failures:
            return "reject"
        if not scores:
            return "review" if self.require_gate2 else "pass"
        lowest = min(scores)
        if lowest < self.reject_below:
            return "reject"
        return "pass" if lowest >= self.pass_at else "review"
