"""API under load: `GET /v1/jobs/{id}` and `POST /v1/jobs` with 50 concurrent clients on PostgreSQL while
a worker trains, next to a bare FastAPI app served the same way, measured in the same run.

Setup (benchmarks/common.py `ServiceStack("postgres")`): a scratch PostgreSQL database (migrated,
dropped at the end), the Redis broker (a queue of its own, its keys deleted at the end), the API as
`python -m uvicorn --factory api.main:create_app --workers N` on 127.0.0.1 (N = --api-workers, default 2:
one per core of the 2-core machine this was written on), and one Celery worker (solo pool, one torch
thread so that it takes one core) training a long job (digits, MLP 256-256, up to 1000 epochs: a
progress write to the database every epoch) for the whole measurement. The bare app is
`benchmarks/api_load.py:create_bare_app`: the same two routes as plain sync FastAPI handlers (run in
the thread pool like the real ones) answering a fixed ~1 KB JSON without touching anything, served by
the same uvicorn command (same worker count) on another port.

Load: --clients (default 50) closed-loop clients in one asyncio process (httpx.AsyncClient, uvloop if
installed, one keep-alive connection per client, loopback only), each sending requests back to back
for --duration seconds (default 10) or --max-requests in all, whichever comes first. Phases, each
preceded by a short warm-up, alternate bare / real and repeat --rounds times (default 3):
GET of one of 20 existing jobs (the running one among them), and POST of a small valid job (the
quota is lifted for the run; the jobs only queue behind the training one). Reported per route and
app: requests/s (median over rounds), latency p50 / p99 over all requests, failures (any non-2xx or
transport error), and the client's own CPU use (a saturated client inflates every latency).

    python benchmarks/api_load.py                         # writes the "API under load" section
    python benchmarks/api_load.py --api-workers 1 --duration 5 --rounds 1 --no-write

Needs PostgreSQL (SIMTRAIN_TEST_PG or --pg-admin) and Redis (--redis), like service_overhead.py.
Target: status reads p99 < 50 ms, no failed requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    DOC,
    PG_ADMIN_URL,
    REDIS_URL,
    ServiceStack,
    load_average,
    machine,
    median,
    percentile,
    today,
    write_section,
)

SECTION = "API under load"
GET_P99_TARGET_S = 0.050
LONG_JOB = {
    "dataset": "builtin:digits",
    "model": {"kind": "mlp", "hidden": [256, 256]},
    "training": {"epochs": 1000, "batch_size": 64, "seed": 1},
}
SHORT_JOB = {
    "dataset": "builtin:digits",
    "model": {"kind": "mlp", "hidden": [32]},
    "training": {"epochs": 2, "batch_size": 64, "seed": 2},
}


# ------------------------------------------------------------------------------------------ the bare app


def create_bare_app():
    """The baseline: FastAPI with the same two routes doing nothing (sync handlers, like the real ones)."""
    import uuid

    from fastapi import FastAPI, Request, status

    app = FastAPI()
    payload = {"status": "running", "dataset": "builtin:digits", "padding": "x" * 1000}

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/v1/jobs/{job_id}")
    def get_job(job_id: str) -> dict:
        return {"id": job_id, **payload}

    @app.post("/v1/jobs", status_code=status.HTTP_201_CREATED)
    def create_job(body: dict) -> dict:
        return {"id": str(uuid.uuid4()), **payload, "status": "queued"}

    return app


class BareServer:
    """`python -m uvicorn --factory api_load:create_bare_app --app-dir benchmarks`, same flags as the API."""

    def __init__(self, stack: ServiceStack, workers: int) -> None:
        from common import free_port

        self.stack = stack
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.workers = workers

    def start(self) -> BareServer:
        here = str(Path(__file__).resolve().parent)
        self.stack._spawn("bare", [sys.executable, "-m", "uvicorn", "--factory", "api_load:create_bare_app",
                                   "--app-dir", here, "--host", "127.0.0.1", "--port", str(self.port),
                                   "--workers", str(self.workers), "--log-level", "warning", "--no-access-log"])  # fmt: skip
        self.stack._wait_http(f"{self.base_url}/healthz", "bare")
        return self


# ------------------------------------------------------------------------------------------ the load


async def load_phase(base_url: str, headers: dict, route: str, job_ids: list[str], clients: int,
                     duration: float, max_requests: int) -> dict:
    import httpx

    latencies: list[float] = []
    failures: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    loop = asyncio.get_running_loop()
    budget = [max_requests]
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=30.0) as client:
        rng = random.Random(0)
        stop_at = loop.time() + duration

        async def one_client() -> None:
            while loop.time() < stop_at and budget[0] > 0:
                budget[0] -= 1
                t0 = time.perf_counter()
                try:
                    if route == "GET":
                        r = await client.get(f"/v1/jobs/{rng.choice(job_ids)}")
                    else:
                        r = await client.post("/v1/jobs", json=SHORT_JOB)
                    if not 200 <= r.status_code < 300:
                        failures[f"HTTP {r.status_code}"] += 1
                except Exception as exc:  # noqa: BLE001 - every failure counts
                    failures[type(exc).__name__] += 1
                latencies.append(time.perf_counter() - t0)

        c0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"n": len(latencies), "elapsed": elapsed, "rps": len(latencies) / elapsed, "latencies": latencies,
            "failures": dict(failures), "client_cpu": cpu / elapsed}


def run_phase(*args) -> dict:
    return asyncio.run(load_phase(*args))


def summarize(phases: list[dict]) -> dict:
    lat = [x for p in phases for x in p["latencies"]]
    failures: Counter[str] = Counter()
    for p in phases:
        failures.update(p["failures"])
    return {"requests": len(lat), "rps": median(p["rps"] for p in phases), "p50": percentile(lat, 50),
            "p99": percentile(lat, 99), "max": max(lat) if lat else float("nan"),
            "failures": sum(failures.values()), "failure_kinds": dict(failures),
            "client_cpu": median(p["client_cpu"] for p in phases)}


def table(summary: dict) -> str:
    lines = ["| route | app | requests | requests/s | p50 (ms) | p99 (ms) | max (ms) | failures | client CPU |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for route in ("GET", "POST"):
        for app in ("bare", "simtrain"):
            s = summary[(route, app)]
            kinds = ", ".join(f"{k} x{v}" for k, v in s["failure_kinds"].items())
            label = "GET /v1/jobs/{id}" if route == "GET" else "POST /v1/jobs"
            lines.append(f"| {label} | {app} | {s['requests']:,} | {s['rps']:,.0f} | {s['p50'] * 1e3:.1f} | "
                         f"{s['p99'] * 1e3:.1f} | {s['max'] * 1e3:.0f} | {s['failures']}{f' ({kinds})' if kinds else ''} | "
                         f"{s['client_cpu'] * 100:.0f}% |")
        b, a = summary[(route, "bare")], summary[(route, "simtrain")]
        lines.append(f"| | simtrain / bare | | {a['rps'] / b['rps']:.2f}x | {a['p50'] / b['p50']:.1f}x | "
                     f"{a['p99'] / b['p99']:.1f}x | | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per timed phase")
    ap.add_argument("--max-requests", type=int, default=20_000, help="cap per phase")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of untimed load before each phase")
    ap.add_argument("--api-workers", type=int, default=2, help="uvicorn --workers for both apps (default 2)")
    ap.add_argument("--routes", nargs="+", default=["GET", "POST"], choices=["GET", "POST"])
    ap.add_argument("--pg-admin", default=PG_ADMIN_URL)
    ap.add_argument("--redis", default=REDIS_URL)
    ap.add_argument("--note", default="")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--doc", type=Path, default=DOC)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
        client_loop = "uvloop"
    except ImportError:
        client_loop = "asyncio"
    import httpx

    load_before = load_average()
    t_start = time.perf_counter()
    phases: dict[tuple[str, str], list[dict]] = {(r, a): [] for r in args.routes for a in ("bare", "simtrain")}
    stack = ServiceStack("postgres", api_workers=args.api_workers, pg_admin_url=args.pg_admin, redis_url=args.redis,
                         env={"SIMTRAIN_MAX_ACTIVE_JOBS_PER_TENANT": "10000000", "OMP_NUM_THREADS": "1"})
    with stack:
        bare = BareServer(stack, args.api_workers).start()
        stack.start_worker()
        with httpx.Client(base_url=stack.base_url, headers=stack.headers, timeout=30) as c:
            running = c.post("/v1/jobs", json=LONG_JOB).json()["id"]
            job_ids = [running] + [c.post("/v1/jobs", json=SHORT_JOB).json()["id"] for _ in range(19)]
            deadline = time.monotonic() + 120
            while c.get(f"/v1/jobs/{running}").json()["status"] != "running":
                if time.monotonic() > deadline:
                    raise RuntimeError("the training job did not start:\n" + stack.log("worker")[-3000:])
                time.sleep(0.2)
        print(f"training job {running} is running; {args.clients} clients, {args.duration:g} s phases, "
              f"{args.rounds} rounds, {args.api_workers} uvicorn workers per app", flush=True)
        targets = {"bare": (bare.base_url, {}), "simtrain": (stack.base_url, stack.headers)}
        for r in range(args.rounds):
            for route in args.routes:
                for app in (("bare", "simtrain") if r % 2 == 0 else ("simtrain", "bare")):
                    url, headers = targets[app]
                    if args.warmup > 0:
                        run_phase(url, headers, route, job_ids, args.clients, args.warmup, args.max_requests)
                    res = run_phase(url, headers, route, job_ids, args.clients, args.duration, args.max_requests)
                    phases[(route, app)].append(res)
                    print(f"  round {r} {route:4s} {app:8s} {res['rps']:7.0f} req/s  p50 "
                          f"{percentile(res['latencies'], 50) * 1e3:6.1f} ms  p99 "
                          f"{percentile(res['latencies'], 99) * 1e3:6.1f} ms  failures {res['failures'] or 0}  "
                          f"client CPU {res['client_cpu'] * 100:.0f}%", flush=True)
        with httpx.Client(base_url=stack.base_url, headers=stack.headers, timeout=30) as c:
            job = c.get(f"/v1/jobs/{running}").json()
            trained = f"the training job was {job['status']} at epoch {job['progress']['epoch']} at the end"
            c.post(f"/v1/jobs/{running}/cancel")
    minutes = (time.perf_counter() - t_start) / 60
    print(trained)

    summary = {key: summarize(v) for key, v in phases.items()}
    tbl = table(summary) if set(args.routes) == {"GET", "POST"} else json.dumps(
        {f"{k[0]} {k[1]}": {m: v for m, v in s.items()} for k, s in summary.items()}, indent=1)
    verdicts = []
    if ("GET", "simtrain") in summary:
        p99 = summary[("GET", "simtrain")]["p99"]
        verdicts.append(f"status reads p99 {p99 * 1e3:.1f} ms ({'met' if p99 < GET_P99_TARGET_S else 'MISSED'})")
    failed = sum(s["failures"] for (_, app), s in summary.items() if app == "simtrain")
    verdicts.append(f"{failed} failed requests ({'met' if failed == 0 else 'MISSED'})")
    print()
    print(tbl)
    print("\ntargets: " + "; ".join(verdicts))
    if args.json:
        args.json.write_text(json.dumps({f"{k[0]} {k[1]}": {m: v for m, v in s.items()} for k, s in summary.items()},
                                        indent=1))
    if args.no_write:
        return 0
    cmd = "python benchmarks/api_load.py " + " ".join(sys.argv[1:] if argv is None else argv)
    body = (
        f"`{cmd.strip()}` on {today()}; {machine()}; load average {load_before} before, {load_average()} "
        f"after ({minutes:.1f} min).\n\n"
        f"{args.clients} closed-loop clients (httpx.AsyncClient on {client_loop}, one process, keep-alive, "
        f"loopback), {args.rounds} rounds of {args.duration:g} s per route and app (after {args.warmup:g} s "
        f"warm-up each), bare and simtrain alternating. Both apps run under `uvicorn --workers "
        f"{args.api_workers}` (one per core; uvloop + httptools); simtrain on a scratch PostgreSQL database "
        f"with Redis, while one Celery worker (one torch thread) trains a long job and writes its progress "
        f"every epoch ({trained}). Everything, the client included, shares the 2 cores with other work. "
        f"Target: status reads p99 < {GET_P99_TARGET_S * 1e3:.0f} ms, no failures: " + "; ".join(verdicts) + ".\n\n"
        + (f"{args.note}\n\n" if args.note else "")
        + f"{tbl}\n"
    )
    write_section(SECTION, body, args.doc)
    print(f"wrote the '{SECTION}' section of {args.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
