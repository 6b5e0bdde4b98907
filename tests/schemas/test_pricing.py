from pathlib import Path

import pytest

from reelflow.schemas.errors import ContractError
from reelflow.schemas.pricing import load_prices


def test_seeded_prices() -> None:
    prices = load_prices()
    assert prices.date == "2026-11-24"
    assert prices.cost("fal-ai/flux-2/lora") == 0.02
    assert prices.cost("fal-ai/z-image/turbo") == 0.004
    assert prices.cost("fal-ai/wan/v2.2-a14b/image-to-video/lora", frames=49) == 0.04
    assert prices.cost("fal-ai/wan/v2.2-a14b/image-to-video/lora", frames=81) == 0.08
    assert prices.cost("gemini-2.5-flash-image", count=3) == pytest.approx(0.117)


def test_unpriced_model_and_frames_beyond_the_tiers_are_errors() -> None:
    prices = load_prices()
    with pytest.raises(ContractError, match="no price"):
        prices.cost("acme/unknown")
    with pytest.raises(ContractError, match="above 81 frames"):
        prices.cost("fal-ai/wan/v2.2-a14b/image-to-video/lora", frames=121)


def test_edited_table_is_read(tmp_path: Path) -> None:
    table = tmp_path / "prices.toml"
    table.write_text('date = "2027-01-01"\n[models."x/y"]\nunit = "image"\nusd = 0.5\n')
    assert load_prices(table).cost("x/y", count=2) == 1.0


def test_training_is_priced_per_thousand_steps() -> None:
    assert load_prices().cost("fal-ai/z-image-trainer", steps=2000) == 1.7
    with pytest.raises(ContractError, match="steps missing"):
        load_prices().cost("fal-ai/flux-2-trainer")
