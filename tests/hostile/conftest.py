"""Fixtures of the hostile-input and outage tests.

Reused rather than copied: `make_service` / `embedded` / `service` (the app on the embedded default, or on
the real PostgreSQL + Redis, migrated, with two tenants and their keys) from `tests/api/conftest.py`.

Added here, all on loopback and stopped in teardown:

- `private_pg`: a PostgreSQL server of this test's own (`initdb` into a temporary directory, `pg_ctl` on a
  free port), that the test may stop and start again. The shared server is never touched.
- `api_server`: `uvicorn --factory api.main:create_app` as a subprocess with the given settings, with its
  peak RSS readable from /proc (`server.peak_rss_mb()`).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PG_BIN = Path(os.environ.get("SIMTRAIN_PG_BIN", "/usr/lib/postgresql/15/bin"))
SETTINGS_ENV = ("DATABASE_URL", "BROKER_URL")


def _load(name: str, path: Path) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_api_fixtures = _load("_simtrain_hostile_api_fixtures", TESTS / "api" / "conftest.py")
make_service = _api_fixtures.make_service
embedded = _api_fixtures.embedded
service = _api_fixtures.service
SIMPLE_JOB = _api_fixtures.SIMPLE_JOB


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
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.dir)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stdout}\n{done.stderr}\n{self.logs()}")
        return done

    def init(self) -> PrivatePostgres:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        return self

    def start(self) -> PrivatePostgres:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c shared_buffers=16MB -c max_connections=60"
        )
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "-t", "60", "start")
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


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL binaries not found in {PG_BIN} (set SIMTRAIN_PG_BIN)")
    server = PrivatePostgres().init().start()
    try:
        yield server
    finally:
        server.close()


# ------------------------------------------------------------------------------------------ API subprocess


class ApiServer:
    """`uvicorn --factory api.main:create_app` on a free port, in a process group of its own."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn", "--factory", "api.main:create_app",
                "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log",
            ],  # fmt: skip
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


@pytest.fixture
def api_server(tmp_path) -> Iterator[Any]:
    """`api_server(**settings)`: migrate the database the settings name, then start the API on it."""
    servers: list[ApiServer] = []

    def start(**values: Any) -> ApiServer:
        from core.db.migrate import upgrade_head

        home = Path(values.setdefault("home", tmp_path / "home")).resolve()
        home.mkdir(parents=True, exist_ok=True)
        env = clean_env(**values)
        upgrade_head(str(values.get("database_url") or f"sqlite:///{home / 'simtrain.db'}"))
        server = ApiServer(env, tmp_path / f"api-{len(servers)}.log")
        servers.append(server)
        return server.wait_ready()

    yield start
    for server in servers:
        server.stop()


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
