"""A project's blobs and run reports in S3 (`s3://bucket/prefix`, REELFLOW_BLOB_URL or project.json's `blob_url`).

Keys: `<prefix>/<CODE>/blobs/<sha[:2]>/<sha>.<ext>` and `<prefix>/<CODE>/reports/<run>.json`, the project code keeping
projects apart where one URL serves every project of a worker. The client is boto3's, configured by boto3's own
environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, AWS_MAX_ATTEMPTS …), with
path addressing, standard retries and checksums only when required (boto3 >= 1.36 sends CRC headers many S3-compatible
stores reject: gpu-path.md F). It keeps within a RunPod network volume's S3 API: PutObject below 500 MB, multipart
with 500 MB parts above, one DeleteObject at a time; DeleteObjects and presigned URLs are refused before they leave.
Every download is hashed on its way to the local cache and renamed into it only when it hashes to its name.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from reelflow.schemas.env import BLOB_URL_VAR, blob_url, project_setting
from reelflow.schemas.errors import ContractError, ReelflowError

PART_VAR = "REELFLOW_S3_PART_MB"
PART_MB = 500  # RunPod: PutObject below 500 MB, parts of at most 500 MB
MB = 1024 * 1024
CHUNK = 1 << 20
ABSENT = frozenset({"404", "NoSuchKey", "NotFound"})


class BlobStoreError(ReelflowError):
    """The S3 blob store refused or failed a read or write (after boto3's retries)."""


@dataclass(frozen=True)
class RemoteObject:
    key: str
    size: int
    modified: float  # epoch seconds


def part_bytes() -> int:
    """The multipart threshold and part size: 500 MB, or REELFLOW_S3_PART_MB (tests make it small)."""
    raw = os.environ.get(PART_VAR, "").strip()
    try:
        megabytes = int(raw) if raw else PART_MB
    except ValueError:
        raise ContractError(f"{PART_VAR}: {raw!r} is not a whole number of MB") from None
    if not 1 <= megabytes <= PART_MB:
        raise ContractError(f"{PART_VAR}: {raw!r} must be 1 to {PART_MB}")
    return megabytes * MB


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The task or flow run's logger inside a run, else this module's. Prefect is never imported for it: it reads its
    settings once, when first imported, and the CLI sets some before a run starts."""
    if "prefect" in sys.modules:
        from prefect import get_run_logger
        from prefect.exceptions import MissingContextError

        try:
            return get_run_logger()
        except MissingContextError:
            pass
    return logging.getLogger(__name__)


def warn(message: str) -> None:
    """A warning in the run's log (or this module's)."""
    _logger().warning(message)


def _refuse_bulk_delete(**_: Any) -> None:
    raise BlobStoreError("s3: DeleteObjects is not used (a RunPod network volume lacks it): delete one object at a time")


def _refuse_presign(context: dict[str, Any] | None = None, **_: Any) -> None:
    if context and context.get("is_presign_request"):
        raise BlobStoreError("s3: presigned URLs are not used (a RunPod network volume lacks them)")


class RemoteBlobs:
    """One project's folder of an S3 bucket: blobs by sha256, run reports by run id."""

    def __init__(self, url: str, code: str) -> None:
        import boto3  # imported only where a project keeps its blobs in S3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        parts = urlsplit(url)
        self.bucket = parts.netloc
        self.root = "/".join(part for part in (parts.path.strip("/"), code) if part)
        config = Config(s3={"addressing_style": "path"}, retries={"mode": "standard"},
                        request_checksum_calculation="when_required", response_checksum_validation="when_required")
        self._s3 = boto3.session.Session().client("s3", config=config)
        self._s3.meta.events.register("before-call.s3.DeleteObjects", _refuse_bulk_delete)
        self._s3.meta.events.register("provide-client-params.s3", _refuse_presign)
        part = part_bytes()
        self._transfer = TransferConfig(multipart_threshold=part, multipart_chunksize=part, max_concurrency=2)

    def address(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def blob_key(self, sha256: str, ext: str) -> str:
        return f"{self.root}/blobs/{sha256[:2]}/{sha256}.{ext}"

    def report_key(self, run_id: str) -> str:
        return f"{self.root}/reports/{run_id}.json"

    def _error(self, error: Exception, what: str, key: str) -> BlobStoreError:
        if isinstance(error, NoCredentialsError):
            return BlobStoreError(f"s3: cannot {what} {self.address(key)}: no credentials (set AWS_ACCESS_KEY_ID and "
                                  "AWS_SECRET_ACCESS_KEY, or another of boto3's sources)")
        if isinstance(error, ClientError):
            code = error.response.get("Error", {}).get("Code") or error.response.get("ResponseMetadata", {}).get(
                "HTTPStatusCode")
            return BlobStoreError(f"s3: cannot {what} {self.address(key)}: {code}")
        return BlobStoreError(f"s3: cannot {what} {self.address(key)}: {' '.join(str(error).split())}")

    def upload(self, path: Path, key: str) -> None:
        """Put a file: PutObject below the part size, multipart (parts of that size, two at a time) above."""
        try:
            self._s3.upload_file(str(path), self.bucket, key, Config=self._transfer)
        except (BotoCoreError, ClientError) as error:
            raise self._error(error, "upload", key) from error
        except Exception as error:  # s3transfer wraps client errors in S3UploadFailedError
            cause = error.__cause__ or error.__context__
            raise self._error(cause if isinstance(cause, Exception) else error, "upload", key) from error

    def fetch_blob(self, sha256: str, ext: str, target: Path) -> bool:
        """Download a blob to `target` through a temporary file beside it, renamed there only when its bytes hash to
        `sha256`; False (and the local file left as it was) when it is absent, or corrupted: never served."""
        key = self.blob_key(sha256, ext)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        digest = hashlib.sha256()
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"]
            with temporary.open("xb") as handle:
                for chunk in body.iter_chunks(CHUNK):
                    digest.update(chunk)
                    handle.write(chunk)
            if digest.hexdigest() != sha256:
                _logger().error("corrupted blob %s: its bytes hash to %s; not served, made again",
                                self.address(key), digest.hexdigest())
                return False
            os.replace(temporary, target)
            return True
        except ClientError as error:
            if str(error.response.get("Error", {}).get("Code")) in ABSENT:
                return False
            raise self._error(error, "download", key) from error
        except BotoCoreError as error:
            raise self._error(error, "download", key) from error
        finally:
            temporary.unlink(missing_ok=True)

    def read(self, key: str) -> bytes | None:
        """A small object's bytes (None when it is absent)."""
        try:
            return bytes(self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except ClientError as error:
            if str(error.response.get("Error", {}).get("Code")) in ABSENT:
                return None
            raise self._error(error, "read", key) from error
        except BotoCoreError as error:
            raise self._error(error, "read", key) from error

    def write(self, key: str, data: bytes) -> None:
        """Put a small object (one PutObject)."""
        try:
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=data)
        except (BotoCoreError, ClientError) as error:
            raise self._error(error, "write", key) from error

    def objects(self, folder: str) -> Iterator[RemoteObject]:
        """Every object under the project's `folder` (e.g. "blobs"), page by page (ListObjectsV2)."""
        prefix = f"{self.root}/{folder}/"
        try:
            for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield RemoteObject(key=item["Key"], size=int(item["Size"]), modified=item["LastModified"].timestamp())
        except (BotoCoreError, ClientError) as error:
            raise self._error(error, "list", prefix) from error

    def delete(self, key: str) -> None:
        """Remove one object (DeleteObject)."""
        try:
            self._s3.delete_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as error:
            raise self._error(error, "delete", key) from error


@cache
def remote_for(state_dir: Path) -> RemoteBlobs | None:
    """The project's S3 blob store, one client per project in a process; None where its blobs stay on local disk."""
    root = state_dir.parent
    url = blob_url(root)
    if url is None:
        return None
    code = project_setting(root, "code")
    if code is None or not code.isalnum():
        raise ContractError(f"{BLOB_URL_VAR}: project.json needs its \"code\": it keeps the project's blobs apart in {url}")
    return RemoteBlobs(url, code)
