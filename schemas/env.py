"""Settings read from environment variables: numbers (one clear line naming the variable when one is wrong) and
REELFLOW_HOME."""

from __future__ import annotations

import math
import os
from pathlib import Path

from reelflow.schemas.errors import ContractError


def reelflow_home() -> Path:
    """This machine's reelflow folder: REELFLOW_HOME, else ~/.reelflow."""
    return Path(os.environ.get("REELFLOW_HOME") or Path.home() / ".reelflow").expanduser().absolute()


def env_number(name: str, default: float, *, positive: bool = False) -> float:
    """`name` as a finite number (unset or blank: `default`); negative, or zero when `positive`, is an error."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ContractError(f"{name}: {raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ContractError(f"{name}: {raw!r} must be {'more than 0' if positive else '0 or more'}")
    return value


FRAME_SCALE_VAR = "REELFLOW_FRAME_SCALE"


def scaled_sizes(sizes: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """`sizes` times `REELFLOW_FRAME_SCALE` (default 1: the product's sizes), each side even and at least 16 px.

    For benchmarks and tests only: at 1/16 the pictures cost next to nothing, so a run measures orchestration.
    """
    scale = env_number(FRAME_SCALE_VAR, 1.0, positive=True)
    if scale > 1:
        raise ContractError(f"{FRAME_SCALE_VAR}: {scale} must be at most 1")
    if scale == 1:
        return dict(sizes)
    return {key: (max(16, round(w * scale / 2) * 2), max(16, round(h * scale / 2) * 2)) for key, (w, h) in sizes.items()}
