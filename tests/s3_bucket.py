"""S3 on loopback for the blob store's tests (moto): the bucket as an outsider sees it, a bare project, and the
operations a client sends."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUCKET, PREFIX, CODE = "studio-blobs", "reelflow", "LEV"
# What a RunPod network volume's S3 API supports (gpu-path.md F); moto has more, so tests check what was sent.
RUNPOD_OPERATIONS = {"CopyObject", "DeleteObject", "GetObject", "HeadBucket", "HeadObject", "ListBuckets", "ListObjects",
                     "ListObjectsV2", "PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload",
                     "AbortMultipartUpload", "ListMultipartUploads", "ListParts"}


@dataclass
class S3:
    """The test's bucket, seen from outside reelflow (an admin client), and the blob URL projects use."""

    admin: Any
    url: str

    def key(self, name: str) -> str:
        return f"{PREFIX}/{CODE}/{name}"

    def body(self, key: str) -> bytes:
        return bytes(self.admin.get_object(Bucket=BUCKET, Key=key)["Body"].read())

    def keys(self) -> set[str]:
        return {item["Key"] for item in self.admin.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def lev_project(root: Path) -> Path:
    """A bare project folder with code LEV; returns its state folder."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "project.json").write_text(json.dumps({"code": CODE}))
    return root / ".reelflow"


def recorded(client: Any) -> list[str]:
    """The names of the operations `client` sends from now on (botocore's before-send event)."""
    sent: list[str] = []
    client.meta.events.register("before-send.s3", lambda event_name, **_: sent.append(event_name.rsplit(".", 1)[-1]))
    return sent
