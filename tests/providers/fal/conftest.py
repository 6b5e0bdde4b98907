"""Fixtures for the fal provider: a started FakeFal, a provider pointed at it, a ledger, small input files."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from reelflow.media.images import save_png
from reelflow.providers.fal.hosts import configure_fal_client
from reelflow.providers.fal.provider import FalProvider
from reelflow.state.ledger import Ledger

from fakes.fal import FakeFal

ENV = ("FAL_KEY", "REELFLOW_FAL_QUEUE_URL", "REELFLOW_FAL_REST_URL", "REELFLOW_FAL_CDN_URL",
       "REELFLOW_FAL_POLL_S", "REELFLOW_FAL_DEADLINE_S")


def picture(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> Path:
    """A small RGB test image: a horizontal ramp tinted by `colour`."""
    ramp = Image.linear_gradient("L").rotate(90).resize(size)
    save_png(Image.merge("RGB", [ramp.point(lambda value, c=c: (value + c) // 2) for c in colour]), path)
    return path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No fal settings from the outer environment; fal-client's hosts put back afterwards."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    yield
    configure_fal_client({})


@pytest.fixture
def fake(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeFal]:
    with FakeFal() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        yield server


@pytest.fixture
def provider(fake: FakeFal) -> FalProvider:
    return FalProvider.from_env()


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger.at(tmp_path / ".reelflow")


@pytest.fixture
def portrait(tmp_path: Path) -> Path:
    return picture(tmp_path / "in" / "portrait.png", (48, 80), (200, 40, 40))


@pytest.fixture
def ending(tmp_path: Path) -> Path:
    return picture(tmp_path / "in" / "ending.png", (48, 80), (40, 40, 200))


@pytest.fixture
def dataset(tmp_path: Path, portrait: Path) -> Path:
    """A zip of two captioned images, as the training stage writes it."""
    path = tmp_path / "in" / "ana.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for index in range(2):
            archive.write(portrait, f"ana_{index}.png")
            archive.writestr(f"ana_{index}.txt", "ana_v1, a pilot")
    return path
