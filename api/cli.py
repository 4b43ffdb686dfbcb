"""The `simtrain` command.

    simtrain dev [--port 8000] [--home DIR]     everything on this machine: SQLite, embedded broker, a worker
    simtrain migrate                            create / upgrade the database schema (Alembic)
    simtrain serve [--host H] [--port P]        migrate, then run the API (uvicorn)
    simtrain worker [--concurrency N]           run a Celery worker on the configured queue
    simtrain keys create --tenant NAME          print a new API key for the tenant (created if new)
    simtrain keys revoke KEY
    simtrain submit --dataset builtin:digits --loss '{"kind":"simloss"}' [--similarity JSON]
                    [--epochs N] [--wait]
    simtrain status JOB [--follow]
    simtrain download JOB NAME -o PATH

Client commands take `--url` (env SIMTRAIN_URL, default http://127.0.0.1:8000) and `--api-key`
(env SIMTRAIN_API_KEY). This module never imports `worker/`: the worker runs as `python -m celery`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from core.compare.cli import add_compare_arguments, base_spec_from_args, compare_command, json_arg

__all__ = ["build_parser", "main", "worker_command"]

DEFAULT_URL = "http://127.0.0.1:8000"


def _settings():
    from core.settings import get_settings

    get_settings.cache_clear()
    return get_settings()


def _session_factory(settings):
    from core.db import make_engine, make_sessionmaker

    return make_sessionmaker(make_engine(settings.database_url))


def _migrate(settings) -> None:
    from migrations import upgrade_head

    if settings.is_sqlite:
        settings.ensure_home()
    upgrade_head(settings.database_url)


def worker_command(queue: str, concurrency: int, extra: list[str] | None = None) -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "worker.app:celery_app", "worker",
        "-Q", queue, "-c", str(concurrency), "--loglevel", "INFO", *(extra or []),
    ]  # fmt: skip


def _api_command(host: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "--factory", "api.main:create_app",
        "--host", host, "--port", str(port), "--no-access-log",
    ]  # fmt: skip


# ------------------------------------------------------------------------------------ server commands


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings()
    _migrate(settings)
    print(f"database at head: {_redact(settings.database_url)}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings()
    _migrate(settings)
    import uvicorn

    uvicorn.run("api.main:create_app", factory=True, host=args.host, port=args.port, workers=args.workers)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    settings = _settings()
    cmd = worker_command(settings.queue, args.concurrency)
    proc = subprocess.Popen(cmd, start_new_session=True)  # our signal handler forwards one TERM
    return _wait_forwarding_signals([proc], grace=args.grace)


def cmd_keys_create(args: argparse.Namespace) -> int:
    from core.auth import create_api_key

    settings = _settings()
    with _session_factory(settings)() as session:
        key = create_api_key(session, args.tenant, args.name or "")
    print(key)
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from core.auth import revoke_api_key

    settings = _settings()
    with _session_factory(settings)() as session:
        ok = revoke_api_key(session, args.key)
    if not ok:
        print("no such key", file=sys.stderr)
        return 1
    print("revoked")
    return 0


def _wait_forwarding_signals(procs: list[subprocess.Popen], grace: float = 20.0) -> int:
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
                print(f"simtrain: {name} exited with status {p.returncode}; stopping", file=sys.stderr)
                code = p.returncode or 1
                break
            time.sleep(0.2)
        _terminate(procs, grace, force=lambda: signals > 1)
        return code
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _terminate(procs: list[subprocess.Popen], grace: float, force=lambda: False) -> None:
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


def cmd_dev(args: argparse.Namespace) -> int:
    """The embedded default in one command: migrate, a dev key, a worker and the API."""
    if args.home:
        os.environ["SIMTRAIN_HOME"] = str(Path(args.home).expanduser().resolve())
    settings = _settings()
    settings.ensure_home()
    os.environ["SIMTRAIN_HOME"] = str(settings.home)
    _migrate(settings)

    key_file = settings.home / "dev-api-key"
    key = key_file.read_text().strip() if key_file.exists() else ""
    from core.auth import create_api_key, resolve_api_key

    factory = _session_factory(settings)
    with factory() as session:
        if not key or resolve_api_key(session, key) is None:
            key = create_api_key(session, "dev", "simtrain dev")
            key_file.write_text(key + "\n")
            key_file.chmod(0o600)

    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    # own sessions: a Ctrl-C in the terminal reaches only this process, which stops each child once
    worker = subprocess.Popen(
        worker_command(settings.queue, args.concurrency), env=env, start_new_session=True
    )
    api = subprocess.Popen(_api_command(args.host, args.port), env=env, start_new_session=True)
    procs = [worker, api]
    url = f"http://{args.host}:{args.port}"
    try:
        if not _wait_ready(url, procs, timeout=args.ready_timeout):
            print(f"simtrain: the API did not become ready at {url}/readyz", file=sys.stderr)
            _terminate(procs, 10.0)
            return 1
    except KeyboardInterrupt:
        _terminate(procs, 10.0)
        return 130
    print(f"simtrain is running at {url}", flush=True)
    print(f"API key: {key}", flush=True)
    print(f"(home: {settings.home}; Ctrl-C stops the API and the worker)", flush=True)
    return _wait_forwarding_signals(procs, grace=60.0)


def _wait_ready(url: str, procs: list[subprocess.Popen], timeout: float) -> bool:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            return False
        try:
            if httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return False


# ------------------------------------------------------------------------------------ client commands


def _client(args: argparse.Namespace):
    from core.client import SimtrainClient

    if not args.api_key:
        raise SystemExit("simtrain: no API key: pass --api-key or set SIMTRAIN_API_KEY")
    return SimtrainClient(args.url, args.api_key)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=False))


def cmd_submit(args: argparse.Namespace) -> int:
    spec = base_spec_from_args(args)
    if args.loss:
        spec["loss"] = json_arg(args.loss, "loss")
    with _client(args) as client:
        job = client.create_job(spec, idempotency_key=args.idempotency_key)
        print(job["id"], flush=True)
        if args.wait:
            job = _follow(client, job["id"])
            _print_summary(job)
            return 0 if job["status"] == "succeeded" else 1
    return 0


def _bar(fraction: float, width: int = 30) -> str:
    filled = int(round(max(0.0, min(1.0, fraction)) * width))
    return "#" * filled + "-" * (width - filled)


def _follow(client, job_id: str) -> dict:
    """Draw a progress line from the events stream until the job ends; returns the final job."""
    job = client.get_job(job_id)
    epochs = job["progress"]["epochs"]
    status = job["status"]
    interactive = sys.stderr.isatty()
    for event in client.stream_events(job_id):
        data = event.get("data") or {}
        if event["kind"] == "state":
            status = data.get("status", status)
            if not interactive:
                print(f"[{status}] {event.get('message', '')}", file=sys.stderr, flush=True)
        elif event["kind"] == "epoch":
            epoch = int(data.get("epoch", 0) or 0)
            val = data.get("val") or {}
            extra = " ".join(
                f"{k}={val[k]:.4g}" for k in ("loss", "accuracy") if isinstance(val.get(k), (int, float))
            )
            line = f"epoch {epoch}/{epochs} [{_bar(epoch / epochs if epochs else 0)}] {extra}"
            print(
                ("\r" + line) if interactive else line,
                end="" if interactive else "\n",
                file=sys.stderr,
                flush=True,
            )
        elif event["kind"] == "warning":
            print(f"\nwarning: {event.get('message')}", file=sys.stderr, flush=True)
    if interactive:
        print(file=sys.stderr)
    return client.get_job(job_id)


def _print_summary(job: dict) -> None:
    print(f"job {job['id']}: {job['status']}")
    if job.get("error"):
        print(f"error: {job['error']['code']}: {job['error']['message']}")
    final = job.get("final_metrics") or {}
    for key, value in final.items():
        if isinstance(value, (int, float)):
            print(f"  {key}: {value:.4g}")


def cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.follow:
            job = _follow(client, args.job)
            _print_summary(job)
        else:
            job = client.get_job(args.job)
            if args.json:
                _print_json(job)
            else:
                p = job["progress"]
                eta = f", eta {p['eta_seconds']:.0f}s" if p.get("eta_seconds") is not None else ""
                print(f"job {job['id']}: {job['status']} epoch {p['epoch']}/{p['epochs']}{eta}")
                if job.get("error"):
                    print(f"error: {job['error']['code']}: {job['error']['message']}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    with _client(args) as client:
        path = client.download_artifact(args.job, args.name, args.output or args.name)
    print(path)
    return 0


# ------------------------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simtrain", description="Training as a service with similarity-aware losses."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("migrate", help="create or upgrade the database schema")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("serve", help="migrate, then run the API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="run a training worker (Celery)")
    p.add_argument("--concurrency", "-c", type=int, default=1)
    p.add_argument(
        "--grace",
        type=float,
        default=100.0,
        help="seconds a stopping worker gets to finish its epoch and hand the job back (then KILL)",
    )
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("dev", help="everything on this machine: database, broker, worker and API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--home",
        help="where the database, broker and artifacts live (default: $SIMTRAIN_HOME or ~/.simtrain)",
    )
    p.add_argument("--concurrency", type=int, default=1, help="worker processes")
    p.add_argument("--ready-timeout", type=float, default=120.0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_dev)

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    p = keys.add_parser("create", help="print a new API key (the tenant is created if new)")
    p.add_argument("--tenant", required=True)
    p.add_argument("--name", default="", help="a label for the key")
    p.set_defaults(func=cmd_keys_create)
    p = keys.add_parser("revoke", help="revoke an API key")
    p.add_argument("key")
    p.set_defaults(func=cmd_keys_revoke)

    def client_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", default=os.environ.get("SIMTRAIN_URL", DEFAULT_URL))
        p.add_argument("--api-key", default=os.environ.get("SIMTRAIN_API_KEY"))

    p = sub.add_parser("submit", help="submit a training job")
    client_args(p)
    p.add_argument("--dataset", required=True, help="builtin:digits or an uploaded dataset's id")
    p.add_argument("--classes", help="comma-separated subset / order of the classes")
    p.add_argument("--similarity", help="similarity spec as JSON (or @file.json)")
    p.add_argument("--loss", help='loss spec as JSON, e.g. \'{"kind":"simloss"}\'')
    p.add_argument("--model", help="model spec as JSON")
    p.add_argument("--training", help="training spec as JSON")
    p.add_argument("--epochs", type=int)
    p.add_argument("--idempotency-key")
    p.add_argument("--wait", action="store_true", help="follow the job until it ends")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("status", help="show a job")
    client_args(p)
    p.add_argument("job")
    p.add_argument("--follow", "-f", action="store_true", help="live progress until the job ends")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("download", help="download an artifact of a job")
    client_args(p)
    p.add_argument("job")
    p.add_argument("name", help="model.onnx, model.safetensors, model.json, metrics.json, curves.png, ...")
    p.add_argument("-o", "--output", help="where to write it (default: NAME)")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("compare", help="compare losses over seeds against cross-entropy")
    client_args(p)
    add_compare_arguments(p)
    p.set_defaults(func=compare_command)
    return parser


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else url
    return url


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from core.errors import SimtrainError

        if isinstance(exc, SimtrainError):
            print(f"simtrain: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
