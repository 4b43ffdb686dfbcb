"""The processes `simtrain dev` and `simtrain worker` start, by module name (the CLI imports neither
api/ nor worker/), and how they are stopped.

    procs = [subprocess.Popen(worker_command("simtrain", 1), start_new_session=True)]
    code = wait_forwarding_signals(procs, grace=20.0)   # Ctrl-C / SIGTERM: one TERM each, then KILL

A child that exits on its own stops the others (exit status 1, or its own).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable

from cli.output import line
from core.client import ApiError, SimtrainClient
from core.client.retry import NO_RETRY

__all__ = [
    "api_command", "die_with_parent", "terminate", "wait_forwarding_signals", "wait_ready", "worker_command",
]  # fmt: skip


def die_with_parent() -> None:
    """`preexec_fn` of a child: on Linux it gets SIGTERM (a graceful stop: the worker hands its job back)
    when the process that started it dies, even by SIGKILL, so no child outlives `simtrain dev`."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def worker_command(queue: str, concurrency: int, extra: list[str] | None = None) -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "worker.app:celery_app", "worker",
        "-Q", queue, "-c", str(concurrency), "--loglevel", "INFO", *(extra or []),
    ]  # fmt: skip


def api_command(host: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "--factory", "api.main:create_app",
        "--host", host, "--port", str(port), "--no-access-log",
    ]  # fmt: skip


def wait_forwarding_signals(procs: list[subprocess.Popen], grace: float = 20.0) -> int:
    """Wait for the children. SIGINT/SIGTERM stop them all: one TERM each, KILL after `grace` seconds
    or at a second signal. A child that exits on its own stops the others (exit status 1)."""
    signals = 0

    def stop(signum=None, frame=None):
        nonlocal signals
        signals += 1

    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = 0
        while not signals:
            ended = [p for p in procs if p.poll() is not None]
            if ended:
                p = ended[0]
                name = p.args[2] if len(p.args) > 2 else p.args[0]
                line(f"simtrain: {name} exited with status {p.returncode}; stopping", stderr=True)
                code = p.returncode or 1
                break
            time.sleep(0.2)
        terminate(procs, grace, force=lambda: signals > 1)
        return code
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def terminate(procs: list[subprocess.Popen], grace: float, force: Callable[[], bool] = lambda: False) -> None:
    """TERM each child still running, KILL those left after `grace` seconds (or once `force()`)."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(p.poll() is None for p in procs):
        if time.monotonic() >= deadline or force():
            for p in procs:
                if p.poll() is None:
                    p.kill()
            for p in procs:
                p.wait()
            return
        time.sleep(0.1)


def wait_ready(url: str, procs: list[subprocess.Popen], timeout: float) -> bool:
    """Whether `url/readyz` answered 200 within `timeout` seconds while every child kept running."""
    deadline = time.monotonic() + timeout
    with SimtrainClient(url, timeout=2.0, retry=NO_RETRY) as client:
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in procs):
                return False
            try:
                client.ready()
                return True
            except ApiError:
                pass
            time.sleep(0.3)
    return False
