"""The pick page in real Chromium: keys and clicks select, the count, diversity and duplicate warnings follow, Save saves."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from reelflow.schemas.characters import CandidateManifest
from reelflow.state.candidates import manifest_path, write_candidates
from reelflow.web.pick_server import PickServer

from candidates_fixture import HOSTILE, TWINS, make_candidates


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PickServer]:
    make_candidates(tmp_path)
    with PickServer(tmp_path, "JINX") as pick:
        yield pick


def name(index: int) -> str:
    """The file of candidate `index` (0-based; row index // 4, column index % 4 in file order)."""
    return f"JINX_{index + 1:02d}.png"


def card(page: Page, index: int) -> Locator:
    return page.locator(f'.card[data-file="{name(index)}"]')


def has_class(locator: Locator, name: str) -> None:
    expect(locator).to_have_class(re.compile(rf"(^|\s){name}(\s|$)"))


def saved(server: PickServer) -> list[str]:
    manifest = CandidateManifest.model_validate_json(manifest_path(server.root, "JINX").read_bytes())
    assert manifest.selected_by == "pick page"
    return [candidate.file for candidate in manifest.selected()]


def counted(page: Page, selected: int, state: str) -> None:
    expect(page.locator("#count")).to_have_text(f"{selected} selected · aim 15–25")
    expect(page.locator("#count")).to_have_class(state)


def diversity(page: Page, backgrounds: int, wardrobes: int, expressions: int, angles: int, warnings: list[str]) -> None:
    expect(page.locator("#n-backgrounds")).to_have_text(str(backgrounds))
    expect(page.locator("#n-wardrobes")).to_have_text(str(wardrobes))
    expect(page.locator("#n-expressions")).to_have_text(str(expressions))
    expect(page.locator("#n-angles")).to_have_text(str(angles))
    expect(page.locator("#diversity .warning")).to_have_text(warnings)


def test_keys_select_and_the_panels_follow_then_save_saves_exactly_the_selection(server: PickServer, watched) -> None:
    page = watched.page
    page.goto(server.url)
    page.locator("#grid").focus()
    has_class(card(page, 0), "focused")
    counted(page, 0, "low")
    expect(page.locator("#diversity .aim")).to_have_text(["aim ≥5", "aim 3–5", "aim 5–7", "aim ≥3"])
    diversity(page, 0, 0, 0, 0, ["0 backgrounds (aim for at least 5)", "0 wardrobes (aim for 3–5)",
                                 "0 expressions (aim for 5–7)", "0 angles (aim for at least 3)"])

    page.keyboard.press("Space")  # 0: loft, front, neutral, oilskin
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")  # 1: loft, three-quarter left, smirk, suit
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Space")  # 5: rooftop, three-quarter left, neutral, coveralls
    expect(card(page, 5)).to_have_attribute("aria-pressed", "true")
    counted(page, 3, "low")
    diversity(page, 2, 3, 2, 2, ["2 backgrounds (aim for at least 5)", "2 expressions (aim for 5–7)",
                                 "2 angles (aim for at least 3)"])
    page.keyboard.press("Space")  # 5 again: deselected
    has_class(card(page, 5), "focused")
    expect(card(page, 5)).to_have_attribute("aria-pressed", "false")
    counted(page, 2, "low")

    for key in ("ArrowRight", "ArrowDown", "ArrowDown", "ArrowDown", "ArrowLeft"):  # 6, 10, 14, 18, 17
        page.keyboard.press(key)
        page.keyboard.press("Space")
    counted(page, 7, "low")
    diversity(page, 5, 3, 5, 3, [])
    expect(page.locator("#duplicates")).to_be_hidden()

    for key in ("ArrowUp", "ArrowUp", "ArrowUp", "ArrowUp", "ArrowUp", "ArrowRight"):  # 13, 9, 5, 1, (top row), 2
        page.keyboard.press(key)
    has_class(card(page, TWINS[0]), "focused")
    page.keyboard.press("Space")
    expect(page.locator("#duplicates")).to_be_hidden()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    expect(page.locator("#duplicates")).to_be_visible()
    expect(page.locator("#duplicates li")).to_have_text([f"{name(TWINS[0])} ≈ {name(TWINS[1])} (0 bits apart)"])
    has_class(card(page, TWINS[0]), "near-duplicate")
    page.keyboard.press("Enter")
    expect(page.locator("#duplicates")).to_be_hidden()
    page.keyboard.press("Enter")
    expect(page.locator("#duplicates")).to_be_visible()
    counted(page, 9, "low")

    for index in (4, 7, 8, 11, 12, 15):
        card(page, index).click()
    counted(page, 15, "ok")
    expect(page.locator("#status")).to_have_text("unsaved changes")
    page.locator("#save").click()
    expect(page.locator("#status")).to_have_text("saved 15")
    assert saved(server) == [name(i) for i in sorted((0, 1, 2, 3, 4, 6, 7, 8, 10, 11, 12, 14, 15, 17, 18))]

    card(page, 4).click()
    counted(page, 14, "low")
    page.keyboard.press("Control+s")
    expect(page.locator("#status")).to_have_text("saved 14")
    assert name(4) not in saved(server) and len(saved(server)) == 14
    assert watched.errors == [] and watched.dialogs == [] and watched.outside == []


def test_filters_and_sort_order_the_grid_the_keys_walk_and_text_stays_text(server: PickServer, watched) -> None:
    page = watched.page
    page.goto(server.url)
    page.wait_for_function("document.querySelector('.card img').naturalWidth === 64")
    expect(card(page, 1).locator(".lighting")).to_have_text(f"lighting {HOSTILE}")
    assert page.evaluate("document.querySelectorAll('.card b, .card script').length") == 0

    page.locator("#filter-location").select_option("alley")  # 8..11
    page.locator("#sort").select_option("expression")
    visible = page.locator(".card:visible")
    expect(visible).to_have_count(4)
    assert [c.get_attribute("data-file") for c in visible.all()] == [name(i) for i in (8, 10, 11, 9)]
    page.locator("#grid").focus()
    has_class(card(page, 8), "focused")
    page.keyboard.press("ArrowDown")  # no row below: stays
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Space")
    has_class(card(page, 10), "focused")
    has_class(card(page, 10), "selected")

    page.locator("#filter-location").select_option("")
    page.locator("#filter-angle").select_option("back")
    expect(visible).to_have_count(5)
    counted(page, 1, "low")

    manifest = CandidateManifest.model_validate_json(manifest_path(server.root, "JINX").read_bytes())
    manifest.candidates = [c for c in manifest.candidates if c.file != name(10)]
    write_candidates(server.root, manifest)
    page.locator("#save").click()
    expect(page.locator("#status")).to_have_text("pick page: JINX_11.png: not a candidate of JINX")
    expect(page.locator("#status")).to_have_class("error")
    assert watched.errors == [] and watched.dialogs == []
