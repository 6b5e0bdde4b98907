"""The price table: one dated, editable TOML file; every cost in reelflow is computed here."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

from pydantic import BaseModel

from reelflow.schemas.errors import ContractError

PRICE_FILE = Path(__file__).with_name("prices.toml")


class Tier(BaseModel):
    max_frames: int
    usd: float


class Price(BaseModel):
    """Per call (`usd`), per clip length (`tiers`) or per training steps (`usd_per_1000_steps`)."""

    unit: str
    usd: float | None = None
    tiers: list[Tier] = []
    usd_per_1000_steps: float | None = None


class PriceTable(BaseModel):
    date: str
    models: dict[str, Price]

    def cost(self, model: str, *, count: int = 1, frames: int | None = None, steps: int | None = None) -> float:
        """Cost of `count` calls to `model`; clips are priced by frame-count tier, training by steps."""
        price = self.models.get(model)
        if price is None:
            raise ContractError(f"prices.toml: model {model!r} has no price")
        if price.tiers:
            if frames is None:
                raise ContractError(f"prices.toml: model {model!r} is priced per clip length; frames missing")
            tier = next((t for t in sorted(price.tiers, key=lambda t: t.max_frames) if frames <= t.max_frames), None)
            if tier is None:
                raise ContractError(f"prices.toml: model {model!r} has no price above {price.tiers[-1].max_frames} frames")
            return round(tier.usd * count, 6)
        if price.usd_per_1000_steps is not None:
            if steps is None:
                raise ContractError(f"prices.toml: model {model!r} is priced per training step; steps missing")
            return round(price.usd_per_1000_steps * steps / 1000 * count, 6)
        return round((price.usd or 0.0) * count, 6)


@cache
def load_prices(path: Path = PRICE_FILE) -> PriceTable:
    with path.open("rb") as handle:
        return PriceTable.model_validate(tomllib.load(handle))
