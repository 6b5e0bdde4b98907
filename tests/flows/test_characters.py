"""A character's LoRA offline, end to end through the CLI: keystones → 24 candidates → 18 picked → flux2 trained →
registered → the episode's shots with that character (and only those) render again with the LoRA."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from reelflow.flows.characters import check_candidates_run
from reelflow.schemas.errors import ContractError
from reelflow.schemas.load import load_project
from reelflow.state.db import database
from reelflow.state.generated import generated_unchanged
from reelflow.state.ledger import Ledger

from candidates_fixture import make_candidates
from conftest import run_cli
from projects import BREAKDOWN, shots, write_project

pytestmark = pytest.mark.usefixtures("prefect_api")

PLACES = [{"id": place, "zone": "ship", "description": text} for place, text in (
    ("GALLEY", "a cramped galley with steel counters"), ("BRIDGE", "the bridge, consoles glowing blue"),
    ("ENGINE", "the engine room, pipes and steam"), ("QUARTERS", "narrow crew quarters with bunks"))]
WARDROBES = ["flight_suit", {"id": "parka", "description": "a padded orange parka"}, "dress_uniform"]


def storyboard() -> dict:
    """Three quick held-frame shots: Ana, nobody, Bo."""
    ana, empty = shots()[3], shots()[2]
    bo = ana | {"characters_in_shot": ["BO"], "location": "HOLD", "first_frame_prompt": "Bo checks the crates"}
    return {"schema_version": 3, "episode": 1, "title": "Pilot",
            "shots": [shot | {"shot": n} for n, shot in enumerate((ana, empty, bo), 1)]}


def tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_project(tmp_path_factory.mktemp("characters") / "proj", storyboard())
    breakdown = json.loads((root / "breakdown.json").read_text())
    characters = [character | {"wardrobes": WARDROBES} if character["id"] == "ANA" else character
                  for character in breakdown["characters"]]
    (root / "breakdown.json").write_text(json.dumps(breakdown | {"locations": BREAKDOWN["locations"] + PLACES,
                                                                 "characters": characters}))
    keystones = root / "visual" / "lora_candidates" / "ANA" / "keystones"
    keystones.mkdir(parents=True)
    for index, name in enumerate(("ana_front.png", "ana_profile_left.jpg", "ana_3q_right.webp")):
        image = Image.new("RGB", (384, 640), (60 + 50 * index, 70, 110))
        draw = ImageDraw.Draw(image)
        draw.ellipse((120 + 20 * index, 80, 260 + 20 * index, 260), fill=(225, 185, 150))
        draw.rectangle((110, 260, 280, 630), fill=(40, 90, 170 - 40 * index))
        image.save(keystones / name)
    return root


def test_bad_input_is_one_line_exit_2_and_writes_nothing(project: Path) -> None:
    before = tree(project)
    for args, message in (
        (("candidates", str(project), "ZED"), "error: breakdown.json: characters: no character 'ZED' (have: ANA, BO)"),
        (("candidates", str(project), "BO"),
         "error: visual/lora_candidates/BO/keystones: no keystone images (png, jpg, webp)"),
        (("train", str(project), "ZED", "--type", "flux2"), "error: breakdown.json: characters: no character 'ZED'"),
        (("train", str(project), "ANA", "--type", "sdxl"), "error: --type: 'sdxl' is not one of z_image, flux2, wan22"),
    ):
        result = run_cli(*args)
        assert result.code == 2 and result.stderr.strip().startswith(message), (args, result.stderr)
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert tree(project) == before


def test_a_set_made_with_other_wardrobes_than_the_breakdown_lists_is_refused(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    (root / "visual" / "lora_candidates" / "ANA" / "keystones").mkdir(parents=True)
    Image.new("RGB", (32, 32), (90, 90, 90)).save(root / "visual" / "lora_candidates" / "ANA" / "keystones" / "front.png")
    make_candidates(root, "ANA")  # made in oilskin, suit, coveralls with --seed 7
    with pytest.raises(ContractError, match=r"^visual/lora_candidates/ANA/manifest.json: made with oilskin, suit, "
                                            r"coveralls; breakdown.json now lists none for ANA: move the folder away"):
        check_candidates_run(load_project(root), "ANA", "threepass", 7)


def test_candidates_pick_train_and_render_with_the_lora(project: Path) -> None:
    first = run_cli("render", str(project), "--episode", "1", "--json")
    assert first.code == 0, first.stderr

    made = run_cli("candidates", str(project), "ANA", "--count", "16", "--json")
    assert made.code == 0, made.stderr
    report = made.json()
    folder = project / "visual" / "lora_candidates" / "ANA"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert report["made"] == 16 and len(manifest["candidates"]) == 16 and report["provider_calls"] == 48
    assert report["charged_usd"] == 0 and report["shadow_usd"] > 0
    for candidate in manifest["candidates"]:
        assert (folder / candidate["file"]).is_file() and candidate["caption"].startswith("A photograph of ana_tst")
        assert [step["step"] for step in candidate["lineage"]] == ["angle", "edit", "upscale"]
        assert len(candidate["keystones"]) == 3 and candidate["keystones"][0] == "ana_front.png"
    assert len({c["location"] for c in manifest["candidates"]}) == 5
    assert manifest["wardrobes"] == ["flight_suit", "parka", "dress_uniform"]
    assert sorted(Counter(c["wardrobe"] for c in manifest["candidates"]).values()) == [5, 5, 6], "a grid axis"
    assert all("padded orange parka" in c["caption"] for c in manifest["candidates"] if c["wardrobe"] == "parka")
    again = run_cli("candidates", str(project), "ANA", "--count", "16", "--json").json()
    assert again["cached"] == 16 and again["provider_calls"] == 0, "a re-run pays nothing"

    files = [candidate["file"] for candidate in manifest["candidates"]]
    six, fifteen = project / "six.txt", project / "fifteen.txt"
    six.write_text("\n".join(files[:6]) + "\n")
    refused = run_cli("pick", str(project), "ANA", "--select", str(six))
    assert refused.code == 2 and refused.stderr.strip() == \
        f"error: {six}: 6 images selected; a LoRA dataset needs 15-25"
    assert json.loads((folder / "manifest.json").read_text()) == manifest, "nothing written"
    fifteen.write_text("\n".join(files[:15]) + "\n")
    picked = run_cli("pick", str(project), "ANA", "--select", str(fifteen), "--json")
    assert picked.code == 0 and picked.json()["count"] == 15, picked.stderr
    assert picked.json()["wardrobes"] == ["dress_uniform", "flight_suit", "parka"]

    trained = run_cli("train", str(project), "ANA", "--type", "flux2", "--json")
    assert trained.code == 0 and "warning" not in trained.stderr, trained.stderr
    registry = json.loads((project / "visual" / "lora_registry.json").read_text())
    [entry] = registry["characters"]["ANA"]
    assert entry["base_model"] == "flux-2" and entry["type"] == "flux2" and entry["trigger"] == "ana_tst"
    assert entry["trainer"] == "fal-ai/flux-2-trainer" and entry["steps"] == 1000 and entry["cost_usd"] > 0
    weights = project / entry["path"]
    assert weights.is_file() and weights.read_bytes()[8:9] == b"{", "a real safetensors file"
    assert entry["dataset_sha256"] == trained.json()["dataset_sha256"]
    assert run_cli("train", str(project), "ANA", "--type", "flux2", "--json").json()["provider_calls"] == 0
    assert json.loads((project / "visual" / "lora_registry.json").read_text()) == registry, "a re-run changes nothing"
    written = {path.relative_to(project).as_posix() for path in (project / "visual").rglob("*")
               if path.is_file() and "keystones" not in path.parts}
    assert {f"visual/lora_candidates/ANA/{name}" for name in files} | {"visual/lora_registry.json", entry["path"]} < written
    assert generated_unchanged(project, written) == written, "candidates, picks, dataset, weights, registry: all outputs"
    ledger = Ledger(database(project / ".reelflow"))
    assert len([row for row in ledger.rows() if row.stage == "training"]) == 1, "trained once, paid once"

    second = run_cli("render", str(project), "--episode", "1", "--json")
    assert second.code == 0, second.stderr
    status = {line["shot"]: line["status"] for line in second.json()["lines"]}
    assert status == {1: "rendered", 2: "cached", 3: "cached"}, "only Ana's shot renders again"
    assets = json.loads((project / "storyboards" / "assets" / "ep_001" / "manifest.json").read_text())
    [take] = [line["take"] for line in second.json()["lines"] if line["shot"] == 1]
    assert take == 2, "new footage goes to a new take: T01 stays as it was"
    keyframes = [e for e in assets["assets"] + assets["intermediates"]
                 if e["stage"] == "keyframes" and e["shot"] == 1 and e["take"] == take]
    assert keyframes and all([lora["sha256"] for lora in e["params"]["loras"]] == [entry["sha256"]] for e in keyframes)
