"""On the wire: a 16:9 episode on fal with a character's FLUX.2, Z-Image and WAN high/low adapters; a storyboard that
breaks a published limit stopped before anything is paid; an estimate after a recorded rejection."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from reelflow.schemas.wire.fal import FLUX2_LORA, INPUTS, SEEDVR_UPSCALE, WAN_FLF
from reelflow.state.ledger import Ledger

from checks import check_episode
from conftest import run_cli
from fakes.fal import FakeFal
from projects import BREAKDOWN, PROJECT, storyboard, write_project

pytestmark = pytest.mark.usefixtures("prefect_api")
ON_FAL = {"default": "fal", "qc": "local"}
ANA = [  # weights kept in the project: uploaded to fal's storage the first time a request uses them
    {"base_model": "flux-2", "path": "visual/loras/ANA/ana-flux2.safetensors", "trigger": "ana_tok"},
    {"base_model": "z-image", "path": "visual/loras/ANA/ana-z.safetensors"},
    {"base_model": "wan-2.2", "path": "visual/loras/ANA/ana-wan-high.safetensors", "noise": "high"},
    {"base_model": "wan-2.2", "path": "visual/loras/ANA/ana-wan-low.safetensors", "noise": "low"},
]


def _with_loras(root: Path, characters: dict[str, list[dict]]) -> Path:
    for entries in characters.values():
        for entry in entries:
            weights = root / entry["path"]
            weights.parent.mkdir(parents=True, exist_ok=True)
            weights.write_bytes(f"weights {entry['path']}".encode())
    (root / "visual").mkdir(parents=True, exist_ok=True)
    (root / "visual" / "lora_registry.json").write_text(json.dumps({"characters": characters}))
    return root


def _name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_a_16_9_episode_on_fal_sends_each_adapter_to_its_model_and_expert(tmp_path: Path, fal: FakeFal) -> None:
    project = PROJECT | {"aspect_ratio": "16:9", "providers": ON_FAL, "review": {"keyframes": "none"}}  # no judge on fal
    root = _with_loras(write_project(tmp_path / "proj", project=project), {"ANA": ANA})
    result = run_cli("render", str(root), "--episode", "1", "--json", env=fal.env())
    assert result.code == 0, result.stderr
    check_episode(root, 1)

    jobs = list(fal.jobs.values())
    for job in jobs:
        INPUTS[job.endpoint].model_validate(job.body)  # zero schema violations reached the service
    assert set(fal.submits_by_body.values()) == {1}, "one submit per generation"
    ana_shots = {shot["shot"] for shot in storyboard()["shots"] if "ANA" in shot["characters_in_shot"]}
    keyframes = [job for job in jobs if job.endpoint == FLUX2_LORA]
    sent = [[(_name(lora["path"]), lora["scale"]) for lora in job.body.get("loras", [])] for job in keyframes]
    assert keyframes and all(loras in ([], [("ana-flux2.safetensors", 1.0)]) for loras in sent)
    assert all(lora["path"].startswith(fal.url) for job in jobs for lora in job.body.get("loras", [])), "uploaded"
    # one prompt per frame: a try made again (a new seed, on a loaded machine now and then) asks for the same frame
    prompts = {job.body["prompt"] for job in keyframes if "loras" in job.body}
    assert len(prompts) == 2, f"{sent} ANA's shots: shot 1's strip and shot 4's first frame"
    videos = [job for job in jobs if job.endpoint == WAN_FLF]
    assert videos and all(job.body["aspect_ratio"] == "16:9" for job in videos)
    for job in videos:
        loras = [(_name(lora["path"]), lora["transformer"]) for lora in job.body.get("loras", [])]
        assert loras in ([], [("ana-wan-high.safetensors", "high"), ("ana-wan-low.safetensors", "low")])
    assert sum("loras" in job.body for job in videos) == 2, f"ANA is in shots {sorted(ana_shots)}: shot 1's two segments"
    assert all(job.body["output_format"] == "png" for job in jobs if job.endpoint == SEEDVR_UPSCALE)

    billed = sum(_fal_bill(job.endpoint, job.body, job.outcome[1] if job.outcome else {}) for job in jobs)
    local = sum(row.cost_usd for row in Ledger.at(root / ".reelflow").rows("provider = 'local'"))
    assert result.json()["cost_usd"] == pytest.approx(billed + local, abs=0.01), "the report is what fal bills"


def _fal_bill(endpoint: str, body: dict, result: dict) -> float:
    """What fal bills for one request, from its model pages (2026-11): FLUX.2 [dev] LoRA $0.021 and SeedVR $0.001 per
    output megapixel (rounded up), WAN 2.2 $0.08 per second of 720p video counted at 16 fps."""
    if endpoint == FLUX2_LORA:
        size = body["image_size"]
        return 0.021 * math.ceil(size["width"] * size["height"] / 2**20)
    if endpoint == SEEDVR_UPSCALE:
        return 0.001 * math.ceil(result["image"]["width"] * result["image"]["height"] / 2**20)
    if endpoint == WAN_FLF:
        return 0.08 * body["num_frames"] / 16
    raise AssertionError(f"no price for {endpoint}")


def test_a_storyboard_that_breaks_a_published_limit_stops_before_anything_is_paid(tmp_path: Path, fal: FakeFal) -> None:
    board = storyboard()
    board["shots"][3]["characters_in_shot"] = ["ANA", "BO", "CY", "DI"]
    breakdown_cast = [{"id": c, "name": c.title(), "height_cm": 170, "description": "crew"} for c in ("ANA", "BO", "CY", "DI")]
    root = write_project(tmp_path / "proj", board, project=PROJECT | {"providers": ON_FAL})
    (root / "breakdown.json").write_text(json.dumps(BREAKDOWN | {"characters": breakdown_cast}))
    _with_loras(root, {c: [dict(ANA[0], path=f"https://w/{c}.safetensors")] for c in ("ANA", "BO", "CY", "DI")})
    for command in ("render", "estimate"):
        result = run_cli(command, str(root), "--episode", "1", "--json", env=fal.env())
        assert result.code == 2 and result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: storyboard_ep_001.json: shot 4: keyframes: fal: ")
        assert "loras: [4 items]" in lines[0] and "at most 3" in lines[0]
    assert fal.total_submits() == 0 and fal.uploads == [] and not (root / "storyboards" / "assets").exists()


def test_estimate_after_a_recorded_rejection_names_the_blocked_shot(tmp_path: Path, fal: FakeFal) -> None:
    board = storyboard()
    board["shots"][2]["first_frame_prompt"] = "A forbidden cargo hold"
    root = write_project(tmp_path / "proj", board, project=PROJECT | {"providers": {"default": "local", "keyframes": "fal"}})
    render = run_cli("render", str(root), "--episode", "1", "--shots", "3", "--json", env=fal.env())
    assert render.code == 1
    estimate = run_cli("estimate", str(root), "--episode", "1", "--json", env=fal.env())
    assert estimate.code == 0, estimate.stderr
    blocked = estimate.json()["blocked"]
    assert [shot["shot"] for shot in blocked] == [3] and "recorded earlier" in blocked[0]["reason"]
    assert estimate.json()["total_usd"] > 0, "the other shots are still priced"

    fallback = json.loads((root / "project.json").read_text())
    fallback["providers"]["keyframes"] = {"use": "fal", "fallback": "local"}
    (root / "project.json").write_text(json.dumps(fallback))
    routed = run_cli("estimate", str(root), "--episode", "1", "--shots", "3", "--json", env=fal.env())
    assert routed.code == 0 and routed.json()["blocked"] == []
    assert routed.json()["by_stage"]["keyframes"] > 0, "the fallback route is priced"
