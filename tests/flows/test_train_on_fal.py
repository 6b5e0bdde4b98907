"""Training on fal's queue (a loopback fake): a SIGKILL while it trains, then a re-run that polls the same request and
registers its weights by URL, with a local copy and its sha256; one submit, paid once. A selection short of the seed's
wardrobes and expressions is refused before anything is sent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from reelflow.media.hashing import sha256_file
from reelflow.schemas.pricing import load_prices
from reelflow.schemas.wire.fal import WAN22_TRAINER
from reelflow.state.candidates import require_candidates, write_candidates
from reelflow.state.ledger import Ledger

from candidates_fixture import jinx_picked
from conftest import REELFLOW, run_cli
from fakes.fal import FakeFal
from projects import PROJECT, write_project

pytestmark = pytest.mark.usefixtures("prefect_api")


def project_with_selection(root: Path) -> Path:
    return jinx_picked(write_project(root, project=PROJECT | {"providers": {"default": "local", "training": "fal"}}))


def test_a_killed_training_resumes_its_request_and_pays_once(tmp_path: Path) -> None:
    root = project_with_selection(tmp_path / "proj")
    with FakeFal(slow_s=4.0) as fal:
        ledger = Ledger.at(root / ".reelflow")
        environment = os.environ | {"REELFLOW_RETRY_DELAY_S": "0.01"} | fal.env()
        process = subprocess.Popen([str(REELFLOW), "train", str(root), "JINX", "--type", "wan22", "--steps", "600"],
                                   env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (fal.total_submits() == 1 and ledger.rows("status = 'pending'")):
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        assert fal.submits[WAN22_TRAINER] == 1 and ledger.rows("status = 'pending'"), "submitted and written down"
        assert not (root / "visual" / "lora_registry.json").exists()

        fal.slow_s = 0.0
        result = run_cli("train", str(root), "JINX", "--type", "wan22", "--steps", "600", "--json", env=fal.env())
        assert result.code == 0, result.stderr
        assert [line for line in result.stderr.splitlines() if "flicker" in line] == [
            "warning: visual/lora_candidates/JINX/manifest.json: wan22: the dataset is 19 images and no video; the seed "
            "found that image-trained LoRAs cause flicker in video (video LoRAs, I2V-trained, are required for WAN 2.2)"
        ], "warned once"
        assert fal.submits[WAN22_TRAINER] == 1, "the re-run polled the request it had, never paid again"
        [row] = ledger.rows()
        assert row.status == "completed" and row.cost_usd == load_prices().cost(WAN22_TRAINER, steps=600) > 0
    registry = json.loads((root / "visual" / "lora_registry.json").read_text())
    entries = registry["characters"]["JINX"]
    assert [entry["noise"] for entry in entries] == ["high", "low"]
    for entry in entries:
        assert entry["path"].startswith("http://127.0.0.1") and entry["base_model"] == "wan-2.2"
        assert entry["request_id"] == row.request_id and entry["steps"] == 600 and entry["trigger"] == "jinx_rf"
        assert sha256_file(root / entry["file"]) == entry["sha256"], "the downloaded copy is the registered weights"
    assert result.json()["images"] == 19


def test_a_selection_short_of_wardrobes_and_expressions_is_refused_and_nothing_is_sent(tmp_path: Path,
                                                                                      fal: FakeFal) -> None:
    root = project_with_selection(tmp_path / "proj")
    manifest = require_candidates(root, "JINX")
    for index, candidate in enumerate(manifest.candidates):
        candidate.wardrobe, candidate.expression = ("oilskin", "suit")[index % 2], ("calm", "angry", "sad", "wry")[index % 4]
    write_candidates(root, manifest)
    result = run_cli("train", str(root), "JINX", "--type", "wan22", env=fal.env())
    where = "visual/lora_candidates/JINX/manifest.json"
    assert result.code == 2 and result.stderr.splitlines() == [
        f"error: {where}: JINX: selection has 2 wardrobes (oilskin, suit); the seed asks for 3-5",
        f"error: {where}: JINX: selection has 4 expressions (angry, calm, sad, wry); the seed asks for 5-7",
    ], result.stderr
    assert fal.total_submits() == 0 and fal.uploads == [] and fal.jobs == {}, "nothing reached fal"
    assert Ledger.at(root / ".reelflow").rows() == [], "nothing recorded to pay"
    assert not (root / "visual" / "lora_registry.json").exists()
