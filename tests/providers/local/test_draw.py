"""Animatic keyframes: sizes, determinism, strips that split cleanly, figures, captions, edits and camera turns."""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reelflow.media.images import resize_cover, save_png, split_triptych
from reelflow.media.phash import NEAR_DUPLICATE_BITS, dhash, hamming
from reelflow.media.qc import check_image, check_split_panel
from reelflow.providers.local.draw import LORA_TAG, character_colour, draw_edit, draw_keyframe, draw_turn
from reelflow.schemas.requests import FrameNotes, FrameRole, ImageRequest, LoraRef

PROMPT = "Jinx braces against the flooded bulkhead as the bell tolls, water to her knees, red light strobing"
JINX_LORA = LoraRef(path="loras/jinx_v3.safetensors", trigger="jnx_v3", character="JINX")


def request(
    role: FrameRole | None = "first",
    *,
    width: int = 256,
    height: int = 448,
    characters: tuple[str, ...] = ("JINX", "KIAN"),
    location: str = "HABITAT_RING_C",
    shot: int = 7,
    prompt: str = PROMPT,
    seed: int = 11,
    loras: tuple[LoraRef, ...] = (),
) -> ImageRequest:
    notes = None
    if role is not None:
        notes = FrameNotes(project="LEV", episode=1, shot=shot, approach="triptych_split_flf", role=role,
                           characters=characters, location=location)
    return ImageRequest(model="fal-ai/flux-2/lora", prompt=prompt, seed=seed, width=width, height=height,
                        notes=notes, loras=loras)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.uint8)


def colour_mask(image: Image.Image, colour: tuple[int, int, int]) -> np.ndarray:
    mask: np.ndarray = np.all(pixels(image) == np.array(colour, dtype=np.uint8), axis=-1)
    return mask


def body(image: Image.Image, character: str) -> tuple[float, int]:
    """Centre x and height of the pixels in a character's body colour."""
    ys, xs = np.nonzero(colour_mask(image, character_colour(character)))
    assert len(xs) > 0, f"{character} is not in the frame"
    return float(xs.mean()), int(ys.max() - ys.min() + 1)


@pytest.mark.parametrize("role", ["first", "hero", "last", "previz", "strip", None])
@pytest.mark.parametrize("size", [(256, 448), (448, 256), (131, 227), (1536, 912)])
def test_frames_have_exactly_the_requested_size(role: FrameRole | None, size: tuple[int, int]) -> None:
    image = draw_keyframe(request(role, width=size[0], height=size[1]))
    assert image.size == size and image.mode == "RGB"


@pytest.mark.parametrize("role", ["hero", "strip", None])
def test_same_request_gives_identical_png_bytes(role: FrameRole | None, tmp_path: Path) -> None:
    save_png(draw_keyframe(request(role, loras=(JINX_LORA,))), tmp_path / "a.png")
    save_png(draw_keyframe(request(role, loras=(JINX_LORA,))), tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_frames_are_identical_across_processes_with_different_hash_seeds() -> None:
    script = (
        "import hashlib, sys; sys.path.insert(0, sys.argv[1]); from test_draw import request, JINX_LORA;"
        "from reelflow.providers.local.draw import draw_keyframe;"
        "print(hashlib.sha256(b''.join(draw_keyframe(request(r, loras=(JINX_LORA,))).tobytes()"
        " for r in ('strip', None))).hexdigest())"
    )
    here = hashlib.sha256(b"".join(draw_keyframe(request(r, loras=(JINX_LORA,))).tobytes() for r in ("strip", None)))
    for hash_seed in ("1", "2"):
        done = subprocess.run([sys.executable, "-c", script, str(Path(__file__).parent)], capture_output=True,
                              text=True, check=True, env=os.environ | {"PYTHONHASHSEED": hash_seed})
        assert done.stdout.strip() == here.hexdigest()


@pytest.mark.parametrize("role", ["first", "hero", "last", "strip", None])
def test_seed_prompt_and_loras_change_the_frame(role: FrameRole | None) -> None:
    base = pixels(draw_keyframe(request(role)))
    for changed in (request(role, seed=12), request(role, prompt=PROMPT + " and smoke"),
                    request(role, loras=(LoraRef(path="loras/other.safetensors", trigger="oth"),))):
        assert not np.array_equal(base, pixels(draw_keyframe(changed)))


def test_backdrop_comes_from_the_location() -> None:
    def above_caption(req: ImageRequest) -> np.ndarray:
        return pixels(draw_keyframe(req))[: int(req.height * 0.6)]

    ring = above_caption(request(characters=()))
    same_place = above_caption(request(characters=(), prompt="Empty corridor, water dripping", seed=99))
    elsewhere = above_caption(request(characters=(), location="MOON_POOL"))
    assert np.mean(np.all(ring == same_place, axis=-1)) > 0.85
    assert np.mean(np.all(ring == elsewhere, axis=-1)) < 0.3


def changed_rows(one: ImageRequest, other: ImageRequest) -> np.ndarray:
    return np.nonzero(np.any(pixels(draw_keyframe(one)) != pixels(draw_keyframe(other)), axis=(1, 2)))[0]


def test_caption_carries_the_shot_details() -> None:
    base = request("hero", shot=7)
    assert base.notes is not None
    other_approach = base.model_copy(update={"notes": base.notes.model_copy(update={"approach": "standard_flf"})})
    for changed in (request("hero", shot=8), other_approach):
        rows = changed_rows(base, changed)
        assert len(rows) > 0 and rows.min() > 0.7 * base.height
    rows = changed_rows(base, request("hero", prompt="A different moment entirely"))
    assert np.any(rows > 0.85 * base.height)


def test_each_character_is_drawn_in_its_own_colour() -> None:
    cast = ("JINX", "KIAN", "VAREK")
    image = draw_keyframe(request("first", characters=cast))
    for character in cast:
        assert colour_mask(image, character_colour(character)).sum() > 100
    assert len({character_colour(character) for character in cast}) == 3
    assert colour_mask(image, character_colour("NOBODY")).sum() == 0


def test_composition_differs_by_role() -> None:
    width = 256
    first_x, first_h = body(draw_keyframe(request("first", characters=("JINX",))), "JINX")
    hero_x, hero_h = body(draw_keyframe(request("hero", characters=("JINX",))), "JINX")
    last_x, last_h = body(draw_keyframe(request("last", characters=("JINX",))), "JINX")
    assert first_x < 0.45 * width
    assert abs(hero_x - width / 2) < 0.08 * width and hero_h > 2 * first_h
    assert last_x > 0.55 * width and first_h < last_h < hero_h


def test_characters_have_different_heights() -> None:
    image = draw_keyframe(request("first", characters=("JINX", "KIAN")))
    assert body(image, "JINX")[1] != body(image, "KIAN")[1]


def test_lora_tag_appears_only_for_a_character_with_an_adapter() -> None:
    tagged = draw_keyframe(request("first", loras=(JINX_LORA,)))
    assert colour_mask(tagged, LORA_TAG).sum() > 20
    assert colour_mask(draw_keyframe(request("first")), LORA_TAG).sum() == 0
    absent = LoraRef(path="loras/varek.safetensors", trigger="vrk", character="VAREK")
    assert colour_mask(draw_keyframe(request("first", loras=(absent,))), LORA_TAG).sum() == 0


@pytest.mark.parametrize("size", [(384, 224), (224, 384), (400, 230), (1536, 912)])
def test_strip_is_three_complete_frames_cut_at_thirds(size: tuple[int, int]) -> None:
    strip = draw_keyframe(request("strip", width=size[0], height=size[1], loras=(JINX_LORA,)))
    panels = split_triptych(strip)
    roles: tuple[FrameRole, ...] = ("first", "hero", "last")
    for role, panel in zip(roles, panels, strict=True):
        alone = draw_keyframe(request(role, width=panel.width, height=panel.height, loras=(JINX_LORA,)))
        assert np.array_equal(pixels(panel), pixels(alone)), f"{role} panel is not a complete frame"
    first, hero, last = (np.asarray(panel.resize(panels[0].size), dtype=np.uint8) for panel in panels)
    for one, other in ((first, hero), (hero, last), (first, last)):
        assert np.mean(np.any(one != other, axis=-1)) > 0.2


def test_generic_frame_without_notes_follows_prompt_and_seed() -> None:
    plain = pixels(draw_keyframe(request(None)))
    assert np.array_equal(plain, pixels(draw_keyframe(request(None))))
    assert not np.array_equal(plain, pixels(draw_keyframe(request(None, seed=5))))
    assert np.mean(np.any(plain != pixels(draw_keyframe(request(None, prompt="A lighthouse in fog"))), axis=-1)) > 0.3


def test_edit_is_visible_deterministic_and_sized() -> None:
    source = draw_keyframe(request("hero"))
    edited = draw_edit(source, "Replace the background with the moon pool", 0, (200, 350))
    assert edited.size == (200, 350)
    assert np.array_equal(pixels(edited), pixels(draw_edit(source, "Replace the background with the moon pool", 0, (200, 350))))
    same_size = draw_edit(source, "Replace the background with the moon pool", 0, source.size)
    assert np.mean(np.abs(pixels(same_size).astype(int) - pixels(source).astype(int))) > 8
    other = draw_edit(source, "Turn her head to the left", 0, source.size)
    assert not np.array_equal(pixels(same_size), pixels(other))


PLACES = ("a rainy neon street", "a sunlit beach", "a library", "a forest clearing", "a subway platform",
          "a rooftop at dusk", "a kitchen", "a desert road", "a snowy mountain pass", "an office")
EXPRESSIONS = ("smiling", "frowning", "laughing", "surprised", "neutral", "angry", "sad", "thoughtful", "sleepy",
               "determined")
LIGHTS = ("soft window light", "hard noon sun", "golden hour backlight", "blue moonlight", "neon rim light",
          "overcast daylight", "candlelight", "studio softbox", "red emergency light", "fluorescent top light")


def instructions(count: int) -> list[str]:
    """`count` identity edits per group that change only the place, only the expression or only the lighting words."""
    def instruction(place: str = "a park", expression: str = "calm", light: str = "even light") -> str:
        return f"Keep her face and outfit. Place her in {place}, {expression} expression, {light}."
    return ([instruction(place=place) for place in PLACES[:count]] + [instruction(expression=e) for e in EXPRESSIONS[:count]]
            + [instruction(light=light) for light in LIGHTS[:count]])


def hashes(images: list[Image.Image], folder: Path) -> list[int]:
    """Each image's dHash, read back from a PNG as a dataset check reads it (stored uncompressed: quicker, same pixels)."""
    folder.mkdir(exist_ok=True)
    for index, image in enumerate(images):
        image.save(folder / f"{index}.png", compress_level=0)
    return [dhash(folder / f"{index}.png") for index in range(len(images))]


def distances(values: list[int]) -> list[int]:
    return [hamming(a, b) for a, b in itertools.combinations(values, 2)]


@pytest.mark.parametrize(("size", "count"), [((96, 168), 10), ((768, 1344), 3)])
def test_backdrop_edits_of_one_source_are_never_near_duplicates(tmp_path: Path, size: tuple[int, int], count: int) -> None:
    source = resize_cover(draw_keyframe(request("hero", characters=("JINX",))), size)
    edits = [draw_edit(source, text, 0, size) for text in instructions(count)]
    edited = hashes(edits, tmp_path / "edits")
    assert len(edited) == 3 * count and min(distances(edited)) > NEAR_DUPLICATE_BITS
    assert min(hamming(value, hashes([source], tmp_path / "source")[0]) for value in edited) > NEAR_DUPLICATE_BITS


def test_backdrop_edit_keeps_the_subject_and_replaces_the_surroundings() -> None:
    source = draw_keyframe(request("hero", characters=("JINX",)))
    plain = pixels(source.convert("L")).astype(float)
    height, width = plain.shape
    centre = (slice(height * 45 // 100, height * 65 // 100), slice(width * 2 // 5, width * 3 // 5))
    edge = (slice(height // 5, None), slice(0, width // 10))
    kept, replaced = [], []
    for text in instructions(4):
        edited = pixels(draw_edit(source, text, 0, source.size).convert("L")).astype(float)
        kept.append(np.corrcoef(plain[centre].ravel(), edited[centre].ravel())[0, 1])
        replaced.append(np.corrcoef(plain[edge].ravel(), edited[edge].ravel())[0, 1])
    assert min(kept) > 0.4 and np.mean(kept) > np.mean(replaced) + 0.3  # the subject under new light, a new place around
    assert np.array_equal(pixels(draw_edit(source, instructions(1)[0], 0, source.size)),
                          pixels(draw_edit(source, instructions(1)[0], 0, source.size)))


TURNS = [(0, 0, 0), (45, 0, 0), (90, 0, 0), (180, 0, 0), (270, 0, 0), (315, 15, 3), (0, 60, 0), (0, -30, 0), (0, 0, 10),
         (135, 30, 6)]


def test_camera_turns_differ_from_each_other_and_from_the_source(tmp_path: Path) -> None:
    source = draw_keyframe(request("hero", characters=("JINX",), width=192, height=336))
    turned = [draw_turn(source, *turn, source.size) for turn in TURNS]
    values = hashes(turned, tmp_path / "turns")
    assert min(distances(values)) > NEAR_DUPLICATE_BITS
    assert min(hamming(value, hashes([source], tmp_path / "source")[0]) for value in values) > NEAR_DUPLICATE_BITS
    assert all(image.size == source.size for image in turned)
    assert np.array_equal(pixels(draw_turn(source, 90, 30, 5, (96, 168))), pixels(draw_turn(source, 90, 30, 5, (96, 168))))


def test_a_turn_past_180_is_the_other_side_mirrored() -> None:
    source = draw_keyframe(request("hero", characters=("JINX",), width=192, height=336))
    right, left = pixels(draw_turn(source, 90, 0, 0, source.size)), pixels(draw_turn(source, 270, 0, 0, source.size))
    (right_x, _), (left_x, _) = body(Image.fromarray(right), "JINX"), body(Image.fromarray(left), "JINX")
    assert right_x > 96 > left_x  # the subject moves right as the camera turns to its right side, left from the other


def test_split_panels_pass_gate_one(tmp_path: Path) -> None:
    strip = draw_keyframe(request("strip", width=1536, height=912))
    for index, panel in enumerate(split_triptych(strip)):
        path = tmp_path / f"panel{index}.png"
        save_png(resize_cover(panel, (768, 1344)), path)
        assert check_split_panel(path, axis="vertical").passed
        assert check_image(path, expected_size=(768, 1344)).passed
