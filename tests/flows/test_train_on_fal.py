"""Training on fal's queue (a loopback fake): a SIGKILL while it trains, then a re-run that polls the same request and
registers its weights by URL, with a local copy and its sha256; one submit, paid once."""

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
