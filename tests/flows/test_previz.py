"""Previz end to end on the small project: one frame per shot, manifest, escaped contact sheet, cache, 16:9."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image

from reelflow.media.probe import probe
from reelflow.schemas.pricing import load_prices
from reelflow.tasks.previz_sheet import contact_sheet_html, contact_sheet_markdown

from conftest import run_cli
from projects import PROJECT, storyboard, write_project

Z_IMAGE_FRAME = load_prices().cost("fal-ai/z-image/turbo", size=(512, 896))  # one megapixel, rounded up
HOSTILE = '<script>alert(1)</script> & "quotes"'
NAMES = {
    1: "TST_EP001_S01_T01_ANA_previz.png",
    2: "TST_EP001_S02_T01_BO_previz.png",
    3: "TST_EP001_S03_T01_ENV_previz.png",
    4: "TST_EP001_S04_T01_ANA_previz.png",
}


def previz_dir(root: Path) -> Path:
    return root / "previz" / "ep_001"


@pytest.fixture(scope="module")
def previzd(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> tuple[Path, dict]:
    board = storyboard()
    board["shots"][3]["first_frame_prompt"] = f"Ana alone at the window {HOSTILE}"
    root = write_project(tmp_path_factory.mktemp("previz") / "proj", board)
    result = run_cli("previz", str(root), "--episode", "1", "--json")
    assert result.code == 0, result.stderr
    return root, result.json()


def test_previz_makes_one_named_frame_per_shot(previzd: tuple[Path, dict]) -> None:
    root, report = previzd
    folder = previz_dir(root)
    assert report["episode"] == 1 and report["frames"] == 4 and report["failed"] == []
    assert report["provider_calls"] == 4
    assert report["cost_usd"] == pytest.approx(4 * Z_IMAGE_FRAME)
    assert report["html"] == str(folder / "previz_review.html")
    assert report["manifest"] == str(folder / "previz_manifest.json")
    assert sorted(p.name for p in folder.glob("*.png")) == sorted(NAMES.values())
    for name in NAMES.values():
        info = probe(folder / name)
        assert (info.width, info.height) == (512, 896)
    assert not (root / "storyboards" / "assets").exists()


def test_manifest_records_every_frame(previzd: tuple[Path, dict]) -> None:
    root, _ = previzd
    manifest = json.loads((previz_dir(root) / "previz_manifest.json").read_text())
    frames = {frame["shot"]: frame for frame in manifest["frames"]}
    assert sorted(frames) == [1, 2, 3, 4]
    assert manifest["cost_usd"] == pytest.approx(4 * Z_IMAGE_FRAME)
    assert {f["name"] for f in frames.values()} == set(NAMES.values())
    hero = frames[1]
    assert hero["prompt"] == "Ana grips the throttle as alarms flash red across the deck"
    assert (hero["approach"], hero["characters"], hero["location"]) == ("triptych_split_flf", ["ANA", "BO"], "DECK")
    assert (hero["provider"], hero["model"]) == ("local", "fal-ai/z-image/turbo")
    assert hero["params"]["steps"] == 8 and hero["params"]["notes"]["role"] == "previz"
    assert frames[2]["prompt"] == "Bo kneels by a crate" and frames[2]["seed"] == 1234
    for frame in frames.values():
        assert frame["cost_usd"] == Z_IMAGE_FRAME and frame["request_id"].startswith("local-") and len(frame["sha256"]) == 64


def test_contact_sheet_shows_every_shot_with_escaped_prompts(previzd: tuple[Path, dict]) -> None:
    root, _ = previzd
    page = (previz_dir(root) / "previz_review.html").read_text()
    for shot, name in NAMES.items():
        assert f"S{shot:02d}" in page and f'src="{name}"' in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;" in page
    assert "<script" not in page and HOSTILE not in page
    assert "http://" not in page and "https://" not in page


def test_second_previz_is_all_cached(previzd: tuple[Path, dict]) -> None:
    root, _ = previzd
    before = {p.name: p.read_bytes() for p in previz_dir(root).iterdir()}
    result = run_cli("previz", str(root), "--episode", "1", "--json")
    assert result.code == 0, result.stderr
    report = result.json()
    assert report["provider_calls"] == 0 and report["cost_usd"] == 0 and report["frames"] == 4
    assert {p.name: p.read_bytes() for p in previz_dir(root).iterdir()} == before


def test_previz_of_some_shots_keeps_the_others_on_the_sheet(previzd: tuple[Path, dict]) -> None:
    root, _ = previzd
    result = run_cli("previz", str(root), "--episode", "1", "--shots", "2")
    assert result.code == 0, result.stderr
    assert "frames: 1 made, 0 failed" in result.stdout and "/runs/flow-run/" in result.stdout
    manifest = json.loads((previz_dir(root) / "previz_manifest.json").read_text())
    assert [frame["shot"] for frame in manifest["frames"]] == [1, 2, 3, 4]


def test_landscape_is_896x512_and_a_failing_shot_does_not_stop_the_others(tmp_path: Path, prefect_api: str) -> None:
    root = write_project(tmp_path / "wide", project=PROJECT | {"aspect_ratio": "16:9"})
    result = run_cli("previz", str(root), "--episode", "1", "--json", env={"REELFLOW_LOCAL_BANNED_WORDS": "crate"})
    assert result.code == 1
    report = result.json()
    assert report["frames"] == 3 and [f["shot"] for f in report["failed"]] == [2]
    assert "rejected" in report["failed"][0]["reason"]
    frames = sorted(previz_dir(root).glob("*.png"))
    assert [p.name for p in frames] == sorted(NAMES[n] for n in (1, 3, 4))
    assert {(probe(p).width, probe(p).height) for p in frames} == {(896, 512)}
    manifest = json.loads((previz_dir(root) / "previz_manifest.json").read_text())
    assert [frame["shot"] for frame in manifest["frames"]] == [1, 3, 4]
    assert "Traceback" not in result.stderr


def test_unknown_shot_is_one_line_and_makes_nothing(tmp_path: Path, prefect_api: str) -> None:
    root = write_project(tmp_path / "proj")
    result = run_cli("previz", str(root), "--episode", "1", "--shots", "9", "--json")
    assert result.code == 2 and result.stdout == ""
    assert result.stderr.startswith("error: storyboard_ep_001.json: --shots: shot 9")
    assert not (root / "previz").exists()


@dataclass
class Row:
    shot: int
    approach: str
    prompt: str
    name: str
    location: str = "DECK"
    characters: list[str] = field(default_factory=list)
    provider: str = "local"
    cost_usd: float = 0.004


def test_contact_sheet_escapes_all_user_text() -> None:
    rows = [Row(1, "standard_flf", HOSTILE, 'a "b".png', location="<b>deck</b>", characters=["A&B"])]
    page = contact_sheet_html("<i>Title</i> & co", rows)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;" in page
    assert "&lt;i&gt;Title&lt;/i&gt; &amp; co" in page
    assert "&lt;b&gt;deck&lt;/b&gt;" in page and "A&amp;B" in page
    assert 'src="a%20%22b%22.png"' in page
    for raw in ("<script", "<b>", "<i>", HOSTILE):
        assert raw not in page
    assert "S01" in page and "1 frame · charged $0.000 · shadow cost $0.004 (local provider: nothing charged)<" in page


def test_markdown_contact_sheet_keeps_user_text_literal(tmp_path: Path) -> None:
    Image.new("RGB", (896, 512), "red").save(tmp_path / "frame.png")
    rows = [Row(1, "standard_flf", f"{HOSTILE} | [x](javascript:alert(1))\nnext line", "frame.png",
                characters=["A&B"], provider="fal", cost_usd=0.01)]
    sheet = contact_sheet_markdown("*Title* <i>", rows, tmp_path)
    assert sheet.startswith(r'# \*Title\* \<i\>' + '\n')
    assert "1 frame · charged $0.010\n" in sheet
    row = sheet.splitlines()[-1]
    assert row.count(" | ") == 4, "the prompt's pipe does not break the table"
    assert r'\<script\>alert\(1\)\<\/script\> \& \"quotes\" \| \[x\]\(javascript\:alert\(1\)\) next line' in row
    assert r'| standard\_flf | A\&B · DECK |' in row and '![shot 1](data:image/jpeg;base64,' in row
