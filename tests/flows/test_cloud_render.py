"""Renders against loopback fakes of fal.ai and Gemini, through the real client libraries.

One submit per generation, a SIGKILLed render resumed without paying twice, content rejections routed
to the fallback, estimates that match the ledger, and a missing key stopping everything up front.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reelflow.state.ledger import Ledger

from checks import check_episode
from conftest import render_killed_in_flight, run_cli
from fakes.fal import FakeFal
from fakes.gemini import FakeGemini
from projects import PROJECT, storyboard, write_project

pytestmark = pytest.mark.usefixtures("prefect_api")
CLOUD = {"default": "fal", "upscale": "gemini", "qc": "gemini"}
NO_STOP = {"review": {"keyframes": "none"}}  # frames no judge scored would wait for review (test_keyframe_review.py)



def cloud_env(fal: FakeFal, gemini: FakeGemini | None = None) -> dict[str, str]:
    return fal.env() | (gemini.env() if gemini else {})


def ledger_cost(root: Path) -> float:
    return Ledger.at(root / ".reelflow").spent()


def test_small_project_on_fal_and_gemini(tmp_path: Path, fal: FakeFal, gemini: FakeGemini) -> None:
    root = write_project(tmp_path / "proj", project=PROJECT | {"providers": CLOUD, "concurrency": {"fal": 2}})
    env = cloud_env(fal, gemini)
    estimate = run_cli("estimate", str(root), "--episode", "1", "--json", env=env)
    assert estimate.code == 0, estimate.stderr
    assert fal.total_submits() == 0 and not gemini.calls

    result = run_cli("render", str(root), "--episode", "1", "--json", env=env)
    assert result.code == 0, result.stderr
    report = result.json()
    check_episode(root, 1)
    assert report["provider_calls"] == 22
    assert fal.total_submits() == 8
    assert gemini.calls_per_model() == {"gemini-3.1-flash-image": 7, "gemini-3.5-flash-lite": 7}, "7 upscales, 7 judged keyframes"
    assert [line["review"] for line in report["lines"]] == ["pass"] * 4
    assert set(fal.submits_by_body.values()) == {1}, "one submit per generation"
    assert fal.max_in_flight <= 2, "the project's fal concurrency limit holds across shots"
    assert report["cost_usd"] == pytest.approx(ledger_cost(root))
    # The estimate is the list price of what was sent; the judge's cost is what Gemini reported billing (its tokens).
    assert estimate.json()["total_usd"] == pytest.approx(Ledger.at(root / ".reelflow").report().estimated_usd)
    assert report["charged_usd"] == pytest.approx(gemini.billed_usd + fal.billed_usd)

    manifest = json.loads((root / "storyboards" / "assets" / "ep_001" / "manifest.json").read_text())
    providers: dict[str, set[str]] = {}
    for entry in manifest["assets"] + manifest["intermediates"]:
        providers.setdefault(entry["stage"], set()).add(entry["provider"])
    assert providers["keyframes"] == {"fal"} and providers["upscale"] == {"gemini"} and providers["qc"] == {"gemini"}
    assert providers["video"] == {"fal", "media"}, "FLF segments on fal, held frames made locally"

    again = run_cli("render", str(root), "--episode", "1", "--json", env=env)
    assert again.json()["provider_calls"] == 0 and fal.total_submits() == 8


def test_missing_key_stops_before_anything_is_submitted(tmp_path: Path, fal: FakeFal) -> None:
    root = write_project(tmp_path / "proj", project=PROJECT | {"providers": {"default": "fal"}, **NO_STOP})
    env = fal.env() | {"FAL_KEY": ""}
    result = run_cli("render", str(root), "--episode", "1", "--json", env=env)
    assert result.code == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == ["error: FAL_KEY is not set: export your fal.ai key as FAL_KEY"]
    assert fal.total_submits() == 0 and not (root / "storyboards" / "assets").exists()


def test_rejected_content_goes_to_the_fallback(tmp_path: Path, fal: FakeFal) -> None:
    board = storyboard()
    board["shots"][2]["first_frame_prompt"] = "A forbidden cargo hold"
    providers = {"default": "local", "keyframes": {"use": "fal", "fallback": "local"}}
    # the local judge does not read fal's frames: without the keyframe stop their video is made (test_keyframe_review.py)
    root = write_project(tmp_path / "proj", board, project=PROJECT | {"providers": providers, **NO_STOP})
    result = run_cli("render", str(root), "--episode", "1", "--shots", "2,3", "--json", env=fal.env())
    assert result.code == 0, result.stderr
    manifest = json.loads((root / "storyboards" / "assets" / "ep_001" / "manifest.json").read_text())
    keyframes = {e["shot"]: e["provider"] for e in manifest["intermediates"] if e["stage"] == "keyframes"}
    assert keyframes[3] == "local" and keyframes[2] == "fal"
    assert set(fal.submits_by_body.values()) == {1}


def test_rejected_content_without_fallback_fails_that_shot_only(tmp_path: Path, fal: FakeFal) -> None:
    board = storyboard()
    board["shots"][2]["first_frame_prompt"] = "A forbidden cargo hold"
    project = PROJECT | {"providers": {"default": "local", "keyframes": "fal"}, **NO_STOP}
    root = write_project(tmp_path / "proj", board, project=project)
    result = run_cli("render", str(root), "--episode", "1", "--shots", "3,4", "--json", env=fal.env())
    assert result.code == 1
    report = result.json()
    assert report["shots"] == {"total": 2, "rendered": 1, "cached": 0, "failed": 1, "kept": 0}
    failure = report["failures"][0]
    assert (failure["shot"], failure["stage"]) == (3, "keyframes")
    assert "content_policy_violation" in failure["reason"] or "flagged" in failure["reason"]
    assert "\n" not in failure["reason"]


def test_sigkill_mid_render_then_rerun_pays_once(tmp_path: Path) -> None:
    fal_only = PROJECT | {"providers": {"default": "fal"}, **NO_STOP}
    clean_submits = 15  # what an uninterrupted render submits: 5 keyframe images, 7 upscales, 3 FLF segments

    with FakeFal(slow_s=3.0) as fal:
        root = write_project(tmp_path / "killed", project=fal_only)
        ledger = Ledger.at(root / ".reelflow")
        render_killed_in_flight(root, fal, 3)
        assert 3 <= fal.total_submits() < clean_submits, "killed mid-way"
        assert ledger.rows("status = 'pending'"), "requests were written down before waiting"

        fal.slow_s = 0.0
        result = run_cli("render", str(root), "--episode", "1", "--json", env=fal.env())
        assert result.code == 0, result.stderr
        assert fal.total_submits() == clean_submits
        assert set(fal.submits_by_body.values()) == {1}
    check_episode(root, 1)
