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


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_simtrain_dev_trains_a_job_and_stops_everything_on_sigterm(tmp_path):
    port = free_port()
    env = clean_env(device="cpu")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "dev", "--port", str(port), "--home", str(tmp_path / "home")],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []

    def read():
        for line in proc.stdout:
            output.append(line)
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    family: dict[int, int] = {}
    try:
        key = None
        deadline = time.monotonic() + 120
        while key is None:
            assert proc.poll() is None, "simtrain dev exited:\n" + "".join(output[-60:])
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail("no `API key:` line within 120 s:\n" + "".join(output[-60:]))
            if match := KEY_LINE.match(line):
                key = match.group(1)
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
        deadline = time.monotonic() + 15
        while (
            left := [pid for pid, start in family.items() if _alive(pid, start)]
        ) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left, f"still running after simtrain dev stopped: {left}\n" + "".join(output[-40:])
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{url}/healthz", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for pid, start in (family | _descendants(proc.pid)).items():  # only what this test started
            if _alive(pid, start):
                os.kill(pid, signal.SIGKILL)
