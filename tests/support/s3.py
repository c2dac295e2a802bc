"""A real S3 API server for the tests: moto's server mode, in this process.

`ThreadedMotoServer` serves the S3 protocol over HTTP on a free port, so the services
(separate processes) reach it exactly as they reach OSS or MinIO, through boto3 and
S3_ENDPOINT_URL. It is installed by pip from the project's dev dependencies, needs no
Docker and no binary download, and starts in about a second.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from services.devstack.procs import free_port
from tests.support.infra import unique

KEY_ID, SECRET = "test-s3-key-id", "test-s3-secret-key-0042"


@dataclass
class S3:
    endpoint: str
    bucket: str

    def env(self, prefix: str = "media") -> dict[str, str]:
        """What a service needs to keep pictures in this bucket."""
        return {
            "MEDIA_STORE": f"s3://{self.bucket}/{prefix}",
            "S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": "us-east-1",
        }

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
            region_name="us-east-1",
        )

    def object_keys(self) -> list[str]:
        answer = self.client().list_objects_v2(Bucket=self.bucket)
        return [item["Key"] for item in answer.get("Contents", [])]


@contextmanager
def s3_server() -> Iterator[S3]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        s3 = S3(endpoint=f"http://127.0.0.1:{port}", bucket=unique("pictures-"))
        s3.client().create_bucket(Bucket=s3.bucket)
        yield s3
    finally:
        server.stop()
