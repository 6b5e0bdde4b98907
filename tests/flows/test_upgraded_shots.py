"""An upgrade never spends silently: shots only a newer reelflow would make again are listed, priced and kept.

The upgrade is made the way a release makes one: the video stage's version raised, in the process that renders
(`UPGRADED` runs the CLI with `reelflow.tasks.video.VERSION + 1`). Frames an eighth of the size and replayed videos
keep every render a few seconds long.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reelflow.schemas.load import load_project, load_storyboard
from reelflow.schemas.pricing import load_prices
from reelflow.schemas.wire.fal import WAN_FLF as WAN
from reelflow.state.dailies import apply_decisions
from reelflow.state.manifest import read_manifest
from reelflow.tasks.upgrades import shot_inputs

from conftest import CliResult, run_cli
from projects import PROJECT, storyboard, write_project

pytestmark = pytest.mark.usefixtures("prefect_api")

SMALL = {"REELFLOW_FRAME_SCALE": "0.125", "REELFLOW_LOCAL_VIDEO": "replay"}
# Frames an eighth of the size are too small for the production checks: every try is taken once (bench/episode.py).
QC = {"max_regenerations": 0, "reject_below": 0,
      "gate1": {"blur_min_laplacian_var": 0.001, "gutter_max_flat_lines": 10000, "pair_min_hamming": 0}}
UPGRADED = ("import sys; import reelflow.tasks.video as video; video.VERSION += 1; "
            "from reelflow.cli.app import main; sys.argv[0] = 'reelflow'; main()")
VIDEO_CHANGED = "video: reelflow's video stage changed (version 1 → 2)"


def upgraded(*args: str) -> CliResult:
    """`reelflow ARGS` run by a reelflow whose video stage is one version newer, with the same environment."""
    env = os.environ | {"REELFLOW_RETRY_DELAY_S": "0.01", "COLUMNS": "200", "PREFECT_LOGGING_TO_API_ENABLED": "false"}
    done = subprocess.run([sys.executable, "-c", UPGRADED, *args], capture_output=True, text=True, env=env | SMALL,
                          timeout=240)
    return CliResult(done.returncode, done.stdout, done.stderr)


def board() -> dict:
    """Two first-last-frame shots (the stage the upgrade changes) and a held frame (which it does not)."""
    chosen = storyboard(only=(2, 2, 4))
    del chosen["shots"][1]["seed"]  # its own seed: the two FLF shots share no work
    return chosen


def assets(root: Path) -> Path:
    return root / "storyboards" / "assets" / "ep_001"


def hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def json_of(result: CliResult) -> dict:
    assert result.code == 0, result.stderr
    return result.json()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Path:
    root = write_project(tmp_path_factory.mktemp("upgraded") / "proj", board(), project=PROJECT | {"qc": QC})
    json_of(run_cli("render", str(root), "--episode", "1", "--json", env=SMALL))
    return root


@pytest.fixture
def project(rendered: Path, tmp_path: Path) -> Path:
    """A copy of the rendered project, for one test to change."""
    root = tmp_path / "proj"
    shutil.copytree(rendered, root)
    return root


def test_the_manifest_records_each_takes_inputs(rendered: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reelflow.flows.render import shot_jobs

    for name, value in SMALL.items():
        monkeypatch.setenv(name, value)
    folder = load_project(rendered)
    manifest = read_manifest(assets(rendered), "TST", 1)
    jobs = shot_jobs(folder, load_storyboard(folder, 1), {1: 1, 2: 1, 3: 1}, run="test")
    assert [(t.shot, t.take, t.inputs) for t in manifest.takes] == [(job.shot.shot, 1, shot_inputs(job)) for job in jobs]


def test_the_inputs_are_what_people_set_not_what_reelflow_decides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reelflow.flows.render import shot_jobs

    def inputs(config: dict | None = None, shots: dict | None = None, loras: dict | None = None) -> str:
        root = write_project(tmp_path / "inputs", shots or board(), project=config or PROJECT)
        (root / "visual").mkdir(exist_ok=True)
        (root / "visual" / "lora_registry.json").write_text(json.dumps({"characters": loras or {}}))
        folder = load_project(root)
        return shot_inputs(shot_jobs(folder, load_storyboard(folder, 1), {1: 1}, run="test")[0])

    base = inputs()
    not_outputs = {"title": "Renamed", "budget_usd": 9.0, "billed_retries": 3, "nightly": "0 4 * * *",
                   "timezone": "Europe/Paris", "concurrency": {"local": 2}, "upgrades": "rerender"}
    assert inputs(PROJECT | not_outputs) == base, "money, scheduling and this very choice make no output"
    assert inputs(PROJECT | {"qc": {"pass_at": 0.6}, "providers": {"default": "local"}}) == base, "defaults, spelled out"
    edited = board()
    edited["shots"][0]["motion_prompt"] = "he rises slowly"
    assert inputs(shots=edited) != base
    assert inputs(PROJECT | {"qc": {"pass_at": 0.7}}) != base
    assert inputs(PROJECT | {"providers": {"default": "local", "video": "fal"}}) != base
    weights = {"BO": [{"base_model": "flux-2", "path": "https://fal.media/a.safetensors", "sha256": "a" * 64}]}
    with_lora = inputs(loras=weights)
    assert with_lora != base
    moved = {"BO": [weights["BO"][0] | {"path": "https://fal.media/b.safetensors"}]}
    assert inputs(loras=moved) == with_lora, "the same weights elsewhere"
    assert inputs(loras={"BO": [weights["BO"][0] | {"sha256": "b" * 64}]}) != with_lora
    monkeypatch.setenv("REELFLOW_X264_PRESET", "veryslow")
    assert inputs() != base, "an encoder setting of the environment"


def test_an_upgrade_is_listed_with_its_cost_and_the_takes_are_kept(project: Path) -> None:
    before = hashes(assets(project))
    plan = json_of(upgraded("estimate", str(project), "--episode", "1", "--json"))
    wan = load_prices().cost(WAN, frames=33)  # a 2 s shot at WAN's 16 fps (schemas/segments.py)
    assert plan["total_usd"] == 0 and plan["upgrades"] == "keep", "a render keeps them: it submits nothing"
    assert plan["upgraded"] == [{"shot": n, "take": 1, "reasons": [VIDEO_CHANGED], "cost_usd": wan, "provider_calls": 1}
                                for n in (1, 2)]
    assert plan["upgraded_usd"] == pytest.approx(2 * wan)

    report = json_of(upgraded("render", str(project), "--episode", "1", "--json"))
    assert report["provider_calls"] == 0 and report["cost_usd"] == 0
    assert report["shots"] == {"total": 3, "rendered": 0, "cached": 1, "failed": 0, "kept": 0}
    assert [line["status"] for line in report["lines"]] == ["upgraded_kept", "upgraded_kept", "cached"]
    assert report["upgraded_kept"] == plan["upgraded"]
    assert report["output"] and report["cut_skipped"] is None and report["stale_shots"] == [], "their clips are current"
    after = hashes(assets(project))
    assert {name for name in after if after[name] != before[name]} <= {"manifest.json"}, "takes and cut as they were"
    dailies = json.loads((project / "storyboards" / "dailies_ep_001.json").read_text())
    assert [shot["status"] for shot in dailies["shots"]] == ["generated"] * 3


def test_asked_to_the_upgraded_shots_are_made_again(project: Path) -> None:
    config = json.loads((project / "project.json").read_text())
    (project / "project.json").write_text(json.dumps(config | {"upgrades": "rerender"}))
    plan = json_of(upgraded("estimate", str(project), "--episode", "1", "--json"))
    assert plan["upgrades"] == "rerender" and [shot["shot"] for shot in plan["upgraded"]] == [1, 2]
    assert plan["total_usd"] == pytest.approx(plan["upgraded_usd"]), "the project re-renders them: in the total"

    (project / "project.json").write_text(json.dumps(config))
    report = json_of(upgraded("render", str(project), "--episode", "1", "--json", "--rerender-upgraded"))
    assert report["shots"] == {"total": 3, "rendered": 2, "cached": 1, "failed": 0, "kept": 0}
    assert report["provider_calls"] == 2 and report["cost_usd"] == pytest.approx(plan["upgraded_usd"])
    assert report["upgraded_kept"] == [] and report["output"]


def test_a_shot_whose_prompt_changed_renders_and_an_approved_one_stays_in_the_cut(project: Path) -> None:
    folder = load_project(project)
    apply_decisions(folder, load_storyboard(folder, 1), {1: "approved"}, by="test")
    edited = board()
    edited["shots"][1]["motion_prompt"] = "he rises slowly"
    write_project(project, edited, project=PROJECT | {"qc": QC})
    plan = json_of(upgraded("estimate", str(project), "--episode", "1", "--json"))
    assert plan["upgraded"] == [] and plan["total_usd"] == load_prices().cost(WAN, frames=33), "shot 2's new video"

    report = json_of(upgraded("render", str(project), "--episode", "1", "--json"))
    assert [(line["shot"], line["status"]) for line in report["lines"]] == [(1, "kept"), (2, "rendered"), (3, "cached")]
    assert report["provider_calls"] == 1 and report["upgraded_kept"] == []
    assert report["output"] and report["stale_shots"] == [], "the approved take, made by the older reelflow, is current"


def test_work_the_cache_lost_is_made_again_not_kept(project: Path) -> None:
    shutil.rmtree(project / ".reelflow")
    plan = json_of(run_cli("estimate", str(project), "--episode", "1", "--json", env=SMALL))
    assert plan["upgraded"] == [] and plan["total_usd"] > 0, "its keys are the ones recorded: nothing was upgraded"
