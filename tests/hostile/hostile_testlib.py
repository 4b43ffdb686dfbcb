"""Helpers of the hostile-input and outage tests: free ports, a private PostgreSQL server, the API as a
uvicorn subprocess, API keys in any database, raw-socket requests."""

from __future__ import annotations

import json
import os
import pwd
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PG_BIN = Path(os.environ.get("SIMTRAIN_PG_BIN", "/usr/lib/postgresql/15/bin"))
SETTINGS_ENV = ("DATABASE_URL", "BROKER_URL")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**values: Any) -> dict[str, str]:
    """This process's environment without simtrain settings, plus `values` (SIMTRAIN_<NAME>)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMTRAIN_") and k not in SETTINGS_ENV}
    env.update({"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    for key, value in values.items():
        env[f"SIMTRAIN_{key.upper()}"] = str(value)
    return env


# ------------------------------------------------------------------------------------ private PostgreSQL


class PrivatePostgres:
    """A throwaway PostgreSQL cluster on a free loopback port (run as the `postgres` user when we are root)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="simtrain-pg-", dir="/tmp"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.running = False
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = [str(PG_BIN / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, cwd=self.dir)
        if done.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed ({done.returncode}): {done.stdout}\n{done.stderr}\n{self.logs()}"
            )
        return done

    def init(self) -> PrivatePostgres:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        return self

    def start(self) -> PrivatePostgres:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c shared_buffers=16MB -c max_connections=60"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "-t", "60", "start"
        )
        self.running = True
        return self

    def stop(self) -> None:
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")
            self.running = False

    def logs(self) -> str:
        try:
            return self.log.read_text()[-3000:]
        except OSError:
            return ""

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class ApiServer:
    """`uvicorn --factory api.main:create_app` on a free port, in a process group of its own."""

    database_url: str = ""
    home: Path | None = None

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "api.main:create_app"]
            + ["--host", "127.0.0.1", "--port", str(self.port), "--no-access-log"],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> ApiServer:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the API exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the API did not answer within {timeout}s:\n{self.logs()}")

    def _status_kb(self, field: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def peak_rss_mb(self) -> float:
        """The API process's peak resident set size so far (VmHWM)."""
        return self._status_kb("VmHWM") / 1024

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


def add_key(database_url: str, tenant: str) -> str:
    """A new API key for `tenant` in the database at `database_url`."""
    from core.auth import create_api_key
    from core.db import make_engine, make_sessionmaker

    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            return create_api_key(session, tenant)
    finally:
        engine.dispose()


def raw_post(port: int, path: str, headers: dict[str, str], chunks, chunked: bool, deadline_s: float = 30.0):
    """POST over a raw socket, sending body chunks only while the server has not answered.

    Returns (status, json body, bytes of body sent). A server that refuses early answers while most of the
    body is still unsent."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=deadline_s)
    sent = 0
    try:
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        if chunked:
            head += "Transfer-Encoding: chunked\r\n"
        sock.sendall((head + "\r\n").encode())
        deadline = time.monotonic() + deadline_s
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the answer is there: stop sending
            data = (f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n") if chunked else chunk
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
            assert time.monotonic() < deadline, "the server neither read nor refused the body"
        else:
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        response = b""
        while b"\r\n\r\n" not in response or len(response) < _expected_len(response):
            try:
                part = sock.recv(65536)
            except ConnectionResetError:
                break
            if not part:
                break
            response += part
    finally:
        sock.close()
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, (json.loads(body) if body else None), sent


def _expected_len(response: bytes) -> int:
    head, sep, _ = response.partition(b"\r\n\r\n")
    if not sep:
        return 1 << 62
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(head) + 4 + int(line.split(b":")[1])
    return len(response)


def timed_request(client, method: str, path: str, **kwargs):
    """(response, seconds) of one request through `client` (an httpx or TestClient)."""
    start = time.monotonic()
    r = client.request(method, path, **kwargs)
    return r, time.monotonic() - start
