"""Where pictures are kept: a folder, or a bucket that speaks the S3 API.

`MEDIA_STORE=file:<dir>` (the default, `MEDIA_DIR`) keeps them in a folder on this
machine; `MEDIA_STORE=s3://<bucket>/<prefix>` in object storage (Alibaba OSS, AWS S3,
MinIO), which every VM reaches, so no VM needs a shared folder. Both take keys of the
form `<story_id>/<name>` (media.py says which names) and nothing else.

The S3 client is boto3: the reference client every S3-compatible service tests
against, with standard retries and credentials. Its calls block, as file calls do,
so callers run them in a thread (`asyncio.to_thread`), and a picture is a few
hundred KB, so no streaming is needed. Nothing is written to local disk for S3.
"""

from __future__ import annotations

import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field, SecretStr, ValidationInfo, field_validator

from services.common.metrics import MEDIA_OBJECTS
from services.common.settings import ServiceSettings, http_url


class MediaStore(ABC):
    kind: str
    # How often a picture waiting for its character sheet looks for it (seconds): a
    # look is a request to an object store, which is billed and slower than a stat.
    look_every: float = 0.1

    @abstractmethod
    def put(self, key: str, data: bytes, *, content_type: str) -> None: ...

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is none."""

    @abstractmethod
    def names(self, prefix: str) -> list[str]:
        """Keys that start with `prefix` (within one story's folder)."""

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def check(self, *, write: bool) -> str:
        """Whether the store works: "ok", or what is wrong and what to do (`write`: a probe is
        written and deleted too)."""

    def describe(self) -> str:
        return self.kind

    def _count(self, op: str) -> None:
        MEDIA_OBJECTS.labels(self.kind, op).inc()


class FileStore(MediaStore):
    kind = "file"

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / key

    def put(self, key: str, data: bytes, *, content_type: str) -> None:
        """Write atomically: a reader never sees half a picture."""
        self._count("put")
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".part-", delete=False) as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp.name, target)
        os.chmod(target, 0o644)

    def get(self, key: str) -> bytes | None:
        self._count("get")
        try:
            return self.path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def names(self, prefix: str) -> list[str]:
        self._count("list")
        folder, _, start = prefix.rpartition("/")
        try:
            found = os.listdir(self.root / folder)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [f"{folder}/{name}" for name in found if name.startswith(start)]

    def delete(self, key: str) -> None:
        self._count("delete")
        self.path(key).unlink(missing_ok=True)

    def check(self, *, write: bool) -> str:
        fix = "point MEDIA_STORE (or MEDIA_DIR) at a writable directory"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".ready-"):
                pass
        except OSError as exc:
            return f"{self.root} is not writable ({exc.strerror}): {fix}"
        return "ok"

    def describe(self) -> str:
        return f"file:{self.root}"


class S3Store(MediaStore):
    kind = "s3"
    look_every = 0.5

    def __init__(self, *, bucket: str, prefix: str, client: Any, endpoint: str | None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        self.endpoint = endpoint

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes, *, content_type: str) -> None:
        self._count("put")
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type)

    def get(self, key: str) -> bytes | None:
        self._count("get")
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.NoSuchKey:
            return None
        body: bytes = answer["Body"].read()
        return body

    def names(self, prefix: str) -> list[str]:
        self._count("list")
        answer = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._key(prefix))
        cut = len(self._key(""))
        return [item["Key"][cut:] for item in answer.get("Contents", [])]

    def delete(self, key: str) -> None:
        self._count("delete")
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def check(self, *, write: bool) -> str:
        where = f"bucket {self.bucket!r} at {self.endpoint or 'AWS'}"
        try:
            self.client.head_bucket(Bucket=self.bucket)
            if write:
                probe = self._key(".doctor-probe")
                self.client.put_object(Bucket=self.bucket, Key=probe, Body=b"")
                self.client.delete_object(Bucket=self.bucket, Key=probe)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "?"))
            why = {
                "404": "does not exist",
                "NoSuchBucket": "does not exist",
                "403": "refuses these credentials",
                "AccessDenied": "refuses these credentials",
                "InvalidAccessKeyId": "does not know AWS_ACCESS_KEY_ID",
                "SignatureDoesNotMatch": "refuses AWS_SECRET_ACCESS_KEY",
            }.get(code, f"answered {code}")
            return (
                f"{where} {why}: create the bucket, or check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
                "AWS_REGION and that the key may read and write it"
            )
        except BotoCoreError as exc:
            return f"{where} is unreachable ({type(exc).__name__}): check S3_ENDPOINT_URL and the network"
        return "ok"

    def describe(self) -> str:
        prefix = f"/{self.prefix}" if self.prefix else ""
        return f"s3://{self.bucket}{prefix} at {self.endpoint or 'AWS'}"


AddressingStyle = Literal["auto", "path", "virtual"]


class MediaSettings(ServiceSettings):
    """Where pictures live: the settings of every service that reads or writes them."""

    media_dir: Path = Path("var/media")
    media_store: str | None = Field(
        default=None, description="file:<dir> (default: file:$MEDIA_DIR) or s3://<bucket>/<prefix>"
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="the S3 API of OSS or MinIO, e.g. https://oss-cn-hangzhou.aliyuncs.com"
    )
    # OSS asks for virtual-hosted addressing; MinIO and moto on an IP address for path.
    s3_addressing_style: AddressingStyle = "auto"
    aws_access_key_id: SecretStr | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_region: str = "us-east-1"

    @field_validator("media_store")
    @classmethod
    def _store(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if value.startswith("file:") and value[len("file:") :]:
            return value
        parts = urlsplit(value)
        if parts.scheme == "s3" and parts.hostname:
            return value
        raise ValueError("must be file:<directory> or s3://<bucket>/<prefix>")

    @field_validator("s3_endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return http_url(value.strip(), like="https://oss-cn-hangzhou.aliyuncs.com")

    @field_validator("aws_secret_access_key")
    @classmethod
    def _pair(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if (info.data.get("aws_access_key_id") is None) != (value is None):
            raise ValueError(
                "goes with AWS_ACCESS_KEY_ID: set both (or neither, to use the machine's own role)"
            )
        return value

    @property
    def media_on_s3(self) -> bool:
        return (self.media_store or "").startswith("s3://")

    def media_secrets(self) -> list[str]:
        return [self.aws_secret_access_key.get_secret_value()] if self.aws_secret_access_key else []


def open_store(settings: MediaSettings) -> MediaStore:
    """The store MEDIA_STORE names (the MEDIA_DIR folder when unset)."""
    spec = settings.media_store or f"file:{settings.media_dir}"
    if spec.startswith("file:"):
        return FileStore(Path(spec[len("file:") :]))
    parts = urlsplit(spec)
    key_id, secret = settings.aws_access_key_id, settings.aws_secret_access_key
    client = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.aws_region,
        aws_access_key_id=key_id.get_secret_value() if key_id else None,
        aws_secret_access_key=secret.get_secret_value() if secret else None,
        config=Config(
            s3={"addressing_style": settings.s3_addressing_style},
            connect_timeout=5,
            read_timeout=30,
            retries={"max_attempts": 3, "mode": "standard"},
        ),
    )
    endpoint = settings.s3_endpoint_url
    return S3Store(bucket=str(parts.hostname), prefix=parts.path, client=client, endpoint=endpoint)
