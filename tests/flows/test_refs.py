"""On the wire: a render on fal sends a shot's reference images (its wardrobe, its set) to FLUX.2's LoRA edit endpoint,
valid against its published schema and billed as fal bills it; a shot without refs goes to text to image as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelflow.schemas.wire.fal import FLUX2_LORA, FLUX2_LORA_EDIT, INPUTS

from conftest import run_cli
from fakes.fal import FakeFal
from projects import ANA_REFS, DECK_REFS, PROJECT, refs_project, storyboard

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_a_render_on_fal_sends_a_shots_refs_to_flux2s_lora_edit(tmp_path: Path, fal: FakeFal) -> None:
    board = storyboard(only=(4, 3))  # ANA on DECK, held still; the empty hold
    board["shots"][0]["wardrobe"] = {"ANA": "oilskin"}
    root = refs_project(tmp_path / "proj", board, PROJECT | {"providers": {"default": "fal", "qc": "local"}})
    result = run_cli("render", str(root), "--episode", "1", "--json", env=fal.env())
    assert result.code == 0, result.stderr

    jobs = list(fal.jobs.values())
    for job in jobs:
        INPUTS[job.endpoint].model_validate(job.body)  # every body the service received passes its schema
    [edit] = [job for job in jobs if job.endpoint == FLUX2_LORA_EDIT]
    [plain] = [job for job in jobs if job.endpoint == FLUX2_LORA]
    assert "Ana alone at the window" in edit.body["prompt"] and "image_urls" not in plain.body
    sent = [fal.image(url) for url in edit.body["image_urls"]]
    assert all(image is not None for image in sent), "each ref was uploaded to fal's storage first"
    assert sorted(image.getpixel((0, 0)) for image in sent if image is not None) == sorted(
        [ANA_REFS["oilskin_front"], *DECK_REFS.values()]), "her oilskin and the deck's set, nothing of her flightsuit"
    assert result.json()["charged_usd"] == pytest.approx(fal.billed_usd, abs=1e-6), "priced as fal bills the refs"
    assert fal.billed_usd > 0.021 * 4, "the edit's three input megapixels on top of its output's"
