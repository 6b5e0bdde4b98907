"""Blobs in S3 (moto on loopback): put uploads, a host without a blob reads it through, every download is checked
against its sha256, and a corrupted object is never served but made again and mended."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import stat
from pathlib import Path

import pytest
from PIL import Image

from reelflow.schemas.errors import ContractError
from reelflow.schemas.requests import Generation
from reelflow.state.blobs import BlobStoreError, remote_for
from reelflow.state.cache import Operation, run_cached
from reelflow.state.store import AssetStore

from s3_bucket import S3, lev_project, recorded


def made(calls: list[int], colour: tuple[int, int, int] = (10, 120, 200)):
    def make(scratch: Path) -> Generation:
        calls.append(1)
        out = scratch / "out.png"
        Image.new("RGB", (8, 8), colour).save(out)
        return Generation(provider="local", model="m", files=[out], cost_usd=0.02, request_id="r1")
    return make


OPERATION = Operation(stage="keyframes", version=1, provider="local", model="m", params={"prompt": "a"})


def test_put_uploads_and_a_host_without_the_blob_reads_it_through(s3: S3, tmp_path: Path) -> None:
    store, calls = AssetStore(lev_project(tmp_path / "proj")), []
    first = run_cached(store, OPERATION, made(calls))
    sha = first.file.sha256
    assert hashlib.sha256(s3.body(s3.key(f"blobs/{sha[:2]}/{sha}.png"))).hexdigest() == sha
    assert store.remote is not None
    sent = recorded(store.remote._s3)

    first.file.path.unlink()  # a host that did not make it: the cache row is shared, the blob is in S3
    second = run_cached(store, OPERATION, made(calls))
    assert calls == [1] and not second.made and second.file == first.file
    assert hashlib.sha256(second.file.path.read_bytes()).hexdigest() == sha  # downloaded, checked, kept
    assert stat.S_IMODE(second.file.path.stat().st_mode) == 0o444
    assert sent == ["GetObject"]
    assert not [path for path in second.file.path.parent.iterdir() if path.name.endswith(".tmp")]


def test_a_blob_corrupted_in_s3_is_never_served_and_is_made_again(s3: S3, tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    store, calls = AssetStore(lev_project(tmp_path / "proj")), []
    first = run_cached(store, OPERATION, made(calls))
    key = s3.key(f"blobs/{first.file.sha256[:2]}/{first.file.sha256}.png")
    s3.admin.put_object(Bucket="studio-blobs", Key=key, Body=b"bit rot")  # the object changes under its name
    first.file.path.unlink()  # and this host has no copy of its own

    with caplog.at_level(logging.ERROR, logger="reelflow.state.blobs"):
        assert store.lookup(OPERATION.key) is None  # detected by its hash: a miss, never served
    assert f"corrupted blob s3://studio-blobs/{key}" in caplog.text
    assert not first.file.path.exists() and not [p for p in first.file.path.parent.iterdir() if p.name.endswith(".tmp")]

    again = run_cached(store, OPERATION, made(calls))
    assert calls == [1, 1] and again.made and again.file.sha256 == first.file.sha256
    assert hashlib.sha256(s3.body(key)).hexdigest() == first.file.sha256  # the object is mended


def test_a_blob_above_the_part_size_goes_multipart(s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELFLOW_S3_PART_MB", "1")
    store = AssetStore(lev_project(tmp_path / "proj"))
    assert store.remote is not None
    sent = recorded(store.remote._s3)
    source = tmp_path / "clip.mp4"
    source.write_bytes(os.urandom(1_500_000))
    sha, _ = store.put(source)
    # s3transfer raises parts to its 5 MiB minimum; the threshold is what decides multipart
    assert sent == ["CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"]
    assert hashlib.sha256(s3.body(s3.key(f"blobs/{sha[:2]}/{sha}.mp4"))).hexdigest() == sha


def test_bulk_delete_and_presigning_are_refused_before_sending(s3: S3, tmp_path: Path) -> None:
    remote = remote_for(lev_project(tmp_path / "proj"))
    assert remote is not None
    sent = recorded(remote._s3)
    with pytest.raises(BlobStoreError, match="DeleteObjects is not used"):
        remote._s3.delete_objects(Bucket="studio-blobs", Delete={"Objects": [{"Key": "x"}]})
    with pytest.raises(BlobStoreError, match="presigned URLs are not used"):
        remote._s3.generate_presigned_url("get_object", Params={"Bucket": "studio-blobs", "Key": "x"})
    with pytest.raises(BlobStoreError, match="presigned URLs are not used"):
        remote._s3.generate_presigned_post("studio-blobs", "x")
    assert sent == []


def test_the_client_follows_boto3s_environment_with_the_volume_settings(s3: S3, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    remote = remote_for(lev_project(tmp_path / "proj"))
    assert remote is not None and remote.bucket == "studio-blobs"
    config = remote._s3.meta.config
    assert config.s3 == {"addressing_style": "path"} and config.retries["mode"] == "standard"
    assert config.request_checksum_calculation == config.response_checksum_validation == "when_required"
    assert remote._s3.meta.endpoint_url == os.environ["AWS_ENDPOINT_URL"]
    assert remote._transfer.multipart_threshold == remote._transfer.multipart_chunksize == 500 * 1024 * 1024
    assert remote.blob_key("ab" + "0" * 62, "png") == f"reelflow/LEV/blobs/ab/ab{'0' * 62}.png"
    assert remote.report_key("r") == "reelflow/LEV/reports/r.json"

    monkeypatch.setenv("REELFLOW_S3_PART_MB", "501")
    with pytest.raises(ContractError, match="^REELFLOW_S3_PART_MB: '501' must be 1 to 500$"):
        remote_for(lev_project(tmp_path / "other"))
    (tmp_path / "nameless").mkdir()
    with pytest.raises(ContractError, match='project.json needs its "code"'):
        remote_for(tmp_path / "nameless" / ".reelflow")
    monkeypatch.delenv("REELFLOW_BLOB_URL")
    assert AssetStore(lev_project(tmp_path / "local")).remote is None


def test_a_blob_the_store_cannot_take_is_kept_here_and_sent_with_the_next(
    s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    state_dir = lev_project(tmp_path / "proj")
    store = AssetStore(state_dir)
    first = tmp_path / "frame.png"
    first.write_bytes(b"frame")
    sha, path = store.put(first)  # paid-for work is never lost to a store that is down
    assert path.read_bytes() == b"frame"
    assert (state_dir / "unsent").read_text().split() == [f"{sha}.png"]
    warning = next(record.getMessage() for record in caplog.records if "cannot upload" in record.getMessage())
    assert re.match(r"^s3: cannot upload s3://studio-blobs/reelflow/LEV/blobs/\S+\.png: Could not connect to the "
                    r"endpoint URL: [^\n]+; kept here, sent with the next blob$", warning)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.admin.meta.endpoint_url)  # the store is back
    remote_for.cache_clear()
    second = tmp_path / "other.png"
    second.write_bytes(b"other")
    other, _ = AssetStore(state_dir).put(second)
    assert {s3.key(f"blobs/{sha[:2]}/{sha}.png"), s3.key(f"blobs/{other[:2]}/{other}.png")} <= s3.keys()
    assert not (state_dir / "unsent").exists()
