"""A RunPod network volume through its S3-compatible API (boto3): list, look up, put and delete model files.

Sources: gpu-path.md F (RunPod docs `storage/s3-api.mdx`): the endpoint `https://s3api-<dc lowercase>.runpod.io`,
bucket = volume id, region = data center id, PutObject under 500 MB and multipart with parts of at most 500 MB,
and what is NOT supported: DeleteObjects, bucket and ACL/tagging/policy calls, presigned URLs. This module offers
none of those (a file is deleted with DeleteObject, one at a time), and its client refuses the unsupported
operations before sending (a botocore `before-call` hook).
Path addressing, standard retries (10 attempts, the docs' advice for 502s), checksums only when required
(boto3 >= 1.36 sends CRC headers many S3-compatible servers reject: https://github.com/boto/s3transfer/issues/327)
and a long read timeout for CompleteMultipartUpload on big files (the docs: `read_timeout=7200`).
Keys come from RUNPOD_S3_ACCESS_KEY_ID / RUNPOD_S3_SECRET_ACCESS_KEY (an "S3 API key", not the RunPod API key).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

from reelflow.providers.runpod.errors import NAME, one_line
from reelflow.schemas.errors import BadRequest, MissingCredentials, ProviderError, ServerError, TransportError

KEY_ID_ENV, SECRET_ENV = "RUNPOD_S3_ACCESS_KEY_ID", "RUNPOD_S3_SECRET_ACCESS_KEY"
ENDPOINT_ENV = "RUNPOD_S3_ENDPOINT_URL"
PART_ENV = "REELFLOW_RUNPOD_S3_PART_MB"
PART_MB = 500  # PutObject is limited to < 500 MB and parts to 500 MB
MB = 1024 * 1024
S3_DATACENTERS = frozenset({"EU-CZ-1", "EU-RO-1", "EUR-IS-1", "EUR-NO-1", "US-CA-2", "US-GA-2", "US-IL-1", "US-KS-2",
                            "US-MD-1", "US-MO-1", "US-MO-2", "US-NC-1", "US-NC-2", "US-NE-1", "US-WA-1"})
UNSUPPORTED = frozenset({"DeleteObjects", "CreateBucket", "DeleteBucket", "PutBucketVersioning", "PutObjectAcl",
                         "PutBucketAcl", "PutBucketPolicy", "PutObjectTagging", "PutBucketTagging",
                         "PutBucketEncryption", "PutObjectLockConfiguration"})
LORAS = "models/loras"
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _refuse(event_name: str, **_: Any) -> None:
    operation = event_name.rsplit(".", 1)[-1]
    raise BadRequest(f"runpod: the network volume S3 API does not support {operation}", provider=NAME)


def part_bytes() -> int:
    """The multipart threshold and part size: 500 MB, or REELFLOW_RUNPOD_S3_PART_MB (tests make it small)."""
    raw = os.environ.get(PART_ENV)
    megabytes = int(raw) if raw else PART_MB
    if not 1 <= megabytes <= PART_MB:
        raise BadRequest(f"runpod: {PART_ENV}={raw} is not allowed: 1..{PART_MB}", provider=NAME)
    return megabytes * MB


class Volume:
    """One network volume's files: `files`, `names`, `has`, `put`, `put_lora`, and `delete` one at a time (only
    `reelflow gc` deletes: LoRAs no registry entry names)."""

    def __init__(self, volume_id: str, datacenter: str, *, endpoint_url: str | None = None) -> None:
        key_id, secret = os.environ.get(KEY_ID_ENV, "").strip(), os.environ.get(SECRET_ENV, "").strip()
        if not key_id or not secret:
            raise MissingCredentials(f"runpod: {KEY_ID_ENV} and {SECRET_ENV} must be set (an S3 API key from RunPod's "
                                     "console, Settings → S3 API Keys)", provider=NAME)
        endpoint = endpoint_url or os.environ.get(ENDPOINT_ENV)
        if endpoint is None:
            if datacenter not in S3_DATACENTERS:
                raise BadRequest(f"runpod: data center {datacenter!r} has no S3 API (it exists in: "
                                 f"{', '.join(sorted(S3_DATACENTERS))})", provider=NAME)
            endpoint = f"https://s3api-{datacenter.lower()}.runpod.io"
        self.volume_id, self.datacenter, self.endpoint_url = volume_id, datacenter, endpoint
        config = Config(region_name=datacenter, s3={"addressing_style": "path"},
                        retries={"total_max_attempts": 10, "mode": "standard"}, read_timeout=7200,
                        request_checksum_calculation="when_required", response_checksum_validation="when_required")
        self._s3 = boto3.session.Session().client("s3", endpoint_url=endpoint, aws_access_key_id=key_id,
                                                  aws_secret_access_key=secret, config=config)
        for operation in UNSUPPORTED:
            self._s3.meta.events.register(f"before-call.s3.{operation}", _refuse)

    def _error(self, error: Exception, where: str) -> ProviderError:
        if isinstance(error, ProviderError):
            return error
        if isinstance(error, NoCredentialsError):
            return MissingCredentials(f"runpod: {where}: no S3 credentials", provider=NAME)
        if isinstance(error, ClientError):
            code = str(error.response.get("Error", {}).get("Code", ""))
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            message = f"runpod: {where} on volume {self.volume_id}: {code or status}: {one_line(str(error))}"
            if status == 403 or code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"):
                return MissingCredentials(message, provider=NAME)
            return ServerError(message, provider=NAME) if status >= 500 else BadRequest(message, provider=NAME)
        if isinstance(error, EndpointConnectionError):
            return TransportError(f"runpod: {where}: cannot reach {self.endpoint_url}", provider=NAME)
        return ServerError(f"runpod: {where}: {type(error).__name__}: {one_line(str(error))}", provider=NAME)

    def files(self, folder: str) -> dict[str, int]:
        """The files under `folder` (e.g. "models/loras") by name relative to it, with their sizes in bytes; folder
        entries left out (ListObjectsV2)."""
        prefix = folder.strip("/") + "/"
        found: dict[str, int] = {}
        try:
            for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.volume_id, Prefix=prefix):
                found.update((item["Key"][len(prefix):], int(item["Size"])) for item in page.get("Contents", [])
                             if not item["Key"].endswith("/"))
        except (BotoCoreError, ClientError) as error:
            raise self._error(error, f"list {prefix}") from error
        return found

    def names(self, folder: str) -> set[str]:
        """File names under `folder`, relative to it (see `files`)."""
        return set(self.files(folder))

    def has(self, key: str) -> bool:
        """True when the key exists (HeadObject)."""
        try:
            self._s3.head_object(Bucket=self.volume_id, Key=key)
        except ClientError as error:
            if str(error.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self._error(error, f"look up {key}") from error
        except BotoCoreError as error:
            raise self._error(error, f"look up {key}") from error
        return True

    def put(self, path: Path, key: str) -> None:
        """Upload a file: PutObject below the part size, multipart (parts of that size, two at a time) above."""
        part = part_bytes()
        transfer = TransferConfig(multipart_threshold=part, multipart_chunksize=part, max_concurrency=2)
        try:
            self._s3.upload_file(str(path), self.volume_id, key, Config=transfer)
        except (BotoCoreError, ClientError, ProviderError) as error:
            raise self._error(error, f"put {key}") from error
        except Exception as error:  # s3transfer wraps client errors in S3UploadFailedError
            cause = error.__cause__ or error.__context__
            raise self._error(cause if isinstance(cause, Exception) else error, f"put {key}") from error

    def delete(self, key: str) -> None:
        """Remove one file (DeleteObject: the volume has no DeleteObjects)."""
        try:
            self._s3.delete_object(Bucket=self.volume_id, Key=key)
        except (BotoCoreError, ClientError) as error:
            raise self._error(error, f"delete {key}") from error

    def put_lora(self, path: Path, sha256: str) -> str:
        """Put a LoRA as models/loras/reelflow-<sha256>.safetensors unless it is there; returns its file name."""
        if not SHA256.match(sha256):
            raise BadRequest(f"runpod: LoRA digest {sha256!r} is not a lowercase sha256 hex digest", provider=NAME)
        name = f"reelflow-{sha256}.safetensors"
        key = f"{LORAS}/{name}"
        if not self.has(key):
            self.put(path, key)
        return name
