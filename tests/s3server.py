"""A real S3-compatible server for tests: moto's server started as its own process on a free loopback
port (never in-process, never mocked).

    from tests.s3server import make_bucket, s3_credentials, s3_server  # noqa: F401 - fixtures

    def test_x(s3_server, s3_credentials):
        client = make_bucket(s3_server, "data")              # a boto3 client on that server
        client.put_object(Bucket="data", Key="a.bin", Body=b"...")

`s3_server` (session scope) yields the endpoint URL (`http://127.0.0.1:PORT`) and stops the process at the
end. `s3_credentials` puts test credentials in this process's environment (and
`SIMTRAIN_S3_ENDPOINT_URL`); `s3_env(endpoint)` is the same as a dict, for a subprocess (a worker).
`moto_server()` is the context manager behind the fixture, for a test that kills and restarts it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

__all__ = ["S3_TEST_CREDENTIALS", "make_bucket", "moto_server", "s3_credentials", "s3_env", "s3_server"]

S3_TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "simtrain-test",
    "AWS_SECRET_ACCESS_KEY": "simtrain-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",  # never ask 169.254.169.254 for credentials
}


def s3_env(endpoint_url: str) -> dict[str, str]:
    """Environment variables that point simtrain (and botocore) at the test server."""
    return {**S3_TEST_CREDENTIALS, "SIMTRAIN_S3_ENDPOINT_URL": endpoint_url}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_answers(proc: subprocess.Popen, url: str, log: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"moto server exited with {proc.returncode}: {log.read().decode(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):  # noqa: S310 - loopback test server
                return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"moto server at {url} did not answer within {timeout_s:g} s")


@contextmanager
def moto_server(start_timeout_s: float = 60.0) -> Iterator[str]:
    """Start `python -m moto.server` on a free 127.0.0.1 port; yield its URL; stop it."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **S3_TEST_CREDENTIALS},
        )
        try:
            _wait_until_answers(proc, url, log, start_timeout_s)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def s3_credentials(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = s3_env(s3_server)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def make_bucket(endpoint_url: str, name: str) -> Any:
    """Create bucket `name` on the server (if it is not there yet); returns a boto3 S3 client for it."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=S3_TEST_CREDENTIALS["AWS_DEFAULT_REGION"],
        aws_access_key_id=S3_TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    try:
        client.create_bucket(Bucket=name)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass  # the server lives for the session: a second test may make the same bucket
    return client
