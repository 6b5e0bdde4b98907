"""How long the local provider takes per call: a fixed number of seconds, or a profile of real service times.

`REELFLOW_LOCAL_LATENCY=0.5` waits 0.5 s on every call. `REELFLOW_LOCAL_LATENCY=seed/100` waits each call's
service time as the studio measured it on the cloud (the seed notes), divided by 100: a benchmark then runs the
orchestration at the shape of a real render, in a hundredth of the time.
"""

from __future__ import annotations

import math

from reelflow.schemas.errors import ContractError
from reelflow.schemas.requests import (
    EditRequest,
    ImageRequest,
    JudgeRequest,
    TrainRequest,
    UpscaleRequest,
    VideoRequest,
    _Request,
)

LATENCY_VAR = "REELFLOW_LOCAL_LATENCY"
# Service times in seconds: FLUX.2 + LoRA 9 s, an upscale ~10 s, a judge ~2 s, WAN 2.2 FLF 39 s for 49 frames and
# 138 s for 81, a three-pass candidate ~56 s over its three calls, FLUX.2 LoRA training ~30 min.
SEED_SECONDS: dict[type[_Request], float] = {
    ImageRequest: 9.0, UpscaleRequest: 10.0, JudgeRequest: 2.0, EditRequest: 23.0, TrainRequest: 1800.0,
}
WAN_FRAMES = ((49, 39.0), (81, 138.0))


def seed_seconds(request: _Request) -> float:
    """The seed's service time of a request; a video's is interpolated by its frame count (49: 39 s, 81: 138 s)."""
    if isinstance(request, VideoRequest):
        (short, short_s), (long, long_s) = WAN_FRAMES
        return max(1.0, short_s + (request.num_frames - short) * (long_s - short_s) / (long - short))
    return SEED_SECONDS.get(type(request), 0.0)


class Latency:
    """Seconds to wait before a call: fixed, or the seed's service time divided by a factor."""

    def __init__(self, fixed: float = 0.0, divisor: float | None = None) -> None:
        self.fixed, self.divisor = fixed, divisor

    def seconds(self, request: _Request) -> float:
        return seed_seconds(request) / self.divisor if self.divisor else self.fixed

    @classmethod
    def parse(cls, value: str | None) -> Latency:
        """`REELFLOW_LOCAL_LATENCY`: unset or blank (no wait), seconds (e.g. `0.5`), or `seed/N` (N > 0)."""
        text = (value or "").strip()
        if not text:
            return cls()
        if text.startswith("seed/"):
            divisor = _number(text.removeprefix("seed/"), text)
            if divisor <= 0:
                raise ContractError(f"{LATENCY_VAR}: {text!r}: divide the seed's times by a number above 0")
            return cls(divisor=divisor)
        return cls(fixed=_number(text, text))


def _number(raw: str, text: str) -> float:
    try:
        number = float(raw)
    except ValueError:
        raise ContractError(f"{LATENCY_VAR}: {text!r} is not a number of seconds or seed/N") from None
    if not math.isfinite(number) or number < 0:
        raise ContractError(f"{LATENCY_VAR}: {text!r} must be a finite number of seconds >= 0")
    return number
