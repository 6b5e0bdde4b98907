"""The Gemini model ids reelflow knows, and the request values Gemini documents for them: one table, with sources.

`reelflow validate` refuses a shut-down id in project.json, the Gemini provider refuses a shut-down or unknown
id before any call, and the fake Gemini in `tests/` answers as Google does for anything outside this table.
Edit it when Google's deprecations page changes (and add the new ids' prices to prices.toml).

Sources (checked 2026-11-25; addresses as the search tool gave them):
- DEPRECATIONS, https://ai.google.dev/gemini-api/docs/deprecations?authuser=0&hl=en — gemini-3.1-flash-image and
  gemini-3-pro-image released May 28, 2026, no shutdown announced; gemini-3.1-flash-image-preview and
  gemini-3-pro-image-preview shut down June 25, 2026, replaced by those two; gemini-3.5-flash (May 19, 2026)
  no shutdown announced. https://ai.google.dev/gemini-api/docs/deprecations (an earlier copy) — gemini-2.5-flash-image
  shut down October 2, 2026.
- RETIRING_FLASH, https://dev.to/aideprecations/what-to-do-before-gemini-25-pro-and-25-flash-are-retired-on-december-1-2026-5gg9
  — quoting the deprecations page as read on Nov 10, 2026: gemini-2.5-flash shuts down Dec 1, 2026, recommended
  replacement gemini-3.5-flash-lite (corroborated by https://docs.laozhang.ai/en/announcements/gemini-2-5-flash-pro-retired-2026-11,
  which names gemini-3.5-flash-lite as Google's replacement). Earlier copies of the page gave June 17, 2026 and
  gemini-3-flash-preview; the model kept answering past that date.
- FLASH_LITE, https://ai.google.dev/gemini-api/docs/models/gemini-3.5-flash-lite — stable gemini-3.5-flash-lite:
  text, image, video, audio and PDF in, text out, structured outputs supported (released July 21, 2026 per the
  deprecations page, no shutdown announced).
- IMAGE_CONFIG, google-genai 3.4.0 `types.ImageConfig` (installed; also
  https://googleapis.github.io/java-genai/javadoc/google-genai/com.google.genai.types/-image-config/aspect-ratio.html):
  `aspect_ratio` "1:1", "2:3", "3:2", "3:4", "4:3", "9:16", "16:9", "21:9"; `image_size` "1K", "2K", "4K"
  (default 1K). Image size tiers are documented for the Gemini 3 image models, not for gemini-2.5-flash-image
  (https://hexdocs.pm/gemini_ex/Gemini.Types.GenerationConfig.ImageConfig.html, https://ai.google.dev/gemini-api/docs/nanobanana).
- MODALITIES, google-genai 3.4.0 `types.Modality`: TEXT, IMAGE, AUDIO (VIDEO is not a generateContent output);
  image models answer with IMAGE, or TEXT and IMAGE (https://ai.google.dev/gemini-api/docs/nanobanana).
- SAMPLING: temperature, top_p and top_k are deprecated and ignored for gemini-3.5-flash-lite (and Gemini 3.6 and
  later); gemini-2.5-flash and gemini-3.5-flash still take them — https://github.com/anomalyco/opencode/pull/38924
  quoting https://ai.google.dev/gemini-api/docs/latest-model; https://github.com/ENTERPILOT/GoModel/pull/863 quoting
  Google's Gemini 3 migration guides ("Remove these parameters from all requests").

A row is usable until its shutdown date (compared with `today()`, the UTC date from the clock; tests replace it),
whatever its status says: a "retiring" id stops being sent on the day Google shuts it down.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

CHECKED = "2026-11-25"
DEPRECATIONS = "https://ai.google.dev/gemini-api/docs/deprecations?authuser=0&hl=en"
DEPRECATIONS_EARLIER = "https://ai.google.dev/gemini-api/docs/deprecations"
RETIRING_FLASH = (
    "https://dev.to/aideprecations/what-to-do-before-gemini-25-pro-and-25-flash-are-retired-on-december-1-2026-5gg9"
)
FLASH_LITE = "https://ai.google.dev/gemini-api/docs/models/gemini-3.5-flash-lite"
IMAGE_CONFIG = "google-genai 3.4.0 types.ImageConfig"

Kind = Literal["image", "text"]
Status = Literal["ga", "preview", "retiring", "shut_down"]
AspectRatio = Literal["1:1", "2:3", "3:2", "3:4", "4:3", "9:16", "16:9", "21:9"]
ImageSize = Literal["1K", "2K", "4K"]
Modality = Literal["TEXT", "IMAGE", "AUDIO"]
ASPECT_RATIOS: tuple[str, ...] = AspectRatio.__args__
IMAGE_SIZES: tuple[str, ...] = ImageSize.__args__
MODALITIES: tuple[str, ...] = Modality.__args__
TIERED = IMAGE_SIZES  # the Gemini 3 image models take every documented tier
PREFIX = "gemini-"
MAKES: dict[str, str] = {"image": "images", "text": "text"}


class GeminiModel(BaseModel):
    """One model id: what it makes, whether it still answers, when it stops and what replaces it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    kind: Kind
    status: Status
    shutdown: date | None = None
    replacement: str | None = None
    source: str
    image_sizes: tuple[ImageSize, ...] = ()  # the `imageConfig.imageSize` tiers it takes; () means none is sent
    sampling: bool = False  # it still takes temperature/topP/topK (deprecated and ignored from Gemini 3.5 Flash-Lite on)

    def usable_on(self, day: date) -> bool:
        """Whether the id still answers on `day`: not marked shut down, and before its shutdown date."""
        return self.status != "shut_down" and (self.shutdown is None or day < self.shutdown)

    @property
    def usable(self) -> bool:
        """Whether the id still answers today (`today()`)."""
        return self.usable_on(today())


def today() -> date:
    """The UTC date from the clock, which shutdown dates are compared with (tests replace this function)."""
    return datetime.now(UTC).date()


def _table(*models: GeminiModel) -> dict[str, GeminiModel]:
    return {model.id: model for model in models}


GEMINI_MODELS: dict[str, GeminiModel] = _table(
    GeminiModel(id="gemini-3.1-flash-image", kind="image", status="ga", source=DEPRECATIONS, image_sizes=TIERED),
    GeminiModel(id="gemini-3-pro-image", kind="image", status="ga", source=DEPRECATIONS, image_sizes=TIERED),
    GeminiModel(id="gemini-2.5-flash-image", kind="image", status="shut_down", shutdown=date(2026, 10, 2),
                replacement="gemini-3.1-flash-image", source=DEPRECATIONS_EARLIER),
    GeminiModel(id="gemini-3-pro-image-preview", kind="image", status="shut_down", shutdown=date(2026, 6, 25),
                replacement="gemini-3-pro-image", source=DEPRECATIONS, image_sizes=TIERED),
    GeminiModel(id="gemini-3.1-flash-image-preview", kind="image", status="shut_down", shutdown=date(2026, 6, 25),
                replacement="gemini-3.1-flash-image", source=DEPRECATIONS, image_sizes=TIERED),
    GeminiModel(id="gemini-3.5-flash-lite", kind="text", status="ga", source=FLASH_LITE),
    GeminiModel(id="gemini-3.5-flash", kind="text", status="ga", source=DEPRECATIONS, sampling=True),
    GeminiModel(id="gemini-2.5-flash", kind="text", status="retiring", shutdown=date(2026, 12, 1),
                replacement="gemini-3.5-flash-lite", source=RETIRING_FLASH, sampling=True),
)


def gemini_model(model_id: str) -> GeminiModel | None:
    """The table's row for `model_id`, or None."""
    return GEMINI_MODELS.get(model_id)


def usable_ids(kind: Kind | None = None) -> list[str]:
    """The ids that still answer today (of `kind`, if given), current ones first."""
    rows = [row for row in GEMINI_MODELS.values() if row.usable and (kind is None or row.kind == kind)]
    return [row.id for row in sorted(rows, key=lambda row: row.status == "retiring")]


def shut_down_problem(model_id: str) -> str | None:
    """Why an id shut down (by status, or by its shutdown date being past) cannot be used, naming its replacement;
    None for any other id."""
    row = gemini_model(model_id)
    if row is None or row.usable:
        return None
    when = f" on {row.shutdown.isoformat()}" if row.shutdown else ""
    instead = f"; use {row.replacement}" if row.replacement else ""
    return f"{model_id} was shut down{when}{instead}"


def model_problem(model_id: str, kind: Kind | None = None) -> str | None:
    """Why `model_id` cannot be sent to Gemini (shut down, unknown, or the wrong kind); None when it can."""
    shut = shut_down_problem(model_id)
    if shut is not None:
        return shut
    row = gemini_model(model_id)
    if row is None:
        known = ", ".join(usable_ids(kind))
        return f"{model_id!r} is not a Gemini model reelflow knows (schemas/gemini_models.py; {kind or 'usable'} models: {known})"
    if kind is not None and row.kind != kind:
        return f"{model_id} makes {MAKES[row.kind]}, not {MAKES[kind]} ({kind} models: {', '.join(usable_ids(kind))})"
    return None
