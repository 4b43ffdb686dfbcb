"""The client's retries against a real HTTP server on 127.0.0.1 that answers from a script (429 then 200,
503, ...): Retry-After is honoured, only requests safe to repeat are repeated, and the count and the
total wait are bounded."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.client import (
    RateLimitedError,
    RequestTimeoutError,
    RetryPolicy,
    SimtrainClient,
    TransportError,
    UnavailableError,
)

Answer = tuple[int, dict[str, str], dict]
JOB = {"id": "j-1", "status": "queued"}


def _error(code: str) -> dict:
    return {"error": {"code": code, "message": f"{code}: try later", "details": None}}


@contextmanager
def scripted_server(answers: list[Answer], delay: float = 0.0) -> Iterator[tuple[str, list[dict]]]:
    """A server answering each request with the next answer (the last one again when they run out);
    yields its URL and the requests it received (method, path, headers, arrival time)."""
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                         "at": time.monotonic(), "body": body})  # fmt: skip
            time.sleep(delay)
            status, headers, payload = answers[min(len(seen) - 1, len(answers) - 1)]
            data = json.dumps(payload).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request, client_address) -> None:
            pass  # a client that gave up (the timeout test) closed the connection: expected

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_get_answered_429_is_retried_after_the_retry_after_seconds():
    answers = [(429, {"Retry-After": "1"}, _error("rate_limited")), (200, {}, JOB)]
    with scripted_server(answers) as (url, seen), SimtrainClient(url, "k") as client:
        assert client.get_job("j-1") == JOB
    assert [r["method"] for r in seen] == ["GET", "GET"]
    assert seen[1]["at"] - seen[0]["at"] >= 0.95
    assert seen[1]["headers"]["Authorization"] == "Bearer k"


def test_create_job_is_retried_with_the_same_idempotency_key():
    answers = [(503, {"Retry-After": "1"}, _error("service_unavailable")), (201, {}, JOB)]
    with scripted_server(answers) as (url, seen), SimtrainClient(url, "k") as client:
        assert client.create_job({"dataset": "builtin:digits"}) == JOB
    keys = [r["headers"]["Idempotency-Key"] for r in seen]
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0].startswith("simtrain-")
    assert json.loads(seen[1]["body"]) == {"dataset": "builtin:digits"}


def test_a_post_without_idempotency_key_is_not_retried():
    answers = [(429, {"Retry-After": "1"}, _error("rate_limited")), (202, {}, JOB)]
    with scripted_server(answers) as (url, seen), SimtrainClient(url, "k") as client:
        with pytest.raises(RateLimitedError) as err:
            client.cancel("j-1")
    assert len(seen) == 1
    assert err.value.status == 429 and err.value.retry_after == 1.0 and err.value.code == "rate_limited"


def test_retries_are_bounded_in_count_and_in_total_wait():
    always = [(503, {"Retry-After": "0"}, _error("service_unavailable"))]
    twice = RetryPolicy(max_retries=2)
    with scripted_server(always) as (url, seen), SimtrainClient(url, "k", retry=twice) as client:
        with pytest.raises(UnavailableError):
            client.get_job("j-1")
    assert len(seen) == 3  # the request and two retries

    too_long = [(429, {"Retry-After": "3600"}, _error("rate_limited")), (200, {}, JOB)]
    with scripted_server(too_long) as (url, seen), SimtrainClient(url, "k") as client:
        start = time.monotonic()
        with pytest.raises(RateLimitedError) as err:
            client.get_job("j-1")
    assert len(seen) == 1 and time.monotonic() - start < 1 and err.value.retry_after == 3600

    budget = RetryPolicy(max_retries=10, max_total_wait=2.5)
    ones = [(429, {"Retry-After": "1"}, _error("rate_limited"))]
    with scripted_server(ones) as (url, seen), SimtrainClient(url, "k", retry=budget) as client:
        with pytest.raises(RateLimitedError):
            client.get_job("j-1")
    assert len(seen) == 3  # waited 1 + 1 s; a third wait would pass 2.5 s


def test_retry_after_as_an_http_date():
    when = formatdate(time.time() + 2, usegmt=True)
    answers = [(429, {"Retry-After": when}, _error("rate_limited")), (200, {}, JOB)]
    with scripted_server(answers) as (url, seen), SimtrainClient(url, "k") as client:
        assert client.get_job("j-1") == JOB
    assert 0.5 <= seen[1]["at"] - seen[0]["at"] <= 3.5


def test_connection_failures_are_retried_then_raised_as_transport_errors():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    policy = RetryPolicy(max_retries=2, base_delay=0.05)
    with SimtrainClient(f"http://127.0.0.1:{port}", "k", retry=policy) as client:
        start = time.monotonic()
        with pytest.raises(TransportError) as err:
            client.list_jobs()
    assert err.value.status == 0 and err.value.code == "connection_failed"
    assert f"127.0.0.1:{port}" in err.value.message and time.monotonic() - start >= 0.05


def test_every_call_has_a_timeout():
    with scripted_server([(200, {}, JOB)], delay=1.0) as (url, seen):
        with SimtrainClient(url, "k", timeout=0.2, retry=None) as client:
            with pytest.raises(RequestTimeoutError) as err:
                client.get_job("j-1")
    assert err.value.code == "timeout" and len(seen) == 1
