"""End to end on a small project: render, cache, edit one prompt, faults, failures, bad input."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from reelflow.media.probe import probe
from reelflow.schemas.names import AssetName

from checks import check_episode
from conftest import run_cli
from projects import PROJECT, storyboard, write_project

pytestmark = pytest.mark.usefixtures("prefect_api")

DURATIONS = {1: 2.5, 2: 2.0, 3: 1.5, 4: 1.0}
FPS = 16


def assets(root: Path) -> Path:
    return root / "storyboards" / "assets" / "ep_001"


def hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> tuple[Path, dict]:
    root = write_project(tmp_path_factory.mktemp("render") / "proj")
    result = run_cli("render", str(root), "--episode", "1", "--json")
    assert result.code == 0, result.stderr
    return root, result.json()


def test_render_writes_named_assets_cut_and_manifest(rendered: tuple[Path, dict]) -> None:
    root, report = rendered
    assert report["shots"] == {"total": 4, "rendered": 4, "cached": 0, "failed": 0}
    # triptych 1 strip + 3 upscales + 2 segments; flf 2 + 2 + 1; push 1 + 1; static 1 + 1
    assert report["provider_calls"] == 15
    assert report["cost_usd"] == pytest.approx(0.02 * 5 + 0.039 * 7 + 0.04 * 2 + 0.08 * 1 + 0.02 * 0)

    folder = assets(root)
    assert Path(report["output"]) == folder / "ep_001.mp4"
    assert report["manifest"] == str(folder / "manifest.json")
    assert probe(folder / "ep_001.mp4").frames == sum(round(d * FPS) for d in DURATIONS.values())
    parsed = list(check_episode(root, 1).values())
    assert {n.suffix for n in parsed if n.shot == 1} == {"strip", "first", "hero", "last", "seg1", "seg2", "clip"}
    assert {n.suffix for n in parsed if n.shot == 2} == {"first", "last", "seg1", "clip"}
    assert {n.suffix for n in parsed if n.shot == 3} == {"first", "clip"}
    for name in (n.format() for n in parsed):
        if name.endswith(".png"):
            expected = (1536, 912) if name.endswith("_strip.png") else (768, 1344)
            assert (probe(folder / name).width, probe(folder / name).height) == expected

    manifest = json.loads((folder / "manifest.json").read_text())
    by_name = {entry["name"]: entry for entry in manifest["assets"]}
    first = by_name["TST_EP001_S02_T01_BO_first.png"]
    assert (first["stage"], first["provider"], first["model"]) == ("upscale", "local", "gemini-2.5-flash-image")
    assert first["seed"] == 1234 and first["cost_usd"] == 0.039 and first["request_id"].startswith("local-")
    seg = by_name["TST_EP001_S02_T01_BO_seg1.mp4"]
    assert [i["name"] for i in seg["inputs"]] == ["TST_EP001_S02_T01_BO_first.png", "TST_EP001_S02_T01_BO_last.png"]
    assert seg["params"]["num_frames"] == 81 and seg["cost_usd"] == 0.08
    raw_first = {i["sha256"] for i in first["inputs"]}
    assert raw_first <= {e["sha256"] for e in manifest["intermediates"]}


def test_second_render_is_all_cached(rendered: tuple[Path, dict]) -> None:
    root, _ = rendered
    before = hashes(assets(root))
    result = run_cli("render", str(root), "--episode", "1", "--json", env={"REELFLOW_LOCAL_LATENCY": "0.5"})
    assert result.code == 0, result.stderr
    report = result.json()
    assert report["provider_calls"] == 0 and report["cost_usd"] == 0
    assert report["shots"] == {"total": 4, "rendered": 0, "cached": 4, "failed": 0}
    assert hashes(assets(root)) == before


def test_editing_one_prompt_rerenders_that_shot_only(rendered: tuple[Path, dict], tmp_path: Path) -> None:
    source, _ = rendered
    root = tmp_path / "proj"
    shutil.copytree(source, root)
    board = storyboard()
    board["shots"][1]["last_frame_prompt"] = "Bo stands holding a flare"
    write_project(root, board)
    before = hashes(assets(root))
    result = run_cli("render", str(root), "--episode", "1", "--json")
    assert result.code == 0, result.stderr
    report = result.json()
    assert report["shots"] == {"total": 4, "rendered": 1, "cached": 3, "failed": 0}
    assert report["provider_calls"] == 3  # last frame, its upscale, the segment
    after = hashes(assets(root))
    changed = {name for name in after if after[name] != before.get(name)}
    assert changed == {
        "TST_EP001_S02_T01_BO_last.png", "TST_EP001_S02_T01_BO_seg1.mp4", "TST_EP001_S02_T01_BO_clip.mp4",
        "ep_001.mp4", "manifest.json",
    }


def test_rate_limit_faults_give_byte_identical_assets(rendered: tuple[Path, dict], tmp_path: Path) -> None:
    source, _ = rendered
    root = write_project(tmp_path / "faulty")
    result = run_cli("render", str(root), "--episode", "1", "--json", env={"REELFLOW_LOCAL_FAULTS": "rate_limit=0.3"})
    assert result.code == 0, result.stdout + result.stderr
    assert result.json()["shots"]["failed"] == 0, result.json()["failures"]
    clean, faulty = hashes(assets(source)), hashes(assets(root))
    clean.pop("manifest.json"), faulty.pop("manifest.json")
    assert faulty == clean


def test_one_failing_shot_does_not_stop_the_others(tmp_path: Path) -> None:
    board = storyboard()
    board["shots"][1]["first_frame_prompt"] = "Bo kneels by a crate of contraband"
    root = write_project(tmp_path / "proj", board)
    result = run_cli("render", str(root), "--episode", "1", "--json", env={"REELFLOW_LOCAL_BANNED_WORDS": "contraband"})
    assert result.code == 1
    report = result.json()
    assert report["shots"] == {"total": 4, "rendered": 3, "cached": 0, "failed": 1}
    assert report["output"] is None
    assert report["failures"][0]["shot"] == 2 and report["failures"][0]["stage"] == "keyframes"
    assert "rejected" in report["failures"][0]["reason"]
    names = {AssetName.parse(p.name).shot for p in assets(root).glob("TST_*")}
    assert names == {1, 3, 4}
    assert "Traceback" not in result.stderr


def test_human_output_shows_summary_and_ui_link(rendered: tuple[Path, dict], prefect_api: str) -> None:
    root, _ = rendered
    result = run_cli("render", str(root), "--episode", "1", "--shots", "2,3")
    assert result.code == 0, result.stderr
    assert "2 cached" in result.stdout or "cached" in result.stdout
    assert prefect_api.removesuffix("/api") + "/runs/flow-run/" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("edit", [
    lambda d: d["shots"][2].pop("first_frame_prompt"),
    lambda d: d["shots"][1].update(duration_s="2"),
    lambda d: d["shots"][0].update(location="MARS"),
])
def test_bad_storyboard_is_one_line_and_changes_nothing(rendered: tuple[Path, dict], tmp_path: Path, edit) -> None:
    source, _ = rendered
    root = tmp_path / "proj"
    shutil.copytree(source, root)
    before = hashes(assets(root))
    board = storyboard()
    edit(board)
    write_project(root, board)
    result = run_cli("render", str(root), "--episode", "1", "--json")
    assert result.code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: storyboard_ep_001.json: shot "), result.stderr
    assert hashes(assets(root)) == before


def test_landscape_project_renders_at_1344x768(tmp_path: Path) -> None:
    board = storyboard()
    board["shots"] = [board["shots"][0], board["shots"][2] | {"shot": 2}]
    root = write_project(tmp_path / "wide", board, project=PROJECT | {"aspect_ratio": "16:9"})
    result = run_cli("render", str(root), "--episode", "1", "--json")
    assert result.code == 0, result.stderr
    named = check_episode(root, 1)
    folder = assets(root)
    sizes = {n.suffix: (probe(folder / name).width, probe(folder / name).height) for name, n in named.items()}
    assert sizes["strip"] == (912, 1536)
    assert sizes["hero"] == sizes["first"] == sizes["clip"] == (1344, 768)
