"""merge: a render's entries replace those of the (shot, take)s it made; other takes stay; the cut is this run's."""

from __future__ import annotations

from pathlib import Path

from reelflow.schemas.assets import InputRef, Manifest, ManifestEntry, MediaInfo
from reelflow.state.manifest import merge, read_manifest, save_merged

IMAGE = MediaInfo(kind="image", width=8, height=8)


def entry(sha: str, shot: int | None, take: int | None, name: str | None, stage: str = "keyframes",
          inputs: tuple[str, ...] = ()) -> ManifestEntry:
    return ManifestEntry(stage=stage, stage_version=1, provider="local", model="m", name=name, shot=shot, take=take,
                         sha256=sha, media=IMAGE, inputs=[InputRef(sha256=i) for i in inputs])


def test_merge_replaces_the_rendered_takes_keeps_the_others_and_names_inputs() -> None:
    old = Manifest(project="TST", episode=1, cut="ep_001.mp4", assets=[
        entry("a1", 1, 1, "S01_T01_first.png"),
        entry("b1", 2, 1, "S02_T01_first.png"),
        entry("b2", 2, 2, "S02_T02_first.png"),
        entry("cut-old", None, None, "ep_001.mp4", stage="cut"),
    ], intermediates=[entry("v1", 2, 2, None, stage="qc")])
    rendered = {(2, 2): [entry("b2-new", 2, 2, "S02_T02_first.png"),
                         entry("c2", 2, 2, "S02_T02_clip.mp4", stage="clip", inputs=("b2-new",))]}
    cut = entry("cut-new", None, None, "ep_001.mp4", stage="cut", inputs=("c2", "a-clip"))

    merged = merge(old, rendered, cut)
    assert [(e.shot, e.take, e.sha256) for e in merged.assets] == [
        (1, 1, "a1"), (2, 1, "b1"), (2, 2, "c2"), (2, 2, "b2-new"), (None, None, "cut-new")]
    assert merged.intermediates == [], "the re-rendered take's old verdict went with it"
    assert merged.cut == "ep_001.mp4"
    clip = next(e for e in merged.assets if e.sha256 == "c2")
    assert clip.inputs == [InputRef(sha256="b2-new", name="S02_T02_first.png")]
    assert merged.assets[-1].inputs == [InputRef(sha256="c2", name="S02_T02_clip.mp4"), InputRef(sha256="a-clip")]


def test_merge_without_a_cut_drops_the_old_one() -> None:
    old = Manifest(project="TST", episode=1, cut="ep_001.mp4", assets=[
        entry("a1", 1, 1, "S01_T01_first.png"), entry("cut-old", None, None, "ep_001.mp4", stage="cut")])
    merged = merge(old, {}, None)
    assert merged.cut is None
    assert [e.sha256 for e in merged.assets] == ["a1"]


def test_two_renders_of_one_episode_keep_each_others_takes(tmp_path: Path) -> None:
    """Each render read the manifest before the other wrote: the merge is made of the manifest as it is at writing."""
    assets, state = tmp_path / "assets", tmp_path / ".reelflow"
    read_first = read_manifest(assets, "TST", 1)  # both renders started on an empty manifest
    save_merged(state, "dailies_ep_001.json", assets, "TST", 1,
                lambda latest: merge(latest, {(1, 1): [entry("a1", 1, 1, "S01_T01_first.png")]}, None))
    save_merged(state, "dailies_ep_001.json", assets, "TST", 1,
                lambda latest: merge(latest, {(2, 1): [entry("b1", 2, 1, "S02_T01_first.png")]}, None))
    assert read_first.assets == []
    assert [(e.shot, e.sha256) for e in read_manifest(assets, "TST", 1).assets] == [(1, "a1"), (2, "b1")]
