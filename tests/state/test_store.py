"""The blob store: read-only blobs, and assets that share a blob's bytes (reflink or hard link) or copy them."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
from PIL import Image

from reelflow.media.hashing import sha256_file
from reelflow.schemas.requests import Generation
from reelflow.state import store as store_module
from reelflow.state.cache import Operation, run_cached
from reelflow.state.store import AssetStore, materialise


def _stored(tmp_path: Path, content: bytes = b"frame bytes") -> tuple[Path, str]:
    """A blob holding `content`, as the store keeps it."""
    source = tmp_path / "made.png"
    source.write_bytes(content)
    sha, blob = AssetStore(tmp_path / ".reelflow").put(source)
    return blob, sha


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _no_reflink(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "_clone", lambda blob, temporary: False)


def _leftovers(folder: Path) -> list[str]:
    return [path.name for path in folder.iterdir() if path.name.endswith(".tmp")]


def test_blobs_are_read_only(tmp_path: Path) -> None:
    blob, sha = _stored(tmp_path)
    assert _mode(blob) == 0o444 and sha256_file(blob) == sha
    again, _ = _stored(tmp_path)  # the same content stored twice is one blob, still read-only
    assert again == blob and _mode(blob) == 0o444


def test_materialise_shares_the_blob_where_the_filesystem_allows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cloned: list[bool] = []
    clone = store_module._clone

    def spy(blob: Path, temporary: Path) -> bool:
        cloned.append(clone(blob, temporary))
        return cloned[-1]

    monkeypatch.setattr(store_module, "_clone", spy)
    blob, sha = _stored(tmp_path)
    target = tmp_path / "assets" / "shot_first.png"
    materialise(blob, sha, target)
    assert sha256_file(target) == sha and _leftovers(target.parent) == []
    # A reflink (btrfs, XFS) is a file of its own sharing the blob's extents; elsewhere (ext4) the blob is linked.
    assert os.path.samefile(blob, target) is not cloned[0]


def test_materialise_reflinks_where_it_can(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def clone(destination: int, request: int, source: int) -> int:
        assert request == store_module.FICLONE
        os.write(destination, os.read(source, 1 << 20))  # what a reflink reads back as
        return 0

    monkeypatch.setattr(store_module.fcntl, "ioctl", clone)
    blob, sha = _stored(tmp_path)
    target = tmp_path / "assets" / "shot_first.png"
    materialise(blob, sha, target)
    assert not os.path.samefile(blob, target) and sha256_file(target) == sha
    assert _mode(target) & stat.S_IWUSR and blob.stat().st_nlink == 1 and _leftovers(target.parent) == []


def test_materialise_hard_links_without_reflinks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_reflink(monkeypatch)
    blob, sha = _stored(tmp_path)
    blob.chmod(0o644)  # stored before blobs were read-only
    target = tmp_path / "assets" / "shot_first.png"
    materialise(blob, sha, target)
    assert os.path.samefile(blob, target) and blob.stat().st_nlink == 2
    assert _mode(target) == 0o444
    materialise(blob, sha, target)  # already the blob: nothing to do
    assert os.path.samefile(blob, target) and blob.stat().st_nlink == 2 and _leftovers(target.parent) == []


def test_materialise_copies_across_filesystems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_reflink(monkeypatch)

    def cross_device(source: Path, link: Path) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(store_module.os, "link", cross_device)
    blob, sha = _stored(tmp_path)
    target = tmp_path / "assets" / "shot_first.png"
    materialise(blob, sha, target)
    assert not os.path.samefile(blob, target) and sha256_file(target) == sha
    assert _mode(target) & stat.S_IWUSR and blob.stat().st_nlink == 1
    assert _leftovers(target.parent) == []


def test_materialise_keeps_a_copy_with_the_same_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_reflink(monkeypatch)
    blob, sha = _stored(tmp_path)
    target = tmp_path / "assets" / "shot_first.png"
    target.parent.mkdir()
    target.write_bytes(blob.read_bytes())
    inode = target.stat().st_ino
    materialise(blob, sha, target)
    assert target.stat().st_ino == inode


def test_materialise_replaces_other_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_reflink(monkeypatch)
    blob, sha = _stored(tmp_path)
    target = tmp_path / "assets" / "shot_first.png"
    target.parent.mkdir()
    target.write_bytes(b"an older take")
    materialise(blob, sha, target)
    assert os.path.samefile(blob, target) and _leftovers(target.parent) == []


def test_an_asset_edited_in_place_is_made_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writing a hard-linked asset alters its blob: the cache sees it and makes the file again, then relinks."""
    _no_reflink(monkeypatch)
    store, calls = AssetStore(tmp_path / ".reelflow"), []
    operation = Operation("split", 1, "media", "split", {"panels": 3})

    def make(scratch: Path) -> Generation:
        calls.append(1)
        Image.new("RGB", (8, 8), (200, 10, 10)).save(scratch / "first.png")
        return Generation(provider="media", model="split", files=[scratch / "first.png"])

    ref = run_cached(store, operation, make).file
    made = ref.path.read_bytes()
    target = tmp_path / "assets" / "shot_first.png"
    materialise(ref.path, ref.sha256, target)
    target.chmod(0o644)
    with target.open("r+b") as edit:  # in place, as some editors save
        edit.write(b"\x89PNG edited")
    assert store.lookup(operation.key) is None
    again = run_cached(store, operation, make).file
    assert calls == [1, 1] and again.sha256 == ref.sha256 and _mode(again.path) == 0o444
    materialise(again.path, again.sha256, target)
    assert target.read_bytes() == made and os.path.samefile(again.path, target)
