"""Reference images for keyframes: a shot's wardrobe and its location's set ride in its keyframe requests, as many as
each model takes; they are in the cache key by content; a project without refs makes today's requests, byte for byte;
a wardrobe with no refs on disk is one line from `validate`."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reelflow.flows.render import shot_jobs
from reelflow.providers.comfyui import graphs
from reelflow.providers.comfyui.models import model_files
from reelflow.providers.fal import endpoints
from reelflow.providers.local.draw import draw_keyframe
from reelflow.providers.local.judge import judge_pixels
from reelflow.schemas import gpu
from reelflow.schemas.load import load_project, load_storyboard
from reelflow.schemas.requests import ImageRequest
from reelflow.state.cache import dry_run
from reelflow.tasks.job import ShotJob
from reelflow.tasks.keyframes import FRAME_SIZE, STRIP_SIZE, _image_request, frame_prompt, make_keyframes
from reelflow.tasks.upgrades import shot_inputs

from conftest import run_cli
from projects import ANA_REFS, DECK_REFS, PROJECT, png, refs_project, storyboard, write_project

FAL, GEMINI, COMFY, ZIMAGE = "fal-ai/flux-2/lora", "gemini-3.1-flash-image", gpu.FLUX2_DEV, "fal-ai/z-image/turbo"


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests for fal and Gemini are built and priced, never sent."""
    monkeypatch.setenv("FAL_KEY", "check-only")
    monkeypatch.setenv("GEMINI_API_KEY", "check-only")


def set_order(root: Path) -> list[str]:
    """DECK's refs in the order requests carry them: by content (their names say nothing)."""
    folder = root / "visual" / "locations" / "DECK" / "refs"
    return [f"DECK/{name}" for name in sorted(DECK_REFS, key=lambda name: hashlib.sha256(
        (folder / f"{name}.png").read_bytes()).hexdigest())]


def jobs(root: Path, project: dict[str, Any] | None = None) -> dict[int, ShotJob]:
    if project is not None:
        (root / "project.json").write_text(json.dumps(project))
    folder = load_project(root)
    board = load_storyboard(folder, 1)
    return {job.shot.shot: job for job in shot_jobs(folder, board, {shot.shot: 1 for shot in board.shots}, run="t")}


def request(job: ShotJob, model: str) -> ImageRequest:
    """The shot's keyframe request to `model`: its strip, else its first frame."""
    strip = job.shot.generation_approach.value == "triptych_split_flf"
    role = "strip" if strip else "first"
    size = (STRIP_SIZE if strip else FRAME_SIZE)[job.project.aspect_ratio]
    return _image_request(job, model, frame_prompt(job, "hero" if strip else "first"), size, role)


def names(request: ImageRequest) -> list[str]:
    return [f"{path.parent.parent.name}/{path.stem}" for path in request.references]


def keyframe_keys(job: ShotJob) -> list[str]:
    """The cache keys of the shot's keyframe calls, as a render would key them (a walk that makes nothing)."""
    with dry_run(lookups=False):
        result = make_keyframes.fn(job)
    return [entry.sha256.removeprefix("planned-")[:64] for entry in result.entries if entry.stage == "keyframes"]


def test_a_shot_with_a_wardrobe_carries_its_refs_and_the_set_as_many_as_each_model_takes(tmp_path: Path) -> None:
    root = refs_project(tmp_path / "proj")
    shots, deck = jobs(root), set_order(root)
    oilskin = request(shots[4], FAL)  # ANA in her oilskin on DECK: her one ref, then the set's two
    assert names(oilskin) == ["ANA/oilskin_front", *deck]
    assert oilskin.notes is not None and oilskin.notes.wardrobe == (("ANA", "oilskin"),)
    # shot 1: ANA (her default flightsuit, front first) and BO (no wardrobe, no refs) on DECK, in turns
    assert names(request(shots[1], FAL)) == ["ANA/flightsuit_front", deck[0], "ANA/flightsuit_3q_right"]
    assert names(request(shots[1], GEMINI)) == names(request(shots[1], FAL))
    assert names(request(shots[1], COMFY)) == ["ANA/flightsuit_front", deck[0], "ANA/flightsuit_3q_right", deck[1],
                                                 "ANA/flightsuit_back"]
    assert request(shots[1], ZIMAGE).references == ()  # Z-Image takes none
    assert request(shots[2], FAL).references == () and request(shots[2], FAL).notes.wardrobe == ()  # BO in HOLD
    assert request(shots[1], FAL) == request(jobs(tmp_path / "proj")[1], FAL), "the same refs, in the same order"


def test_where_the_frame_says_how_the_camera_sees_them_the_closest_angle_goes(tmp_path: Path) -> None:
    board = storyboard()  # shot 4: ANA on DECK in her default flightsuit (front, 3q_right, back)
    board["shots"][3]["first_frame_prompt"] = "Ana, seen from behind, at the window"
    root = refs_project(tmp_path / "proj", board)
    deck = set_order(root)
    assert names(request(jobs(root)[4], COMFY)) == ["ANA/flightsuit_back", *deck]
    board["shots"][3] |= {"first_frame_prompt": "Ana at the window", "camera": {"shot_type": "medium, three-quarter view"}}
    (root / "storyboards" / "storyboard_ep_001.json").write_text(json.dumps(board))
    assert names(request(jobs(root)[4], COMFY)) == ["ANA/flightsuit_3q_right", *deck]
    board["shots"][3]["camera"] = None  # nothing says: every angle, front first, in turns with the set
    (root / "storyboards" / "storyboard_ep_001.json").write_text(json.dumps(board))
    assert names(request(jobs(root)[4], COMFY)) == ["ANA/flightsuit_front", deck[0], "ANA/flightsuit_3q_right",
                                                     deck[1], "ANA/flightsuit_back"]


# A project without refs, as every request was built before refs existed (measured on the code before the change):
# the fal arguments as sent, the requests' params (the local provider's key is them and its own drawing's version),
# ComfyUI's graph, and the cloud providers' keyframe keys.
TODAY_FAL_WIRE = {
    1: '{"prompt": "Triptych, three frames: Ana reaches for the throttle\\nHero (middle panel): Ana grips the throttle as '
       'alarms flash red across the deck", "image_size": {"width": 1536, "height": 912}, "num_inference_steps": 28, '
       '"seed": 1039944911, "num_images": 1, "output_format": "png"}',
    2: '{"prompt": "Bo kneels by a crate", "image_size": {"width": 576, "height": 1024}, "num_inference_steps": 28, '
       '"seed": 1234, "num_images": 1, "output_format": "png"}',
}
TODAY_PARAMS = {
    (1, FAL): "7109172d2be6255eaf4f6b5209529cd398182938647d682c6afac84396269880",
    (1, GEMINI): "a73307656fc98b050dac25ea6a13bfe452970f25d7234c19b35618e9c5624663",
    (1, COMFY): "b7878aae355df4010d81ce713889c73c53ea9ceb009110d80cb0eb466602a310",
    (2, FAL): "3860f69883cbd782f66726d0fa9677ef78ccc481c4fa4816e2176fad6caa927d",
    (2, GEMINI): "fc68680bfef5078e052a98177cf515dcac184296a8de7c46fa05029d93ff73c4",
    (2, COMFY): "5cf367296d09f0cbae202d68920b6574eb70dd16348daf2bf58030c2297dc38f",
}
TODAY_GRAPH = {1: "74416e3611aa0f3b089684d50df847716c9e1b89c2f13773e9cd40fb3aad546f",
               2: "db6c65b135496f3dd397e6873739a9d8587a0092d48c480c166658614f3731e7"}
TODAY_KEYS = {
    "fal": {1: ["8f590a5960b0cab24e8ce04c246173f30f019cd1d76ed308279d7025cb62a19e"],
            2: ["8293e7a97d17730ce9ee1da082e1b86bbac59feee1c55a1d2ea2847f2edc07e5",
                "c7a3fa1ad49bf7b35f21eecea5df0e9d67b2c7e1f1b0a8dffa237cee0f05f143"],
            3: ["c69eaf5fd384f01b89c19ff61d554a6da50f59e76341f11227a761adf64e6de9"],
            4: ["cbd3409ea1fe8eec1e65ce0e6c63d792cf38b726a720b9eeb9f52997c1011ac2"]},
    "gemini": {1: ["3b667c7b1759aea85535e3eec11428250f6d97302dd54fe4bbafecf6cac21c51"],
               2: ["c6e996eb913f95e29de416e26960f85233c703f311327490c61a4270c9085513",
                   "fcd65022021b23601c3064d1f723e909a073b377e79d95063c17f0556af3ada0"],
               3: ["093d73357cf6e9c4112cbe8259e123222145934caaa70f257febf4447dfa901b"],
               4: ["ff5d87dac910ebc0b5f44c8b92e8f0892425ff3f764bc81e28d8d5fb6c7878a0"]},
}


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def test_a_project_without_refs_makes_todays_requests_byte_for_byte(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    png(root / "visual" / "characters" / "ANA" / "refs" / "oilskin_front.png", (1, 2, 3))  # named by no shot
    shots = jobs(root)
    for number in (1, 2):
        fal = request(shots[number], FAL)
        assert json.dumps(endpoints.text_to_image(fal, [])) == TODAY_FAL_WIRE[number]
        for model in (FAL, GEMINI, COMFY):
            assert _digest(request(shots[number], model).params()) == TODAY_PARAMS[number, model], (number, model)
        nodes = graphs.keyframe_graph(request(shots[number], COMFY), model_files({}), []).nodes
        assert hashlib.sha256(json.dumps(nodes).encode()).hexdigest() == TODAY_GRAPH[number]
    for provider, expected in TODAY_KEYS.items():
        project = PROJECT | {"providers": {"default": "local", "keyframes": provider}}
        assert {number: keyframe_keys(job) for number, job in jobs(root, project).items()} == expected, provider


def test_a_refs_bytes_are_in_the_keyframes_key_its_name_and_folder_are_not(tmp_path: Path) -> None:
    root = refs_project(tmp_path / "proj")
    before, take = keyframe_keys(jobs(root)[4]), shot_inputs(jobs(root)[4])
    deck = root / "visual" / "locations" / "DECK" / "refs"
    (deck / "deck.png").rename(deck / "zz_renamed.png")
    moved = root.parent / "moved"
    shutil.copytree(root, moved)
    assert keyframe_keys(jobs(moved)[4]) == before and shot_inputs(jobs(moved)[4]) == take
    png(moved / "visual" / "characters" / "ANA" / "refs" / "oilskin_front.png", (240, 220, 31))
    assert keyframe_keys(jobs(moved)[4]) != before, "new bytes in a ref make the frame again"
    assert shot_inputs(jobs(moved)[4]) != take, "and its take's inputs changed: a new take, not an upgrade"
    assert keyframe_keys(jobs(moved)[2]) == keyframe_keys(jobs(root)[2]), "a shot without refs is untouched"


def test_the_local_provider_draws_the_refs_and_the_wardrobe_and_still_passes_its_judge(tmp_path: Path) -> None:
    shot = jobs(refs_project(tmp_path / "proj"))[4]
    with_refs = request(shot, FAL)
    plain = with_refs.model_copy(update={"references": (), "notes": with_refs.notes.model_copy(update={"wardrobe": ()})})
    drawn, bare = draw_keyframe(with_refs), draw_keyframe(plain)
    assert drawn.tobytes() != bare.tobytes()
    board = np.asarray(drawn.crop((drawn.width // 2, 0, drawn.width, drawn.height // 5))).reshape(-1, 3)
    colours = {tuple(int(value) for value in pixel) for pixel in board}
    assert {ANA_REFS["oilskin_front"], *DECK_REFS.values()} <= colours, "each ref's own pixels, in the board"
    assert judge_pixels(drawn, ("ANA",), "DECK") == (1.0, [])


def test_bad_wardrobes_are_one_line_each_from_validate_exit_2(tmp_path: Path) -> None:
    board = storyboard()
    board["shots"][3]["wardrobe"] = {"ANA": "spacesuit", "BO": "oilskin"}  # BO is not in shot 4
    root = refs_project(tmp_path / "proj", board)
    breakdown = json.loads((root / "breakdown.json").read_text())
    breakdown["characters"][1]["default_wardrobe"] = "overalls"  # BO's: shots 1 and 2 wear it, no refs
    (root / "breakdown.json").write_text(json.dumps(breakdown))
    png(root / "visual" / "characters" / "ANA" / "refs" / "spacesuit-front.png", (9, 9, 9))  # not <wardrobe>_<angle>
    result = run_cli("validate", str(root))
    assert result.code == 2, result.stdout + result.stderr
    want = "want visual/characters/{}/refs/{}_<angle>.png (front, 3q_right, profile_right, back, profile_left, 3q_left)"
    assert result.stderr.splitlines() == [
        f"error: storyboard_ep_001.json: shot 1: wardrobe.BO: default_wardrobe 'overalls' in breakdown.json: no refs on "
        f"disk: {want.format('BO', 'overalls')}; have: none (and 1 more shot)",
        f"error: storyboard_ep_001.json: shot 4: wardrobe.ANA: 'spacesuit': no refs on disk: "
        f"{want.format('ANA', 'spacesuit')}; have: flightsuit, oilskin; not named so: spacesuit-front.png",
        'error: storyboard_ep_001.json: shot 4: wardrobe.BO: "BO" is not in characters_in_shot',
    ]
