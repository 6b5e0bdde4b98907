"""One cheap call to the real fal.ai (Z-Image Turbo, one megapixel: about half a cent); skipped unless FAL_KEY is set."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from reelflow.providers.fal import endpoints
from reelflow.providers.fal.hosts import configure_fal_client
from reelflow.providers.fal.provider import FalProvider
from reelflow.schemas.pricing import load_prices
from reelflow.schemas.requests import ImageRequest
from reelflow.state.ledger import Ledger

pytestmark = pytest.mark.skipif(not os.environ.get("FAL_KEY", "").strip(), reason="live fal.ai call: set FAL_KEY to run it")


@pytest.fixture
def real_hosts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("REELFLOW_FAL_QUEUE_URL", "REELFLOW_FAL_REST_URL", "REELFLOW_FAL_CDN_URL", "REELFLOW_FAL_DEADLINE_S"):
        monkeypatch.delenv(name, raising=False)
    yield
    configure_fal_client({})


def test_one_z_image_turbo_call(real_hosts: None, tmp_path: Path) -> None:
    ledger = Ledger.at(tmp_path / ".reelflow")
    request = ImageRequest(model=endpoints.Z_IMAGE_TURBO, prompt="a lighthouse on a cliff at dusk, film still",
                           width=512, height=512, steps=8, seed=1)
    generation = FalProvider.from_env().generate_image(request, tmp_path / "live.png", ticket=ledger.ticket("live", "fal"))
    with Image.open(tmp_path / "live.png") as image:
        assert image.size == (512, 512)
    price = load_prices().cost(endpoints.Z_IMAGE_TURBO, size=(512, 512))
    assert generation.request_id and generation.cost_usd == price > 0
    [row] = ledger.rows()
    assert (row.status, row.request_id, row.cost_usd) == ("completed", generation.request_id, price)
