"""The price table: one dated, editable TOML file in each service's own units; every cost in reelflow is computed here.

`PriceTable.cost` prices a model from billing quantities (output size, video length, resolution, training steps);
`PriceTable.cost_of` derives those quantities from one of the common requests.
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from reelflow.schemas.errors import ContractError
from reelflow.schemas.requests import (
    EditRequest,
    ImageRequest,
    TrainRequest,
    UpscaleRequest,
    VideoRequest,
    _Request,
)

PRICE_FILE = Path(__file__).with_name("prices.toml")
MEGAPIXEL = 1024 * 1024
TOKEN_PRICE_FIELDS = ("usd_per_1m_input", "usd_per_1m_output", "input_tokens", "output_tokens")

Unit = Literal["image", "megapixel", "second", "step", "call"]
Size = tuple[int, int]


def _error(model: str, what: str) -> ContractError:
    return ContractError(f"prices.toml: model {model!r} {what}")


class Tier(BaseModel):
    """The unit price at one output resolution, and the outputs it covers (by pixel count or longest side)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    usd: float
    max_pixels: int | None = None
    max_side: int | None = None

    def holds(self, size: Size) -> bool | None:
        """Whether an output of `size` falls in this tier; None when the tier has no bound."""
        if self.max_pixels is not None:
            return size[0] * size[1] <= self.max_pixels
        if self.max_side is not None:
            return max(size) <= self.max_side
        return None


class Price(BaseModel):
    """One model's price in its service's unit, with where it was read and when."""

    model_config = ConfigDict(extra="forbid")

    unit: Unit
    usd: float | None = None
    tiers: list[Tier] = []
    default: str | None = None
    source: str
    checked: str
    note: str = ""
    megapixel: int = MEGAPIXEL
    round_up: bool = True
    fps: int | None = None
    min_steps: int = 0
    lora_model: str | None = None
    usd_per_1m_input: float | None = None
    usd_per_1m_output: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None

    @model_validator(mode="after")
    def _one_price(self) -> Self:
        tokens = [getattr(self, name) for name in TOKEN_PRICE_FIELDS]
        if any(value is not None for value in tokens):
            if self.unit != "call" or None in tokens:
                raise ValueError(f"token prices are for unit 'call' and need all of {', '.join(TOKEN_PRICE_FIELDS)}")
            if self.usd is not None or self.tiers:
                raise ValueError("a row has one price: usd, tiers or token prices")
        elif (self.usd is None) == (not self.tiers):
            raise ValueError("a row has one price: usd or tiers")
        if self.tiers and self.default not in {tier.name for tier in self.tiers}:
            raise ValueError(f"default {self.default!r} is not one of the tiers")
        return self

    def unit_usd(self, model: str, resolution: str | None, size: Size | None) -> float:
        """The price of one unit: the row's, the named tier's, the tier the output size falls in, or the default."""
        if self.usd is not None:
            return self.usd
        if self.usd_per_1m_input is not None:
            return (self.input_tokens * self.usd_per_1m_input + self.output_tokens * self.usd_per_1m_output) / 1e6
        if resolution is None and size is not None:
            held = [tier.holds(size) for tier in self.tiers]
            if any(fit is not None for fit in held):
                return next((tier.usd for tier, fit in zip(self.tiers, held) if fit), self.tiers[-1].usd)
        name = resolution or self.default
        tier = next((tier for tier in self.tiers if tier.name == name), None)
        if tier is None:
            raise _error(model, f"has no price at resolution {name!r} (have: {', '.join(t.name for t in self.tiers)})")
        return tier.usd

    def units(self, model: str, *, size: Size | None, frames: int | None, fps: int | None, seconds: float | None,
              steps: int | None) -> float:
        """How many units one call bills: megapixels, seconds, steps, or 1 (an image, a call)."""
        if self.unit == "megapixel":
            if size is None:
                raise _error(model, "is priced per megapixel of output; size missing")
            pixels = size[0] * size[1]
            return -(-pixels // self.megapixel) if self.round_up else pixels / self.megapixel
        if self.unit == "second":
            if seconds is not None:
                return seconds
            rate = self.fps or fps
            if frames is None or not rate:
                raise _error(model, "is priced per second of video; frames (and frame rate) missing")
            return frames / rate
        if self.unit == "step":
            if steps is None:
                raise _error(model, "is priced per training step; steps missing")
            return max(steps, self.min_steps)
        return 1


class PriceTable(BaseModel):
    date: str
    models: dict[str, Price]

    @model_validator(mode="after")
    def _known_lora_models(self) -> Self:
        for model, price in self.models.items():
            if price.lora_model is not None and price.lora_model not in self.models:
                raise ValueError(f"{model}: lora_model {price.lora_model!r} has no row")
        return self

    def price(self, model: str) -> Price:
        price = self.models.get(model)
        if price is None:
            raise _error(model, "has no price")
        return price

    def cost(
        self,
        model: str,
        *,
        size: Size | None = None,
        frames: int | None = None,
        fps: int | None = None,
        seconds: float | None = None,
        resolution: str | None = None,
        steps: int | None = None,
        count: int = 1,
    ) -> float:
        """Cost of `count` calls to `model`, from what its unit needs: output `size` (width, height) for
        megapixels and size tiers, `frames` at `fps` (or `seconds`) for video, `steps` for training."""
        price = self.price(model)
        units = price.units(model, size=size, frames=frames, fps=fps, seconds=seconds, steps=steps)
        return round(price.unit_usd(model, resolution, size) * units * count, 6)

    def token_cost(self, model: str, input_tokens: int, output_tokens: int) -> float | None:
        """What a per-token model bills for the tokens a service reported; None where the model is not priced per
        token (its unit, not the tokens, is what it bills)."""
        price = self.price(model)
        if price.usd_per_1m_input is None or price.usd_per_1m_output is None:
            return None
        return round((input_tokens * price.usd_per_1m_input + output_tokens * price.usd_per_1m_output) / 1e6, 6)

    def cost_of(self, request: _Request, *, model: str | None = None, size: Size | None = None,
                resolution: str | None = None) -> float:
        """Cost of one request at its real size and length. `model` overrides the request's (the endpoint a
        provider routes it to; by default an image request with LoRAs is priced by its row's `lora_model`);
        `size` overrides the output size the request names (an edit's may follow its input image);
        `resolution` names the tier the provider asks for."""
        if model is None:
            model = request.model
            lora_model = self.price(model).lora_model
            if isinstance(request, ImageRequest) and request.loras and lora_model:
                model = lora_model
        if size is None:
            size = request_size(request)
        if isinstance(request, VideoRequest):
            return self.cost(model, size=size, frames=request.num_frames, fps=request.fps, resolution=resolution)
        if isinstance(request, TrainRequest):
            return self.cost(model, steps=request.steps, resolution=resolution)
        return self.cost(model, size=size, resolution=resolution)


def request_size(request: _Request) -> Size | None:
    """The output size a request names: width x height, or None where it names no full size."""
    if isinstance(request, ImageRequest | UpscaleRequest | VideoRequest):
        return request.width, request.height
    if isinstance(request, EditRequest) and request.width and request.height:
        return request.width, request.height
    return None


@cache
def load_prices(path: Path = PRICE_FILE) -> PriceTable:
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    try:
        return PriceTable.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ContractError(f"{path.name}: {where}: {first['msg']}") from None
