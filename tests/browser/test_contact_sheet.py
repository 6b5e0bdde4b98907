"""The previz contact sheet of the example's EP1 in real Chromium: every card and image loads, user text stays text."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from conftest import run_cli

EXAMPLE = Path(__file__).parents[2] / "examples" / "leviathan"
HOSTILE = ' <script>alert(1)</script> & "quotes" </script>'
SHOTS = 21


@pytest.fixture(scope="module")
def sheet(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Path:
    root = tmp_path_factory.mktemp("sheet") / "leviathan"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("assets", ".reelflow", "previz"))
    path = root / "storyboards" / "storyboard_ep_001.json"
    board = json.loads(path.read_text())
    board["shots"][0]["first_frame_prompt"] += HOSTILE
    path.write_text(json.dumps(board))
    result = run_cli("previz", str(root), "--episode", "1", "--json")
    assert result.code == 0, result.stderr
    return Path(result.json()["html"])


def test_every_card_and_image_loads_and_the_page_is_drawn(sheet: Path, watched, tmp_path: Path) -> None:
    page = watched.page
    page.goto(sheet.as_uri())
    cards = page.locator(".card")
    assert cards.count() == SHOTS
    for image in page.locator(".card img").all():
        image.scroll_into_view_if_needed()
    page.wait_for_function("[...document.images].every((image) => image.complete)", timeout=10_000)
    widths = page.eval_on_selector_all(".card img", "images => images.map((image) => image.naturalWidth)")
    assert len(widths) == SHOTS and all(width == 512 for width in widths), widths
    assert page.locator(".card .shot").all_inner_texts() == [f"S{n:02d}" for n in range(1, SHOTS + 1)]

    shot = tmp_path / "contact_sheet.png"
    page.screenshot(path=str(shot), full_page=True)
    with Image.open(shot) as image:
        assert image.width == 1280 and image.height > 2000
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 1000
        assert max(count for count, _ in colours) < 0.8 * image.width * image.height


def test_a_prompt_with_markup_is_shown_as_literal_text(sheet: Path, watched) -> None:
    page = watched.page
    page.goto(sheet.as_uri())
    prompt = page.locator(".card").first.locator(".prompt").inner_text()
    assert prompt.endswith(HOSTILE.strip())
    assert page.locator("script").count() == 0
    assert page.evaluate("document.querySelectorAll('.prompt *').length") == 0
    assert watched.dialogs == []
