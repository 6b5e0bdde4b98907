"""The price table: each unit, tier selection, rounding, derivation from requests, and its errors."""

from pathlib import Path

import pytest

from reelflow.providers.gemini.wire import IMAGE_SIZES
from reelflow.schemas.errors import ContractError
from reelflow.schemas.pricing import load_prices
from reelflow.schemas.requests import (
    EditRequest,
    ImageRequest,
    JudgeRequest,
    LoraRef,
    TrainRequest,
    UpscaleRequest,
    VideoRequest,
)

FLUX = "fal-ai/flux-2/lora"
WAN = "fal-ai/wan/v2.2-a14b/image-to-video/lora"
PRO_IMAGE = "gemini-3-pro-image"
FLASH_IMAGE = "gemini-3.1-flash-image"
NANO = "fal-ai/nano-banana-pro/edit"


def write_table(tmp_path: Path, rows: str) -> Path:
    table = tmp_path / "prices.toml"
    table.write_text(f'date = "2027-01-01"\n{rows}')
    return table


def test_every_row_names_its_source_and_the_date_it_was_checked() -> None:
    prices = load_prices()
    assert prices.date == "2026-11-25"
    for model, price in prices.models.items():
        assert price.source.startswith("https://"), model
        assert len(price.checked) == 10 and price.checked <= prices.date, model


def test_megapixels_are_whole_1024x1024_megapixels_rounded_up() -> None:
    prices = load_prices()
    assert prices.cost(FLUX, size=(1024, 1024)) == 0.021  # exactly one megapixel
    assert prices.cost(FLUX, size=(576, 1024)) == 0.021  # a keyframe: 0.56 MP is billed as 1
    assert prices.cost(FLUX, size=(1536, 912)) == 0.042  # a triptych strip: 1.34 MP is billed as 2
    assert prices.cost(FLUX, size=(1025, 1024)) == 0.042  # one column past a megapixel is a second one
    assert prices.cost("fal-ai/z-image/turbo", size=(768, 1344), count=3) == 0.015


def test_a_row_can_bill_exact_megapixels(tmp_path: Path) -> None:
    table = write_table(tmp_path, '[models."x/mp"]\nunit = "megapixel"\nusd = 1.0\nmegapixel = 1000000\nround_up = false\n'
                                  'source = "https://example.com"\nchecked = "2027-01-01"\n')
    assert load_prices(table).cost("x/mp", size=(1000, 1500)) == 1.5


def test_video_is_priced_per_second_at_the_rate_the_service_bills() -> None:
    prices = load_prices()
    assert prices.cost(WAN, frames=81, fps=24) == 0.405  # fal counts WAN seconds at 16 fps: 81 frames are 5.0625 s
    assert prices.cost(WAN, frames=49, fps=16) == 0.245
    assert prices.cost(WAN, seconds=5, resolution="480p") == 0.2
    assert prices.cost(WAN, seconds=5, resolution="580p") == 0.3


def test_a_video_row_without_its_own_rate_uses_the_requests(tmp_path: Path) -> None:
    table = write_table(tmp_path, '[models."x/clip"]\nunit = "second"\nusd = 0.1\n'
                                  'source = "https://example.com"\nchecked = "2027-01-01"\n')
    assert load_prices(table).cost("x/clip", frames=48, fps=24) == 0.2
    with pytest.raises(ContractError, match="per second of video; frames"):
        load_prices(table).cost("x/clip", frames=48)


def test_image_tiers_follow_the_output_size_or_the_resolution_named() -> None:
    prices = load_prices()
    assert prices.cost(PRO_IMAGE, size=(768, 1344)) == 0.134  # 1K: up to 1024 x 1024 pixels
    assert prices.cost(PRO_IMAGE, size=(2048, 2048)) == 0.134  # 2K
    assert prices.cost(PRO_IMAGE, size=(2049, 2048)) == 0.24  # 4K
    assert prices.cost(PRO_IMAGE, size=(8000, 8000)) == 0.24  # above every tier: the largest
    assert prices.cost(FLASH_IMAGE, size=(1536, 1536)) == 0.101
    assert prices.cost(FLASH_IMAGE, resolution="4K") == 0.151
    assert prices.cost(FLASH_IMAGE) == 0.067  # neither size nor resolution: the row's default tier
    assert prices.cost(NANO, size=(2048, 900)) == 0.15 and prices.cost(NANO, size=(2049, 900)) == 0.3  # by longest side
    assert prices.cost("gemini-2.5-flash-image", size=(4096, 4096), count=3) == pytest.approx(0.117)  # one price


def test_gemini_tiers_hold_what_the_provider_asks_for() -> None:
    for model in (PRO_IMAGE, FLASH_IMAGE, "gemini-3-pro-image-preview", "gemini-3.1-flash-image-preview"):
        tiers = {tier.name: tier.max_pixels for tier in load_prices().price(model).tiers}
        assert tiers == dict(IMAGE_SIZES), model


def test_training_is_priced_per_step_with_a_minimum() -> None:
    prices = load_prices()
    assert prices.cost("fal-ai/z-image-trainer", steps=2000) == 4.52
    assert prices.cost("fal-ai/z-image-trainer", steps=50) == 0.226  # 100 steps are the least fal bills
    assert prices.cost("fal-ai/flux-2-trainer", steps=1000) == 6.4
    assert prices.cost("fal-ai/wan-22-image-trainer", steps=1000) == 4.5
    with pytest.raises(ContractError, match="steps missing"):
        prices.cost("fal-ai/flux-2-trainer")


def test_a_judge_call_is_priced_from_its_token_budget() -> None:
    prices = load_prices()
    assert prices.cost("gemini-2.5-flash") == 0.0017  # 1500 tokens in at $0.30/M, 500 out at $2.50/M
    assert prices.cost("gemini-3.5-flash-lite", count=10) == 0.017
    assert prices.cost("gemini-3.5-flash") == 0.00675


def test_costs_derive_from_each_request() -> None:
    prices = load_prices()
    image = ImageRequest(model=FLUX, prompt="p", width=1536, height=912)
    assert prices.cost_of(image) == 0.042
    assert prices.cost_of(image.model_copy(update={"model": "fal-ai/z-image/turbo"})) == 0.01
    with_lora = image.model_copy(update={"model": "fal-ai/z-image/turbo", "loras": (LoraRef(path="a"),)})
    assert prices.cost_of(with_lora) == 0.017  # priced as the LoRA endpoint fal sends it to
    assert prices.cost_of(with_lora, model="fal-ai/z-image/turbo") == 0.01  # unless the provider says otherwise
    video = VideoRequest(model=WAN, first=Path("a.png"), last=Path("b.png"), prompt="p", num_frames=33, fps=24,
                         width=720, height=1280)
    assert prices.cost_of(video) == 0.165 and prices.cost_of(video, resolution="480p") == 0.0825
    upscale = UpscaleRequest(model=PRO_IMAGE, image=Path("a.png"), width=2048, height=3584)
    assert prices.cost_of(upscale) == 0.24
    assert prices.cost_of(TrainRequest(model="fal-ai/flux-2-trainer", images_zip=Path("d.zip"), trigger="t", steps=500)) == 3.2
    assert prices.cost_of(JudgeRequest(model="gemini-2.5-flash", image=Path("a.png"), prompt="p")) == 0.0017
    edit = EditRequest(model="fal-ai/qwen-image-edit-2511-multiple-angles", image=Path("a.png"), prompt="p")
    with pytest.raises(ContractError, match="per megapixel of output; size missing"):
        prices.cost_of(edit)  # its output size follows an input image the table does not read
    assert prices.cost_of(edit, size=(1024, 1024)) == 0.035
    assert prices.cost_of(edit.model_copy(update={"width": 2048, "height": 1024})) == 0.07


def test_an_unpriced_model_and_an_unknown_tier_are_one_line_errors() -> None:
    prices = load_prices()
    with pytest.raises(ContractError, match=r"^prices.toml: model 'acme/unknown' has no price$"):
        prices.cost("acme/unknown")
    with pytest.raises(ContractError, match=r"has no price at resolution '1080p' \(have: 480p, 580p, 720p\)"):
        prices.cost(WAN, frames=81, resolution="1080p")
    with pytest.raises(ContractError, match="size missing"):
        prices.cost(FLUX)


def test_edited_table_is_read(tmp_path: Path) -> None:
    table = write_table(tmp_path, '[models."x/y"]\nunit = "image"\nusd = 0.5\n'
                                  'source = "https://example.com"\nchecked = "2027-01-01"\n')
    assert load_prices(table).cost("x/y", count=2) == 1.0


@pytest.mark.parametrize(("row", "problem"), [
    ('unit = "image"\nusd = 0.5\nchecked = "2027-01-01"\n', "source: Field required"),
    ('unit = "image"\nsource = "https://a"\nchecked = "2027-01-01"\n', "one price: usd or tiers"),
    ('unit = "liter"\nusd = 1\nsource = "https://a"\nchecked = "2027-01-01"\n', "unit"),
    ('unit = "image"\ntiers = [{ name = "1K", usd = 1 }]\ndefault = "2K"\nsource = "https://a"\nchecked = "2027-01-01"\n',
     "default '2K' is not one of the tiers"),
    ('unit = "image"\nusd_per_1m_input = 1.0\nsource = "https://a"\nchecked = "2027-01-01"\n', "token prices"),
    ('unit = "image"\nusd = 1\nper = 1000\nsource = "https://a"\nchecked = "2027-01-01"\n', "Extra inputs"),
])
def test_a_malformed_row_is_a_one_line_contract_error(tmp_path: Path, row: str, problem: str) -> None:
    table = write_table(tmp_path, f'[models."x/y"]\n{row}')
    with pytest.raises(ContractError, match=f"^prices.toml: models.x/y.*{problem}") as caught:
        load_prices(table)
    assert "\n" not in str(caught.value)
