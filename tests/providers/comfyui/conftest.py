"""Fixtures for the ComfyUI client: a started FakeComfyUI, a client pointed at it, small input images."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from reelflow.providers.comfyui.client import ComfyClient
from reelflow.providers.comfyui.models import model_files

from fakes.comfyui import FakeComfyUI


def _picture(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> Path:
    """A small RGB PNG of one colour."""
    Image.new("RGB", size, colour).save(path)
    return path


@pytest.fixture
def picture():  # noqa: ANN201
    """Writes a small one-colour PNG: picture(path, size, colour) -> path."""
    return _picture


@pytest.fixture
def files():  # noqa: ANN201
    """The default model files."""
    return model_files({})


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeComfyUI]:
    """A loopback ComfyUI that has every default model file."""
    with FakeComfyUI(tmp_path / "comfy", run_s=0.05) as server:
        yield server


@pytest.fixture
def client(fake: FakeComfyUI) -> Iterator[ComfyClient]:
    """A client polling the fake every 20 ms."""
    comfy = ComfyClient(fake.url, poll_s=0.02, deadline_s=5.0, timeout_s=2.0)
    yield comfy
    comfy.close()
