"""End to end on a small project: render, cache, edit one prompt, retakes, faults, failures, bad input."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from reelflow.media.probe import probe
from reelflow.schemas.dailies import Dailies, Decision
from reelflow.schemas.load import load_project, load_storyboard
from reelflow.schemas.names import AssetName
from reelflow.schemas.pricing import load_prices
from reelflow.schemas.report import RenderReport
from reelflow.schemas.wire.fal import FLUX2_LORA as FLUX
from reelflow.schemas.wire.fal import WAN_FLF as WAN
from reelflow.state.dailies import apply_decisions
from reelflow.state.reports import read_report

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


def dailies(root: Path) -> Dailies:
    return Dailies.model_validate_json((root / "storyboards" / "dailies_ep_001.json").read_bytes())


def manifest(root: Path) -> dict:
    return json.loads((assets(root) / "manifest.json").read_text())


def decide(root: Path, decisions: dict[int, Decision], note: str | None = None) -> None:
    folder = load_project(root)
    apply_decisions(folder, load_storyboard(folder, 1), decisions, by="test", note=note)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> tuple[Path, dict]:
    root = write_project(tmp_path_factory.mktemp("render") / "proj")
    result = run_cli("render", str(root), "--episode", "1", "--json")
    assert result.code == 0, result.stderr
    return root, result.json()


def test_render_writes_named_assets_cut_and_manifest(rendered: tuple[Path, dict]) -> None:
    root, report = rendered
    assert report["shots"] == {"total": 4, "rendered": 4, "cached": 0, "failed": 0, "kept": 0}
    # triptych 1 strip + 3 verdicts + 3 upscales + 2 segments; flf 2 + 2 + 2 + 1; push 1 + 1 + 1; static 1 + 1 + 1
    assert report["provider_calls"] == 22
    prices = load_prices()  # the local provider's shadow cost: what the cloud bills in its own units
    keyframes = prices.cost(FLUX, size=(1536, 912)) + 4 * prices.cost(FLUX, size=(576, 1024))  # per megapixel
    upscales = 7 * prices.cost("gemini-3.1-flash-image", resolution="1K")  # the retired id's replacement
    # per second at 720p: shot 1's 2.5 s at 16 fps in two halves of 21 frames, shot 2's 2 s in 33 (schemas/segments.py)
    segments = 2 * prices.cost(WAN, frames=21) + prices.cost(WAN, frames=33)
    assert report["cost_usd"] == pytest.approx(keyframes + upscales + segments + 7 * prices.cost("gemini-2.5-flash"))
    assert report["cost_usd"] == pytest.approx(0.9819)
    assert report["shadow_usd"] == report["cost_usd"] and report["charged_usd"] == 0, "the local provider charges nothing"

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
    assert first["seed"] == 1234 and first["request_id"].startswith("local-")
    assert first["cost_usd"] == load_prices().cost("gemini-3.1-flash-image", resolution="1K")
    seg = by_name["TST_EP001_S02_T01_BO_seg1.mp4"]
    assert [i["name"] for i in seg["inputs"]] == ["TST_EP001_S02_T01_BO_first.png", "TST_EP001_S02_T01_BO_last.png"]
    assert seg["params"]["num_frames"] == 33 and seg["cost_usd"] == load_prices().cost(WAN, frames=33)
    raw_first = {i["sha256"] for i in first["inputs"]}
    assert raw_first <= {e["sha256"] for e in manifest["intermediates"]}


def test_second_render_is_all_cached(rendered: tuple[Path, dict]) -> None:
    root, _ = rendered
    before = hashes(assets(root))
    result = run_cli("render", str(root), "--episode", "1", "--json", env={"REELFLOW_LOCAL_LATENCY": "0.5"})
    assert result.code == 0, result.stderr
    report = result.json()
    assert report["provider_calls"] == 0 and report["cost_usd"] == 0
    assert report["shots"] == {"total": 4, "rendered": 0, "cached": 4, "failed": 0, "kept": 0}
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
    assert report["shots"] == {"total": 4, "rendered": 1, "cached": 3, "failed": 0, "kept": 0}
    assert report["provider_calls"] == 4  # last frame, its verdict, its upscale, the segment
    after = hashes(assets(root))
    changed = {name for name in after if after[name] != before.get(name)}
    # The new footage is take 2 (its seed kept: the first frame is the cached one); every T01 file stays as it was.
    assert report["lines"][1]["take"] == 2
    assert changed == {
        "TST_EP001_S02_T02_BO_first.png", "TST_EP001_S02_T02_BO_last.png", "TST_EP001_S02_T02_BO_seg1.mp4",
        "TST_EP001_S02_T02_BO_clip.mp4", "ep_001.mp4", "manifest.json",
    }
    assert after["TST_EP001_S02_T02_BO_first.png"] == before["TST_EP001_S02_T01_BO_first.png"]


def test_retakes_render_take_two_of_only_those_shots_and_keep_approved_bytes(
    rendered: tuple[Path, dict], tmp_path: Path
) -> None:
    source, _ = rendered
    root = tmp_path / "proj"
    shutil.copytree(source, root)
    assert [s.status for s in dailies(root).shots] == ["generated"] * 4
    decide(root, {1: "approved", 2: "retake", 3: "retake", 4: "retake"}, note="too dark")
    before = hashes(assets(root))
    entries_before = {(e["shot"], e["take"], e["sha256"]) for e in manifest(root)["assets"] + manifest(root)["intermediates"]}

    result = run_cli("render", str(root), "--episode", "1", "--retakes", "--json")
    assert result.code == 0, result.stderr
    report = result.json()
    assert report["shots"] == {"total": 3, "rendered": 3, "cached": 0, "failed": 0, "kept": 0}
    assert [(line["shot"], line["take"], line["status"]) for line in report["lines"]] == [
        (2, 2, "rendered"), (3, 2, "rendered"), (4, 2, "rendered")
    ]
    assert report["provider_calls"] == sum(line["provider_calls"] for line in report["lines"]) > 0

    after = hashes(assets(root))
    assert {name: after[name] for name in before if name.endswith((".png", ".mp4")) and name != "ep_001.mp4"} == {
        name: sha for name, sha in before.items() if name.endswith((".png", ".mp4")) and name != "ep_001.mp4"
    }, "every take-1 asset is byte-identical"
    new_names = {AssetName.parse(name) for name in set(after) - set(before)}
    assert {(n.shot, n.take) for n in new_names} == {(2, 2), (3, 2), (4, 2)}
    assert {n.suffix for n in new_names if n.shot == 2} == {"first", "last", "seg1", "clip"}

    paid = [e for e in manifest(root)["assets"] + manifest(root)["intermediates"] if e["provider"] == "local"]
    new_calls = {(e["shot"], e["take"]) for e in paid if (e["shot"], e["take"], e["sha256"]) not in entries_before}
    assert new_calls == {(2, 2), (3, 2), (4, 2)}, "the provider was called only for the retake shots"

    cut_inputs = [i["name"] for i in next(e for e in manifest(root)["assets"] if e["name"] == "ep_001.mp4")["inputs"]]
    assert cut_inputs == ["TST_EP001_S01_T01_ANA_clip.mp4", "TST_EP001_S02_T02_BO_clip.mp4",
                          "TST_EP001_S03_T02_ENV_clip.mp4", "TST_EP001_S04_T02_ANA_clip.mp4"]
    shots = {s.shot: s for s in dailies(root).shots}
    assert [(shots[n].status, shots[n].take) for n in (2, 3, 4)] == [("generated", 2)] * 3
    assert (shots[1].status, shots[1].approved_take) == ("approved", 1)
    assert [h.status for h in shots[2].history] == ["generated", "retake", "generated"]
    assert shots[2].history[1].note == "too dark"

    again = run_cli("render", str(root), "--episode", "1", "--json")
    assert again.code == 0, again.stderr
    assert again.json()["shots"] == {"total": 4, "rendered": 0, "cached": 3, "failed": 0, "kept": 1}
    assert hashes(assets(root)) == after


def test_rate_limit_faults_give_byte_identical_assets(rendered: tuple[Path, dict], tmp_path: Path) -> None:
    source, _ = rendered
    root = write_project(tmp_path / "faulty")
    result = run_cli("render", str(root), "--episode", "1", "--shots", "2,3", "--json",
                     env={"REELFLOW_LOCAL_FAULTS": "rate_limit=0.3"})
    assert result.code == 0, result.stdout + result.stderr
    assert result.json()["shots"]["failed"] == 0, result.json()["failures"]
    faulty = {name: sha for name, sha in hashes(assets(root)).items() if name.startswith("TST_")}
    clean = {name: sha for name, sha in hashes(assets(source)).items()
             if name.startswith("TST_") and AssetName.parse(name).shot in (2, 3)}
    assert len(faulty) == 6 and faulty == clean


def test_one_failing_shot_does_not_stop_the_others(tmp_path: Path) -> None:
    board = storyboard()
    board["shots"][1]["first_frame_prompt"] = "Bo kneels by a crate of contraband"
    root = write_project(tmp_path / "proj", board)
    result = run_cli("render", str(root), "--episode", "1", "--shots", "2,3,4", "--json",
                     env={"REELFLOW_LOCAL_BANNED_WORDS": "contraband"})
    assert result.code == 1 and result.stdout, result.stderr  # a report, not a failed render
    report = result.json()
    assert report["shots"] == {"total": 3, "rendered": 2, "cached": 0, "failed": 1, "kept": 0}
    assert report["output"] is None
    assert report["failures"][0]["shot"] == 2 and report["failures"][0]["stage"] == "keyframes"
    assert "rejected" in report["failures"][0]["reason"]
    names = {AssetName.parse(p.name).shot for p in assets(root).glob("TST_*")}
    assert names == {3, 4}
    assert "Traceback" not in result.stderr


def test_human_output_shows_summary_and_ui_link(rendered: tuple[Path, dict], prefect_api: str) -> None:
    root, _ = rendered
    result = run_cli("render", str(root), "--episode", "1", "--shots", "2,3")
    assert result.code == 0, result.stderr
    assert "shots: 0 rendered, 2 cached, 0 kept, 0 failed · provider calls 0 · charged $0.000" in result.stdout
    assert "spent: $0.000 this run · $0.000 in the project" in result.stdout  # shadow cost is not money
    assert prefect_api.removesuffix("/api") + "/runs/flow-run/" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    run_id = result.stdout.split("/runs/flow-run/")[1].split()[0]  # the run's report is kept under its id
    kept = RenderReport.model_validate_json(read_report(root / ".reelflow", run_id) or b"null")
    assert (kept.shots.cached, kept.provider_calls) == (2, 0)


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
    board["shots"] = [board["shots"][0]]  # the triptych: a strip cut horizontally, its frames, segments and clip
    root = write_project(tmp_path / "wide", board, project=PROJECT | {"aspect_ratio": "16:9"})
    result = run_cli("render", str(root), "--episode", "1", "--json")
    assert result.code == 0, result.stderr
    named = check_episode(root, 1)
    folder = assets(root)
    sizes = {n.suffix: (probe(folder / name).width, probe(folder / name).height) for name, n in named.items()}
    assert sizes["strip"] == (912, 1536)
    assert sizes["hero"] == sizes["first"] == sizes["clip"] == (1344, 768)
