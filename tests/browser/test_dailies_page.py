"""The dailies page in real Chromium on a rendered project: keys decide, notes save as text, images and clips load."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from reelflow.schemas.load import load_project, load_storyboard
from reelflow.state.dailies import changing_dailies, now
from reelflow.web.dailies_server import DailiesServer

from conftest import run_cli
from projects import dailies_path, saved, storyboard, write_project

RENDERED = (3, 4)
PROMPT = 'Empty hold, lights swinging </script><script>alert(1)</script> & "q"'
NOTE = '<b>bold</b> & "q" ran'


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Path:
    """The test project with shots 3 and 4 rendered (the cheap ones); shots 1 and 2 stay pending."""
    board = storyboard()
    board["shots"][2]["first_frame_prompt"] = PROMPT
    root = write_project(tmp_path_factory.mktemp("dailies") / "proj", board)
    result = run_cli("render", str(root), "--episode", "1", "--shots", ",".join(map(str, RENDERED)), "--json")
    assert result.code == 0, result.stderr
    folder = load_project(root)
    with changing_dailies(folder, load_storyboard(folder, 1)) as dailies:
        for number in RENDERED:
            if dailies.shot(number).status == "pending":
                dailies.shot(number).rendered(1, "pass", at=now())
    return root


@pytest.fixture
def project(rendered: Path, tmp_path: Path) -> Path:
    """A copy of the rendered project for one test's decisions."""
    return Path(shutil.copytree(rendered, tmp_path / "proj"))


def page_by(history: list[dict]) -> list[str]:
    return [event["status"] for event in history if event["by"] == "dailies page"]


def showing(page: Page, shot: int) -> None:
    expect(page.locator("#card")).to_have_attribute("data-shot", str(shot))


def tick(page: Page, shot: int, status: str) -> None:
    expect(page.locator(f'#timeline [data-shot="{shot}"]')).to_have_attribute("data-status", status)


def test_keys_move_between_shots_and_decide(project: Path, server: DailiesServer, watched) -> None:
    page = watched.page
    before = dailies_path(project).read_bytes()
    page.goto(server.url)
    assert page.locator("#timeline .tick").all_inner_texts() == ["S01", "S02", "S03", "S04"]
    showing(page, 1)
    page.keyboard.press("a")
    expect(page.locator("#message")).to_have_text("shot 1: has no take to review yet (status pending); render it first")
    assert dailies_path(project).read_bytes() == before

    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowRight")
    showing(page, 3)
    page.keyboard.press("r")
    tick(page, 3, "retake")
    page.keyboard.press("ArrowRight")
    showing(page, 4)
    page.keyboard.press("ArrowRight")
    showing(page, 4)
    page.keyboard.press("n")
    tick(page, 4, "needs_review")
    page.keyboard.press("ArrowUp")
    showing(page, 3)
    page.keyboard.press("A")
    tick(page, 3, "approved")
    expect(page.locator("#take")).to_have_text("T01 (approved T01, cut uses T01)")

    shots = saved(project)
    assert (shots[3]["status"], shots[3]["approved_take"]) == ("approved", 1)
    assert page_by(shots[3]["history"]) == ["retake", "approved"]
    assert (shots[4]["status"], shots[4].get("approved_take")) == ("needs_review", None)
    assert page_by(shots[4]["history"]) == ["needs_review"]
    assert [shots[n]["status"] for n in (1, 2)] == ["pending", "pending"] and shots[1]["history"] == []
    assert all(event["take"] == 1 and event["at"] for n in RENDERED for event in shots[n]["history"])


def test_a_typed_note_is_saved_and_shown_as_text_and_typing_decides_nothing(
    project: Path, server: DailiesServer, watched
) -> None:
    page = watched.page
    page.goto(server.url)
    page.locator('#timeline [data-shot="4"]').click()
    showing(page, 4)
    before = dailies_path(project).read_bytes()
    page.locator("#note").click()
    page.keyboard.type(NOTE)
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("n")
    page.keyboard.press("Backspace")
    expect(page.locator("#note")).to_have_value(NOTE)
    showing(page, 4)
    page.wait_for_timeout(200)
    assert dailies_path(project).read_bytes() == before
    tick(page, 4, "generated")

    page.keyboard.press("Escape")
    page.keyboard.press("a")
    tick(page, 4, "approved")
    shot = saved(project)[4]
    assert shot["note"] == NOTE
    last = shot["history"][-1]
    assert (last["status"], last["by"], last["note"], last["take"]) == ("approved", "dailies page", NOTE, 1)

    expect(page.locator("#history .note").last).to_have_text(NOTE)
    page.goto(server.url + "#S04")
    showing(page, 4)
    expect(page.locator("#note")).to_have_value(NOTE)
    expect(page.locator("#history .note").last).to_have_text(NOTE)
    assert page.locator("#card b").count() == 0 and page.locator("script").count() == 2


def loaded_media(page: Page, clip: str, seconds: float) -> None:
    """The card's keyframe has loaded at the upscaled size, and its clip's metadata has loaded."""
    assert page.locator("#frames figcaption").all_inner_texts() == ["first"]
    page.wait_for_function("[...document.querySelectorAll('#frames img')].every((image) => image.complete)")
    assert page.eval_on_selector_all("#frames img", "images => images.map((image) => image.naturalWidth)") == [768]
    page.wait_for_function("document.getElementById('clip').readyState >= 1", timeout=10_000)
    video = page.evaluate("(({src, duration, videoWidth, hidden}) => ({src, duration, videoWidth, hidden}))"
                          "(document.getElementById('clip'))")
    assert video["src"] == page.url.split("#")[0] + "assets/" + clip and not video["hidden"]
    assert video["duration"] == pytest.approx(seconds, abs=0.1) and video["videoWidth"] == 768


def test_the_prompt_is_text_and_the_keyframes_and_clip_load(server: DailiesServer, watched) -> None:
    page = watched.page
    page.goto(server.url + "#S03")
    showing(page, 3)
    expect(page.locator("#prompt")).to_have_text(PROMPT)
    assert page.locator("#prompt *").count() == 0 and page.locator("script").count() == 2
    loaded_media(page, "TST_EP001_S03_T01_ENV_clip.mp4", 1.5)
    page.keyboard.press("ArrowRight")
    showing(page, 4)
    loaded_media(page, "TST_EP001_S04_T01_ANA_clip.mp4", 1.0)

    page.locator('#timeline [data-shot="1"]').click()
    expect(page.locator("#frames")).to_have_text("no keyframes for T01 yet")
    assert page.locator("#clip").is_hidden()
    assert watched.dialogs == []


def test_a_decision_on_a_shot_rendered_again_since_the_page_loaded_is_refused_and_the_page_reloads(
    project: Path, server: DailiesServer, watched
) -> None:
    page = watched.page
    page.goto(server.url + "#S03")
    showing(page, 3)
    expect(page.locator("#take")).to_have_text("T01 (approved none, cut uses T01)")
    expect(page.locator("#spend")).to_contain_text("shadow cost $")
    folder = load_project(project)
    with changing_dailies(folder, load_storyboard(folder, 1)) as dailies:
        dailies.shot(3).rendered(2, "pass", at=now())  # a render made take 2 meanwhile
    page.keyboard.press("a")
    expect(page.locator("#message")).to_contain_text("shot 3: changed since it was shown (now T02 generated")
    expect(page.locator("#take")).to_have_text("T02 (approved none, cut uses T02)")
    assert saved(project)[3]["status"] == "generated"
    page.keyboard.press("a")
    tick(page, 3, "approved")
    assert (saved(project)[3]["status"], saved(project)[3]["approved_take"]) == ("approved", 2)
