"""Numbers read from environment variables, with one clear line naming the variable when one is wrong."""

from __future__ import annotations

import math
import os

from reelflow.schemas.errors import ContractError


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
