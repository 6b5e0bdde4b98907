"""Against the real Gemini API, only when GEMINI_API_KEY is set: one 1K image (about $0.07) and one judgement."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reelflow.media.images import load_image
from reelflow.providers.gemini.provider import GeminiProvider
from reelflow.schemas.pricing import load_prices
from reelflow.schemas.requests import ImageRequest, JudgeRequest
from reelflow.state.ledger import Ledger

pytestmark = pytest.mark.skipif(not os.environ.get("GEMINI_API_KEY"), reason="GEMINI_API_KEY is not set")


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch) -> GeminiProvider:
    monkeypatch.delenv("REELFLOW_GEMINI_BASE_URL", raising=False)
    return GeminiProvider.from_env()


def test_generate_then_judge_for_real(live: GeminiProvider, tmp_path: Path) -> None:
    ledger = Ledger.at(tmp_path / ".reelflow")
    prompt = "A red lighthouse on a rocky island at dusk, cinematic, no text"
    out = tmp_path / "lighthouse.png"
    model = live.default_models["keyframes"]
    generation = live.generate_image(
        ImageRequest(model=model, prompt=prompt, width=384, height=672), out, ticket=ledger.ticket("live-image", "gemini"),
    )
    price = load_prices().cost(model, resolution="1K")
    assert load_image(out).size == (384, 672)
    assert generation.cost_usd == price and generation.request_id
    [row] = ledger.rows()
    assert (row.status, row.cost_usd) == ("completed", price)

    verdict = live.judge_image(JudgeRequest(model=live.default_models["qc"], image=out, prompt=prompt))
    assert 0.0 <= verdict.score <= 1.0 and verdict.passed == (verdict.score >= 0.6)
