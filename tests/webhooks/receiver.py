"""A real webhook receiver for the tests: an HTTP server on 127.0.0.1 in a thread of the test process that
records every request and answers each one as the test planned.

    with Receiver() as rx:
        rx.plan("500", "ok")                 # the next answers, in order; "ok" (200) once they run out
        ... a delivery to rx.url ...
        first, second = rx.wait_for(2)       # Received(headers, body, at), headers lowercased

Behaviours: "ok" (200), "500", "hang" (never answers until `release()`), "big" (500 with a 10 MB body),
"redirect" (302 to its own URL: a redirect loop for a client that follows), "drip" (200 and one byte of
body every 0.2 s, for a minute).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

__all__ = ["Received", "Receiver"]

BIG_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    at: float
    behaviour: str


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._plan: list[str] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="receiver", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def plan(self, *behaviours: str) -> None:
        with self._lock:
            self._plan.extend(behaviours)

    def release(self) -> None:
        """Let every `hang` answer (200) now, and the later ones at once."""
        self._release.set()

    def next_behaviour(self) -> str:
        with self._lock:
            return self._plan.pop(0) if self._plan else "ok"

    def record(self, item: Received) -> None:
        with self._lock:
            self.requests.append(item)

    def wait_for(self, count: int, timeout: float = 60.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.02)
        raise AssertionError(f"the receiver got {len(self.requests)} requests, expected {count}")

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def do_POST(self) -> None:  # the http.server name
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            behaviour = receiver.next_behaviour()
            headers = {k.lower(): v for k, v in self.headers.items()}
            receiver.record(Received(headers, body, time.time(), behaviour))
            try:
                getattr(self, f"_{behaviour}")()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client hung up: what a bounded client does

        def _answer(self, code: int, body: bytes = b"", **headers: str) -> None:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _ok(self) -> None:
            self._answer(200, b'{"ok": true}')

        def _500(self) -> None:
            self._answer(500, b"receiver error")

        def _hang(self) -> None:
            receiver._release.wait(120)
            self._ok()

        def _redirect(self) -> None:
            self._answer(302, Location=receiver.url)

        def _big(self) -> None:
            self.send_response(500)
            self.send_header("Content-Length", str(BIG_BYTES))
            self.end_headers()
            chunk = b"x" * 65536
            for _ in range(BIG_BYTES // len(chunk)):
                self.wfile.write(chunk)

        def _drip(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(300):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.2)

    return Handler
