"""`simtrain dev` end to end: start it, read the key it prints, train a job over HTTP, SIGTERM it, and
check that none of the processes it started (the API, the Celery worker and its pool) outlive it."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from hostile_testlib import REPO, clean_env, free_port

KEY_LINE = re.compile(r"^API key: (st_\S+)\s*$")


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a live process, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0], int(fields[19])


def _descendants(root: int) -> dict[int, int]:
    """{pid: start time} of every process below `root` (children in new sessions included)."""
    parents: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := _stat(int(entry))) is not None:
            parents.setdefault(info[0], []).append(int(entry))
            starts[int(entry)] = info[2]
    out: dict[int, int] = {}
    todo = [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            out[child] = starts[child]
            todo.append(child)
    return out


def _alive(pid: int, start: int) -> bool:
    info = _stat(pid)
    return info is not None and info[2] == start and info[1] != "Z"


class Dev:
    """`python -m cli dev` with its output collected; `key()` waits for the `API key:` line."""

    def __init__(self, tmp_path) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "dev", "--port", str(self.port), "--home", str(tmp_path / "home")],
            cwd=REPO, env=clean_env(device="cpu"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)

    def key(self, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, "simtrain dev exited:\n" + self.tail()
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no `API key:` line within {timeout} s:\n" + self.tail())
            if match := KEY_LINE.match(line):
                return match.group(1)

    def tail(self, n: int = 60) -> str:
        return "".join(self.output[-n:])

    def stop_all(self, family: dict[int, int]) -> None:
        """Kill what is left: the dev process and only the descendants this test saw."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for pid, start in (family | _descendants(self.proc.pid)).items():
            if _alive(pid, start):
                os.kill(pid, signal.SIGKILL)


def _wait_gone(family: dict[int, int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (
        left := [pid for pid, start in family.items() if _alive(pid, start)]
    ) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_simtrain_dev_trains_a_job_and_stops_everything_on_sigterm(tmp_path):
    dev = Dev(tmp_path)
    proc, output, port = dev.proc, dev.output, dev.port
    family: dict[int, int] = {}
    try:
        key = dev.key()
        assert any(f"http://127.0.0.1:{port}" in line for line in output)

        url = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=auth, timeout=30) as client:
            r = client.post(
                "/v1/jobs",
                json={
                    "dataset": "builtin:digits",
                    "similarity": {"kind": "ordinal", "reduction_factor": 0.5},
                    "loss": {"kind": "simloss"},
                    "model": {"kind": "linear"},
                    "training": {"epochs": 2},
                },
            )
            assert r.status_code == 201, r.text
            job_id = r.json()["id"]
            family = _descendants(proc.pid)  # the API, the worker and its pool are all up by now
            deadline = time.monotonic() + 150
            while True:
                job = client.get(f"/v1/jobs/{job_id}").json()
                if job["status"] in ("succeeded", "failed", "cancelled"):
                    break
                assert time.monotonic() < deadline, f"job still {job['status']}:\n" + "".join(output[-60:])
                time.sleep(0.5)
            assert job["status"] == "succeeded", (job, "".join(output[-60:]))
            assert job["progress"]["epoch"] == 2 and job["final_metrics"]["accuracy"] > 0
            names = {a["name"] for a in client.get(f"/v1/jobs/{job_id}/artifacts").json()["items"]}
            assert {"model.onnx", "model.safetensors", "metrics.json"} <= names

        family |= _descendants(proc.pid)
        commands = {
            pid: Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:80] for pid in family
        }
        print(f"simtrain dev ({proc.pid}) runs: {commands}")
        assert any(b"uvicorn" in c for c in commands.values()), commands
        assert any(b"celery" in c for c in commands.values()), commands  # solo pool: one process

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0, "".join(output[-60:])
        left = _wait_gone(family, 15)
        assert not left, f"still running after simtrain dev stopped: {left}\n" + "".join(output[-40:])
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{url}/healthz", timeout=2)
    finally:
        dev.stop_all(family)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_no_child_outlives_a_killed_simtrain_dev(tmp_path):
    """SIGKILL leaves `simtrain dev` no chance to stop its children: they get SIGTERM from the kernel
    (die_with_parent), stop gracefully and are gone."""
    dev = Dev(tmp_path)
    family: dict[int, int] = {}
    try:
        dev.key()
        deadline = time.monotonic() + 60
        while True:
            family = _descendants(dev.proc.pid)
            if any(b"celery" in _cmdline(pid) for pid in family):
                break
            assert time.monotonic() < deadline, dev.tail()
            time.sleep(0.2)
        family |= _descendants(dev.proc.pid)
        dev.proc.kill()
        dev.proc.wait(10)
        left = _wait_gone(family, 60)
        assert not left, f"children of a killed simtrain dev still running: {left}\n" + dev.tail()
    finally:
        dev.stop_all(family)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
