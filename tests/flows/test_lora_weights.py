"""LoRA weights the project owns, on fal's queue (a loopback fake): trained LoRAs keep their weights and sha256 in the
project; when fal's CDN has dropped a URL (or it is older than fal's 7 days), a render uploads the weights again and
records the new URL; cache keys hold the weights' sha256, so no URL change and no upgrade from path-keyed caches
makes anything again."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reelflow.media.hashing import sha256_file
from reelflow.schemas.assets import AssetRef, MediaInfo
from reelflow.schemas.wire.fal import FLUX2_LORA, WAN_FLF
from reelflow.state.cache import Operation
from reelflow.state.db import database
from reelflow.state.loras import REGISTRY, read_registry

from candidates_fixture import jinx_picked
from conftest import run_cli
from fakes.fal import FakeFal
from projects import PROJECT, storyboard, write_project

pytestmark = pytest.mark.usefixtures("prefect_api")
ON_FAL = {"default": "local", "training": "fal", "keyframes": "fal", "video": "fal"}
LORA_ENDPOINTS = (FLUX2_LORA, WAN_FLF)
NO_MEDIA = MediaInfo(kind="image", width=0, height=0)


def jinx_project(root: Path, shots: tuple[int, ...] = (2, 4)) -> Path:
    """Shots of JINX (by default a first-last-frame video and a held frame) rendered on fal, his candidates picked."""
    board = storyboard(only=shots)
    for shot in board["shots"]:
        shot["characters_in_shot"] = ["JINX"]
    # fal has no judge: these frames would wait for review before video (tests/flows/test_keyframe_review.py)
    return jinx_picked(write_project(root, board, project=PROJECT | {"providers": ON_FAL, "review": {"keyframes": "none"}}))


def train(root: Path, fal: FakeFal, *types: str) -> list[dict[str, Any]]:
    for lora_type in types:
        result = run_cli("train", str(root), "JINX", "--type", lora_type, "--json", env=fal.env())
        assert result.code == 0, result.stderr
    return json.loads((root / REGISTRY).read_text())["characters"]["JINX"]


def render(root: Path, fal: FakeFal) -> dict[str, Any]:
    result = run_cli("render", str(root), "--episode", "1", "--json", env=fal.env())
    assert result.code == 0, result.stderr
    return result.json()


def lora_records(root: Path) -> dict[str, dict[str, Any]]:
    """The cache records of every stage that used a LoRA, by key."""
    with database(root / ".reelflow").write() as sql:
        rows = sql.execute("SELECT cache_key, record FROM cache").fetchall()
    records = {row["cache_key"]: json.loads(row["record"]) for row in rows}
    return {key: record for key, record in records.items() if record["provenance"]["params"].get("loras")}


def lora_paths_sent(fal: FakeFal) -> list[str]:
    """The weights URL of every LoRA in every submit to a LoRA endpoint, in submit order."""
    return [lora["path"] for job in fal.jobs.values() if job.endpoint in LORA_ENDPOINTS
            for lora in job.body.get("loras", [])]


def key_of(record: dict[str, Any], params: dict[str, Any]) -> str:
    """The key of the operation `record` was made by, with `params`."""
    made = record["provenance"]
    inputs = [AssetRef(path=Path(item["sha256"]), sha256=item["sha256"], media=NO_MEDIA) for item in made["inputs"]]
    return Operation(made["stage"], made["stage_version"], made["provider"], params["model"], params, inputs).key


def test_weights_fal_dropped_are_uploaded_again_and_nothing_is_made_again(tmp_path: Path, fal: FakeFal) -> None:
    root = jinx_project(tmp_path / "proj")
    entries = train(root, fal, "flux2", "wan22")
    assert sorted((entry["base_model"], entry.get("noise", "")) for entry in entries) == [
        ("flux-2", ""), ("wan-2.2", "high"), ("wan-2.2", "low")]
    for entry in entries:
        assert fal.serves(entry["path"]) and sha256_file(root / entry["file"]) == entry["sha256"], "owned, by sha256"
    first = render(root, fal)
    assert first["provider_calls"] > 0
    keys = lora_records(root)
    assert {record["provenance"]["stage"] for record in keys.values()} == {"keyframes", "video"}
    assert set(lora_paths_sent(fal)) == {entry["path"] for entry in entries}
    keyed = [ref.model_dump(mode="json") for ref in read_registry(root).for_model(["JINX"], WAN_FLF, root=root)]

    # fal's CDN drops the FLUX.2 weights (a 404); the WAN weights are 8 days old, past fal's retention
    flux = next(entry for entry in entries if entry["base_model"] == "flux-2")
    fal.expire(flux["path"])
    registry = json.loads((root / REGISTRY).read_text())
    old = (datetime.now(UTC) - timedelta(days=8)).replace(microsecond=0).isoformat()
    for entry in registry["characters"]["JINX"]:
        entry["trained_at"] = old if entry["base_model"] == "wan-2.2" else entry["trained_at"]
    (root / REGISTRY).write_text(json.dumps(registry))
    submits, uploads = fal.total_submits(), len(fal.uploads)

    unchanged = render(root, fal)
    assert unchanged["provider_calls"] == 0 and fal.total_submits() == submits and len(fal.uploads) == uploads
    assert lora_records(root).keys() == keys.keys()

    # the first frame and the motion change: shot 1's first keyframe and its clip run again, with the JINX LoRAs
    board = json.loads((root / "storyboards" / "storyboard_ep_001.json").read_text())
    board["shots"][0] |= {"first_frame_prompt": "Jinx kneels by a crate, lit by a torch", "motion_prompt": "she rises"}
    (root / "storyboards" / "storyboard_ep_001.json").write_text(json.dumps(board))
    sent_before = len(lora_paths_sent(fal))
    changed = render(root, fal)
    assert changed["provider_calls"] > 0
    assert {line["shot"]: line["status"] for line in changed["lines"]} == {1: "rendered", 2: "cached"}
    sent = lora_paths_sent(fal)[sent_before:]
    assert sent and not set(sent) & {entry["path"] for entry in entries}, "no dropped or old URL was sent"
    assert all(fal.serves(url) for url in sent)
    assert {entry["sha256"] for entry in entries} <= set(fal.uploads[uploads:]), "each weights file, uploaded again"
    now = read_registry(root).characters["JINX"]
    assert [(entry.path, entry.sha256, entry.file) for entry in now] == [
        (entry["path"], entry["sha256"], entry["file"]) for entry in entries], "the weights are the same"
    assert {entry.url for entry in now} == set(sent) and all(entry.url_at for entry in now)
    after = lora_records(root)
    assert keys.keys() < after.keys(), "every stage cached before keeps its key across the URL change"
    assert {after[key]["provenance"]["stage"] for key in after.keys() - keys.keys()} == {"keyframes", "video"}
    assert [ref.model_dump(mode="json") for ref in read_registry(root).for_model(["JINX"], WAN_FLF, root=root)] == keyed


def test_a_cache_keyed_by_lora_urls_renders_with_no_calls(tmp_path: Path, fal: FakeFal) -> None:
    root = jinx_project(tmp_path / "proj", shots=(4,))  # a held frame: its keyframe carries the FLUX.2 LoRA
    [entry] = train(root, fal, "flux2")
    made = render(root, fal)
    assert made["provider_calls"] > 0
    records = lora_records(root)
    assert records

    # the cache as reelflow wrote it before LoRAs were keyed by sha256: each LoRA by its registry path (the URL)
    with database(root / ".reelflow").write() as sql:
        for key, record in records.items():
            params = record["provenance"]["params"]
            assert key_of(record, params) == key
            loras = [{name: value for name, value in lora.items() if name != "sha256"} | {"path": entry["path"]}
                     for lora in params["loras"]]
            assert all(lora["sha256"] == entry["sha256"] for lora in params["loras"])
            old_params = params | {"loras": loras}
            old_key = key_of(record, old_params)
            record["key"], record["provenance"]["params"] = old_key, old_params
            sql.execute("UPDATE cache SET cache_key = ?, record = ? WHERE cache_key = ?",
                        (old_key, json.dumps(record), key))
    assert not lora_records(root).keys() & records.keys()

    submits = fal.total_submits()
    upgraded = render(root, fal)
    assert upgraded["provider_calls"] == 0 and fal.total_submits() == submits, "nothing made again"
    assert records.keys() <= lora_records(root).keys(), "each record found by its old key, indexed by the new one"
