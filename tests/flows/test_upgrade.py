"""A project rendered by the version before the state database re-renders after the upgrade without paying again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from reelflow.state.ledger import Ledger

from conftest import run_cli
from fakes.fal import FakeFal
from projects import PROJECT, write_project

pytestmark = pytest.mark.usefixtures("prefect_api")
REPO = Path(__file__).resolve().parents[2]
LANDED = "039764a"  # the last commit that kept ledger.jsonl, cache/*.json and rejections/*.txt
OLD_CLI = "import sys; from reelflow.flows.cli import main; sys.argv[0] = 'reelflow'; main()"


def _landed_tree(target: Path) -> Path:
    """The landed version's source as an importable `reelflow` package under `target`."""
    known = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{LANDED}^{{commit}}"], capture_output=True)
    if known.returncode != 0:
        pytest.skip(f"commit {LANDED} is not in this clone's history (a shallow clone)")
    target.mkdir(parents=True, exist_ok=True)
    archive = target / "landed.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), LANDED], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(target / "reelflow", filter="data")
    return target


def test_a_project_rendered_by_the_landed_version_rerenders_for_nothing(tmp_path: Path, fal: FakeFal) -> None:
    # the local judge does not read fal's frames: without the keyframe stop their video is made (test_keyframe_review.py)
    project = PROJECT | {"providers": {"default": "local", "keyframes": "fal"}, "review": {"keyframes": "none"}}
    root = write_project(tmp_path / "proj", project=project)
    (root / "storyboards" / "storyboard_ep_001.json").write_text(
        (root / "storyboards" / "storyboard_ep_001.json").read_text().replace("Empty hold", "A forbidden hold"))
    old = _landed_tree(tmp_path / "landed")
    env = os.environ | fal.env() | {"PYTHONPATH": str(old), "REELFLOW_RETRY_DELAY_S": "0.01",
                                    "PREFECT_LOGGING_TO_API_ENABLED": "false"}
    done = subprocess.run([sys.executable, "-c", OLD_CLI, "render", str(root), "--episode", "1", "--json"],
                          env=env, capture_output=True, text=True, timeout=240)
    before = json.loads(done.stdout)
    assert done.returncode == 1 and [f["shot"] for f in before["failures"]] == [3], "shot 3's prompt is rejected"
    assert (root / ".reelflow" / "ledger.jsonl").is_file() and not (root / ".reelflow" / "state.db").exists()
    submits = fal.total_submits()
    assert submits == 5, "4 keyframe images and the rejected one"

    after = run_cli("render", str(root), "--episode", "1", "--json", env=fal.env())
    assert after.code == 1
    report = after.json()
    # what this version makes otherwise (its segments' frames follow the shots' durations, the local provider draws
    # its captions apart from the motion) is made again by the local provider alone: nothing is charged
    assert report["charged_usd"] == 0
    calls = {row.stage for row in Ledger.at(root / ".reelflow").rows() if row.provider == "local"}
    assert "keyframes" not in calls, "fal's keyframes are never made again"
    assert report["shots"]["total"] == 4 and report["shots"]["failed"] == 1
    assert "recorded earlier; not submitted again" in report["failures"][0]["reason"]
    assert fal.total_submits() == submits, "nothing paid for is paid again, the rejection is remembered"
    imported = [row for row in Ledger.at(root / ".reelflow").rows() if row.provider == "fal"]
    assert [row.status for row in imported].count("completed") == 4 and len(imported) == submits
    assert sum(row.spent_usd for row in imported) == pytest.approx(4 * 0.02), "what the landed version recorded"

    forgot = run_cli("ledger", str(root), "--forget-rejections", "--json")
    assert forgot.code == 0 and "forgot 1 recorded rejection(s)" in forgot.stderr
    retried = run_cli("render", str(root), "--episode", "1", "--json", env=fal.env())
    assert retried.code == 1 and fal.total_submits() == submits + 1, "the rejected prompt is submitted once more"
