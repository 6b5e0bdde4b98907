"""Files reelflow writes among a project's inputs: recorded as written, and its own only while they hold that content."""

from __future__ import annotations

from pathlib import Path

from reelflow.schemas.assets import AssetRef, MediaInfo
from reelflow.state.generated import generated_unchanged, write_generated
from reelflow.state.store import AssetStore

CANDIDATE = "visual/lora_candidates/ANA/ANA_c001.png"
MANIFEST = "visual/lora_candidates/ANA/manifest.json"
WEIGHTS = "visual/loras/ANA/ANA_flux2_0123abcd.safetensors"


def test_what_reelflow_wrote_is_its_own_until_a_person_changes_it(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    asked = [CANDIDATE, MANIFEST, WEIGHTS, "visual/lora_candidates/ANA/keystones/front.png"]
    assert generated_unchanged(root, asked) == set()
    assert not (root / ".reelflow").exists(), "a question writes no state"

    source = tmp_path / "made.safetensors"
    source.write_bytes(b"weights")
    sha, blob = AssetStore(root / ".reelflow").put(source)
    write_generated(root, root / WEIGHTS, AssetRef(path=blob, sha256=sha, media=MediaInfo(kind="data", width=0, height=0)))
    write_generated(root, root / CANDIDATE, b"png")
    write_generated(root, root / MANIFEST, b'{"selected": []}')
    (root / asked[3]).parent.mkdir(parents=True)
    (root / asked[3]).write_bytes(b"png")  # a person's keystone, byte for byte a candidate
    assert (root / WEIGHTS).read_bytes() == b"weights"
    assert generated_unchanged(root, asked) == {CANDIDATE, MANIFEST, WEIGHTS}

    write_generated(root, root / MANIFEST, b'{"selected": ["ANA_c001.png"]}')  # a pick: reelflow's own again
    (root / CANDIDATE).write_bytes(b"retouched")
    (root / WEIGHTS).unlink()
    assert generated_unchanged(root, asked) == {MANIFEST}
