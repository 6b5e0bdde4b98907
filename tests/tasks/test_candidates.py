"""The candidates' diversity grid, keystone choice and captions: spread evenly, deterministic, only what varies."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from reelflow.media.hashing import sha256_file
from reelflow.media.probe import probe_image
from reelflow.schemas.assets import AssetRef
from reelflow.schemas.characters import LORA_TYPES
from reelflow.schemas.errors import ContractError
from reelflow.schemas.load import load_project
from reelflow.schemas.project import Character, Location, Wardrobe
from reelflow.schemas.wire.fal import NANO_BANANA_EDIT, QWEN_ANGLES, SEEDVR_UPSCALE
from reelflow.tasks.candidates import (
    ANGLES,
    EXPRESSIONS,
    LIGHTING,
    Keystone,
    caption,
    character_locations,
    diversity_grid,
    edit_prompt,
    keystone_angle,
    keystones_for,
    mode_steps,
    read_keystones,
)
from reelflow.tasks.training import identity_phrases, named_phrases

from projects import BREAKDOWN, write_project

PLACES = [Location(id=f"PLACE_{n}", zone="ship", description=f"a room with {n} doors and pale walls") for n in range(6)]


def test_grid_spreads_every_dimension_evenly_and_is_deterministic() -> None:
    cells = diversity_grid(24, PLACES, seed=7)
    assert len(cells) == len({(c.angle, c.location.id, c.expression, c.lighting) for c in cells}) == 24
    for values, size in ((Counter(c.angle.label for c in cells), len(ANGLES)),
                         (Counter(c.location.id for c in cells), len(PLACES)),
                         (Counter(c.expression for c in cells), len(EXPRESSIONS)),
                         (Counter(c.lighting for c in cells), len(LIGHTING))):
        assert len(values) == size, "every value is used before any repeats"
        assert max(values.values()) - min(values.values()) <= 1
    assert diversity_grid(24, PLACES, seed=7) == cells
    assert diversity_grid(24, PLACES, seed=8) != cells
    assert diversity_grid(30, PLACES, seed=7)[:24] == cells, "a longer run extends a shorter one"


def test_wardrobes_are_an_axis_spread_evenly_into_prompts_and_captions_and_one_or_none_keeps_the_old_grid() -> None:
    outfits = [Wardrobe(id="oilskin", description="a long oilskin coat"), Wardrobe(id="suit"), Wardrobe(id="flight_suit")]
    cells = diversity_grid(24, PLACES, seed=7, wardrobes=outfits)
    assert Counter(c.wardrobe.id for c in cells if c.wardrobe) == {"oilskin": 8, "suit": 8, "flight_suit": 8}
    assert len({c.expression for c in cells}) == len(EXPRESSIONS) and diversity_grid(24, PLACES, 7, outfits) == cells
    coat = next(c for c in cells if c.wardrobe == outfits[0])
    assert "dressed in a long oilskin coat." in edit_prompt(coat, keep_angle=True)
    assert "They are dressed in a long oilskin coat." in caption("ana_tst", coat, "flux2")
    assert "wearing flight suit," in caption("ana_tst", next(c for c in cells if c.wardrobe == outfits[2]), "z_image")
    # the grid made before wardrobes were an axis (so a re-run finds its cached candidates), with one wardrobe too
    before = [("back three-quarter", "PLACE_2", "angry", "low-key"),
              ("profile left", "PLACE_1", "laughing", "soft daylight"),
              ("full body front", "PLACE_5", "neutral", "neon rim"),
              ("three-quarter left", "PLACE_3", "soft smile", "golden hour")]
    for wardrobes in ([], outfits[:1]):
        grid = diversity_grid(4, PLACES, seed=7, wardrobes=wardrobes)
        assert [(c.angle.label, c.location.id, c.expression, c.lighting) for c in grid] == before
    assert "hair and outfit as in the reference images" in edit_prompt(diversity_grid(1, PLACES, seed=7)[0], True)


def test_keystone_angles_from_names_and_the_three_a_candidate_gets(tmp_path: Path) -> None:
    assert [keystone_angle(n) for n in ("jinx_front.png", "Jinx-Profile-Left.jpg", "3q_right.webp", "back.png",
                                        "closeup.png", "side_right.png")] == [0.0, 270.0, 45.0, 180.0, None, 90.0]

    def stone(name: str) -> Keystone:
        path = tmp_path / name
        Image.new("RGB", (8, 8)).save(path)
        return Keystone(AssetRef(path=path, sha256=sha256_file(path), media=probe_image(path)), keystone_angle(name))

    stones = [stone(n) for n in ("a_profile_left.png", "b_front.png", "c_3q_right.png", "d_back.png")]
    picked = keystones_for(stones, 60.0, index=0)
    assert [k.name for k in picked][:2] == ["b_front.png", "c_3q_right.png"] and len(picked) == 3
    assert [k.name for k in keystones_for(stones, 260.0, index=0)][:2] == ["b_front.png", "a_profile_left.png"]
    assert [k.name for k in keystones_for(stones[:1], 90.0, index=3)] == ["a_profile_left.png"]


def test_captions_fit_each_type_and_never_describe_the_identity() -> None:
    long_place = Location(id="HABITAT_RING_C", description=" ".join(["corridor"] * 120))
    bare_place = Location(id="AIRLOCK_7")
    phrases = identity_phrases(Character.model_validate(BREAKDOWN["characters"][0]))
    coveralls = Character(id="JINX", description="mechanic in orange coveralls, shaved head",
                          wardrobes=[Wardrobe(id="work", description="orange coveralls")])
    assert "shaved head" in identity_phrases(coveralls) and "orange coveralls" not in identity_phrases(coveralls), \
        "a listed wardrobe varies: naming it is not describing the identity"
    for lora_type, spec in LORA_TYPES.items():
        low, high = spec.caption_words
        for place in (long_place, bare_place, *PLACES):
            for cell in diversity_grid(12, [place], seed=1):
                text = caption("ana_tst", cell, lora_type)
                assert low <= len(text.split()) <= high, (lora_type, text)
                assert text.startswith(("ana_tst", "A photograph of ana_tst"))
                assert not named_phrases(text, phrases)


def test_locations_come_from_the_storyboards_then_fill_to_five(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    breakdown = json.loads((root / "breakdown.json").read_text())
    breakdown["locations"] += [{"id": f"ROOM{n}", "zone": "ship"} for n in range(6)]
    (root / "breakdown.json").write_text(json.dumps(breakdown))
    places = [location.id for location in character_locations(load_project(root), "ANA")]
    assert places[0] == "DECK" and len(places) == 5, "ANA is seen on DECK only; the project's others fill up to five"
    assert places[1:] == ["HOLD", "ROOM0", "ROOM1", "ROOM2"]


def test_breakdown_wardrobes_are_names_or_described_and_each_problem_is_a_line(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    breakdown = json.loads((root / "breakdown.json").read_text())
    ana, bo = breakdown["characters"]
    ana |= {"wardrobes": ["oilskin", {"id": "suit", "description": "a grey suit"}], "default_wardrobe": "suit"}
    (root / "breakdown.json").write_text(json.dumps(breakdown))
    assert load_project(root).breakdown.characters[0].wardrobes == [Wardrobe(id="oilskin"),
                                                                    Wardrobe(id="suit", description="a grey suit")]
    ana["wardrobes"].append("oilskin")
    bo |= {"wardrobes": ["apron"], "default_wardrobe": "parka"}
    (root / "breakdown.json").write_text(json.dumps(breakdown))
    with pytest.raises(ContractError) as refused:
        load_project(root)
    assert str(refused.value).splitlines() == [
        "breakdown.json: characters[0]: wardrobes: 'oilskin' appears twice",
        "breakdown.json: characters[1]: default_wardrobe 'parka' is not one of its wardrobes (apron)"]


def test_modes_chain_their_models_and_local_makes_every_step() -> None:
    assert [(s.name, s.provider, s.model) for s in mode_steps("threepass", "fal", None)] == [
        ("angle", "fal", QWEN_ANGLES), ("edit", "fal", NANO_BANANA_EDIT), ("upscale", "fal", SEEDVR_UPSCALE)]
    assert [(s.name, s.provider) for s in mode_steps("hybrid", "fal", None)] == [("angle", "fal"), ("edit", "gemini")]
    assert [s.provider for s in mode_steps("threepass", "local", None)] == ["local"] * 3
    assert [s.model for s in mode_steps("gemini", "gemini", None)] == ["gemini-3-pro-image"]


def test_keystones_must_exist_and_open(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    with pytest.raises(ContractError, match=r"visual/lora_candidates/ANA/keystones: no keystone images"):
        read_keystones(load_project(root), "ANA")
    folder = root / "visual" / "lora_candidates" / "ANA" / "keystones"
    folder.mkdir(parents=True)
    (folder / "front.png").write_bytes(b"not a png")
    (folder / "notes.txt").write_text("ignored")
    with pytest.raises(ContractError, match=r"keystones/front.png: cannot read image"):
        read_keystones(load_project(root), "ANA")
