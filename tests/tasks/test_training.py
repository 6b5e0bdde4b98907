"""The dataset checks before any training spend, the training zip, and WAN 2.2's two adapters."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from PIL import Image

from reelflow.media.hashing import sha256_file
from reelflow.schemas.characters import CandidateManifest
from reelflow.schemas.project import Character
from reelflow.state.candidates import candidates_dir, manifest_path, require_candidates, write_candidates
from reelflow.tasks.training import _zip, dataset_problems, dataset_warnings, noise_labels, selected_refs

from candidates_fixture import TWINS, make_candidates

JINX = Character(id="JINX", name="Jinx", description="Red-haired mechanic with a scar over her left eye")
WHERE = "visual/lora_candidates/JINX/manifest.json"


def select(root: Path, manifest: CandidateManifest, indexes: list[int]) -> CandidateManifest:
    for index, candidate in enumerate(manifest.candidates):
        candidate.selected = index in indexes
    write_candidates(root, manifest)
    return manifest


def captions(manifest: CandidateManifest, text: str = "jinx_rf, {n}, a medium shot in soft light") -> dict[str, str]:
    return {c.file: text.format(n=n) for n, c in enumerate(manifest.selected())}


def test_a_good_selection_has_no_problems(tmp_path: Path) -> None:
    manifest = select(tmp_path, make_candidates(tmp_path), [i for i in range(20) if i != TWINS[1]])
    assert dataset_problems(tmp_path, manifest, JINX, captions(manifest)) == []


def test_every_problem_is_one_line_in_one_pass(tmp_path: Path) -> None:
    manifest = select(tmp_path, make_candidates(tmp_path), [0, 1, *TWINS, 4, 5])  # 6 images, 2 places, the twins
    (candidates_dir(tmp_path, "JINX") / manifest.candidates[5].file).unlink()
    problems = dataset_problems(tmp_path, manifest, JINX, captions(manifest, "jinx_rf {n}, red-haired mechanic smiling"))
    assert problems == [
        f"{WHERE}: 6 images selected; a LoRA dataset needs 15-25 (reelflow pick {tmp_path} JINX)",
        f"{WHERE}: 2 backgrounds among the selected (loft, rooftop); a LoRA dataset needs at least 5",
        f"{WHERE}: JINX_06.png: the file is missing",
        f"{WHERE}: JINX_03.png and JINX_04.png are near-duplicates (0 of 64 perceptual-hash bits differ); keep one",
        f"{WHERE}: 6 of 6 captions describe the fixed identity ('haired mechanic'); caption only what varies and let the "
        "trigger word carry who it is",
    ]


def test_too_few_wardrobes_and_expressions_are_a_line_each_naming_the_counts(tmp_path: Path) -> None:
    manifest = make_candidates(tmp_path)
    for index, candidate in enumerate(manifest.candidates):
        candidate.wardrobe, candidate.expression = ("oilskin", "suit")[index % 2], ("calm", "angry", "sad", "wry")[index % 4]
    manifest = select(tmp_path, manifest, [i for i in range(20) if i != TWINS[1]])
    assert dataset_problems(tmp_path, manifest, JINX, captions(manifest)) == [
        f"{WHERE}: JINX: selection has 2 wardrobes (oilskin, suit); the seed asks for 3-5",
        f"{WHERE}: JINX: selection has 4 expressions (angry, calm, sad, wry); the seed asks for 5-7",
    ]


def test_a_manifest_from_before_wardrobes_loads_and_its_wardrobes_are_unknown(tmp_path: Path) -> None:
    select(tmp_path, make_candidates(tmp_path), [i for i in range(20) if i != TWINS[1]])
    old = json.loads(manifest_path(tmp_path, "JINX").read_text())
    del old["wardrobes"]
    for candidate in old["candidates"]:
        del candidate["wardrobe"]
    manifest_path(tmp_path, "JINX").write_text(json.dumps(old))
    loaded = require_candidates(tmp_path, "JINX")
    assert loaded.wardrobes is None and {candidate.wardrobe for candidate in loaded.candidates} == {None}
    assert dataset_problems(tmp_path, loaded, JINX, captions(loaded)) == [
        f"{WHERE}: JINX: selection has 0 wardrobes (none) and 19 images of unknown wardrobe; the seed asks for 3-5"]


def test_only_a_wan_dataset_of_stills_is_warned_about(tmp_path: Path) -> None:
    manifest = select(tmp_path, make_candidates(tmp_path), list(range(16)))
    assert dataset_warnings(manifest, "wan22") == [
        f"{WHERE}: wan22: the dataset is 16 images and no video; the seed found that image-trained LoRAs cause flicker "
        "in video (video LoRAs, I2V-trained, are required for WAN 2.2)"]
    assert dataset_warnings(manifest, "flux2") == dataset_warnings(manifest, "z_image") == []


def test_white_backdrops_and_edited_files_are_refused(tmp_path: Path) -> None:
    manifest = make_candidates(tmp_path)
    chosen = [i for i in range(20) if i != TWINS[1]]
    folder = candidates_dir(tmp_path, "JINX")
    for candidate in manifest.candidates:
        image = Image.new("RGB", (64, 64), (250, 250, 250))
        image.paste(Image.open(folder / candidate.file).resize((40, 40)), (12, 12))
        image.save(folder / candidate.file)
        candidate.sha256 = sha256_file(folder / candidate.file)
    manifest = select(tmp_path, manifest, chosen)
    problems = dataset_problems(tmp_path, manifest, JINX, captions(manifest))
    assert f"{WHERE}: every selected image has a white background; a LoRA needs real places behind the character" in problems
    (folder / manifest.candidates[0].file).write_bytes(b"edited")
    assert f"{WHERE}: JINX_01.png: changed since it was made (its sha256 differs)" in dataset_problems(
        tmp_path, manifest, JINX, captions(manifest))


def test_the_zip_pairs_each_image_with_its_caption_and_is_byte_stable(tmp_path: Path) -> None:
    manifest = select(tmp_path, make_candidates(tmp_path), list(range(16)))
    texts = captions(manifest)
    first, second = _zip(selected_refs(tmp_path, manifest), texts, tmp_path / "a.zip"), tmp_path / "b.zip"
    _zip(list(reversed(selected_refs(tmp_path, manifest))), texts, second)
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        names = archive.namelist()
        assert names[:2] == ["JINX_01.png", "JINX_01.txt"] and len(names) == 32
        assert archive.read("JINX_02.txt").decode() == texts["JINX_02.png"]
        assert archive.read("JINX_01.png") == (candidates_dir(tmp_path, "JINX") / "JINX_01.png").read_bytes()


def test_wan_adapters_are_labelled_high_and_low_noise_by_position_never_by_url() -> None:
    # The providers hand WAN's files over high-noise expert first (fal: by the result keys high_noise_lora, then
    # diffusers_lora_file); what the URL says is not read.
    assert noise_labels("wan22", ["https://f/diffusers_lora_file.safetensors", "https://f/high_noise_lora.safetensors"]) \
        == ["high", "low"]
    assert noise_labels("wan22", ["a.safetensors", "b.safetensors"]) == ["high", "low"]
    assert noise_labels("flux2", ["https://f/diffusers_lora_file.safetensors"]) == [None]
