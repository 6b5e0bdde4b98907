"""providers/runpod/volume.py against moto's S3 server: PutObject vs multipart, no re-upload, one-by-one deletes, and
RunPod's limits.

RunPod's S3 API lacks DeleteObjects, bucket calls and presigned URLs (gpu-path.md F); moto has them all, so the
operations that reach the server are recorded (botocore's `before-send` event) and checked against RunPod's list.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from reelflow.providers.runpod.volume import Volume
from reelflow.schemas.errors import BadRequest, MissingCredentials

from s3 import moto_server

VOLUME, DATACENTER = "vol0abc123", "EU-RO-1"
RUNPOD_OPERATIONS = {"CopyObject", "DeleteObject", "GetObject", "HeadBucket", "HeadObject", "ListBuckets", "ListObjects",
                     "ListObjectsV2", "PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload",
                     "AbortMultipartUpload", "ListMultipartUploads", "ListParts"}


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def volume(moto_url: str, clean_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Volume, list[str]]]:
    httpx.post(f"{moto_url}/moto-api/reset").raise_for_status()
    monkeypatch.setenv("RUNPOD_S3_ACCESS_KEY_ID", "user_fake")
    monkeypatch.setenv("RUNPOD_S3_SECRET_ACCESS_KEY", "rps_fake")
    monkeypatch.setenv("RUNPOD_S3_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("REELFLOW_RUNPOD_S3_PART_MB", "1")
    admin = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="a",
                         aws_secret_access_key="b")
    admin.create_bucket(Bucket=VOLUME)  # RunPod creates the bucket with the volume; the S3 API cannot
    admin.put_object(Bucket=VOLUME, Key="models/loras/", Body=b"")  # a folder entry, as ListObjects shows them
    admin.put_object(Bucket=VOLUME, Key="models/unet/wan_high.safetensors", Body=b"x")
    sent: list[str] = []
    made = Volume(VOLUME, DATACENTER)
    made._s3.meta.events.register("before-send.s3", lambda event_name, **_: sent.append(event_name.rsplit(".", 1)[-1]))
    yield made, sent
    assert set(sent) <= RUNPOD_OPERATIONS


def blob(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def test_a_small_file_is_one_put_object(volume: tuple[Volume, list[str]], tmp_path: Path) -> None:
    store, sent = volume
    store.put(blob(tmp_path / "a.safetensors", 300_000), "models/loras/a.safetensors")
    assert sent == ["PutObject"]
    assert store.has("models/loras/a.safetensors") and not store.has("models/loras/b.safetensors")


def test_a_file_above_the_threshold_goes_multipart(volume: tuple[Volume, list[str]], tmp_path: Path) -> None:
    store, sent = volume
    store.put(blob(tmp_path / "big.safetensors", 1_500_000), "models/unet/big.safetensors")
    assert sent[0] == "CreateMultipartUpload" and "UploadPart" in sent and sent[-1] == "CompleteMultipartUpload"
    assert "PutObject" not in sent
    assert "big.safetensors" in store.names("models/unet")


def test_put_lora_uploads_once(volume: tuple[Volume, list[str]], tmp_path: Path) -> None:
    store, sent = volume
    lora = blob(tmp_path / "ana.safetensors", 1000)
    digest = hashlib.sha256(lora.read_bytes()).hexdigest()
    assert store.put_lora(lora, digest) == f"reelflow-{digest}.safetensors"
    assert sent == ["HeadObject", "PutObject"]
    sent.clear()
    assert store.put_lora(lora, digest) == f"reelflow-{digest}.safetensors"
    assert sent == ["HeadObject"]
    with pytest.raises(BadRequest, match="not a lowercase sha256"):
        store.put_lora(lora, "ABC")


def test_names_lists_the_models_folder(volume: tuple[Volume, list[str]], tmp_path: Path) -> None:
    store, sent = volume
    for index in range(3):
        store.put(blob(tmp_path / f"l{index}.safetensors", 10), f"models/loras/sub/l{index}.safetensors")
    assert store.names("models/loras") == {"sub/l0.safetensors", "sub/l1.safetensors", "sub/l2.safetensors"}
    assert store.names("models/unet/") == {"wan_high.safetensors"}
    assert store.names("models/vae") == set()
    assert sent.count("ListObjectsV2") == 3


def test_operations_runpod_lacks_are_refused_before_sending(volume: tuple[Volume, list[str]]) -> None:
    store, sent = volume
    client: Any = store._s3
    with pytest.raises(BadRequest, match="^runpod: the network volume S3 API does not support DeleteObjects$"):
        client.delete_objects(Bucket=VOLUME, Delete={"Objects": [{"Key": "models/unet/wan_high.safetensors"}]})
    with pytest.raises(BadRequest, match="does not support CreateBucket"):
        client.create_bucket(Bucket="another")
    assert sent == [] and store.names("models/unet") == {"wan_high.safetensors"}
    assert not any(name.startswith(("presign", "generate")) for name in vars(Volume))


def test_delete_removes_one_file_with_delete_object(volume: tuple[Volume, list[str]], tmp_path: Path) -> None:
    store, sent = volume
    store.put(blob(tmp_path / "old.safetensors", 10), "models/loras/old.safetensors")
    assert store.files("models/loras") == {"old.safetensors": 10}
    sent.clear()
    store.delete("models/loras/old.safetensors")
    assert sent == ["DeleteObject"] and store.files("models/loras") == {}


def test_settings_and_credentials(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MissingCredentials, match="^runpod: RUNPOD_S3_ACCESS_KEY_ID and RUNPOD_S3_SECRET_ACCESS_KEY must be set"):
        Volume(VOLUME, DATACENTER)
    monkeypatch.setenv("RUNPOD_S3_ACCESS_KEY_ID", "user_x")
    monkeypatch.setenv("RUNPOD_S3_SECRET_ACCESS_KEY", "rps_x")
    store = Volume(VOLUME, "EUR-IS-1")
    assert store.endpoint_url == "https://s3api-eur-is-1.runpod.io"
    config = store._s3.meta.config
    assert config.region_name == "EUR-IS-1" and config.s3 == {"addressing_style": "path"}
    assert config.request_checksum_calculation == "when_required"
    assert config.retries == {"mode": "standard", "total_max_attempts": 10}
    with pytest.raises(BadRequest, match="data center 'US-TX-3' has no S3 API"):
        Volume(VOLUME, "US-TX-3")
