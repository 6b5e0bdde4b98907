"""Fixtures for the state tests: S3 on loopback (one moto server per test process, emptied for each test), with
boto3's environment and REELFLOW_BLOB_URL pointing at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest

from s3 import moto_server as running_moto
from s3_bucket import BUCKET, PREFIX, S3

AWS_ENV = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE",
           "REELFLOW_S3_PART_MB")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    with running_moto() as url:
        yield url


@pytest.fixture
def s3(moto_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3:
    """An empty bucket; boto3's environment points at it and REELFLOW_BLOB_URL names it."""
    httpx.post(f"{moto_server}/moto-api/reset").raise_for_status()
    for name in AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    url = f"s3://{BUCKET}/{PREFIX}"
    monkeypatch.setenv("REELFLOW_BLOB_URL", url)
    admin = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1", aws_access_key_id="a",
                         aws_secret_access_key="b")
    admin.create_bucket(Bucket=BUCKET)
    return S3(admin, url)
