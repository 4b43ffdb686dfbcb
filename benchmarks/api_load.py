"""API under load: `GET /v1/jobs/{id}` and `POST /v1/jobs` with 50 concurrent clients on PostgreSQL while
a worker trains, next to a bare FastAPI app served the same way, measured in the same run.

Setup (benchmarks/common.py `ServiceStack("postgres")`): a scratch PostgreSQL database (migrated,
dropped at the end), the Redis broker (a queue of its own, its keys deleted at the end), the API as
`python -m uvicorn --factory api.main:create_app --workers N` on 127.0.0.1 (N = --api-workers, default 2:
one per core of the 2-core machine this was written on), and one Celery worker (solo pool, one torch
thread so that it takes one core) training a long job (digits, MLP 1024-1024, up to 1000 epochs: a
progress write to the database every epoch) for the whole measurement. The bare app is
`benchmarks/api_load.py:create_bare_app`: the same two routes as plain sync FastAPI handlers (run in
the thread pool like the real ones) answering a fixed ~1 KB JSON without touching anything, served by
the same uvicorn command (same worker count) on another port.

Load: --clients (default 50) clients in one asyncio process, each with one keep-alive connection on
loopback, using a minimal HTTP/1.1 client (`RawHTTP`; httpx.AsyncClient with --client httpx, which costs
the client far more CPU). Per route: a back-to-back load (each client sends its next request as soon as
the last one is answered: the saturation throughput, and the latency that queueing behind 50 clients
gives) and paced loads (each client one request every --get-intervals / --post-intervals seconds, at a
random phase: status reads at 50/s and 200/s offered, submissions at 50/s, by default). Each phase runs
--duration seconds (default 10, at most --max-requests) after a short warm-up; bare and simtrain
alternate, and everything repeats --rounds times (default 3). Reads GET one of 20 existing jobs (the
running one among them); submissions POST a small valid job (the tenant quota is lifted for the run;
the jobs only queue behind the training one). Reported per route, load and app: requests/s (median
over rounds), latency p50 / p99 / max over all requests, failures (any non-2xx or transport error), and
the client's own CPU use (a saturated client would inflate every latency).

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
    command_line,
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
    "model": {"kind": "mlp", "hidden": [1024, 1024]},  # ~1 s per epoch on one thread: outlasts the run
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

    from fastapi import FastAPI, status

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


class RawHTTP:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams (Content-Length and chunked bodies).

    httpx.AsyncClient spends milliseconds of CPU per request; with 50 clients on 2 shared cores it became
    the bottleneck (85% of a core at ~150 requests/s against the bare app), so by default the load
    comes from this: the server is what is measured. `--client httpx` uses httpx instead.
    """

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        hostport = base_url.split("://", 1)[1]
        self.host, port = hostport.split(":")
        self.port = int(port)
        self.head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": hostport, **headers}.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes | None = None) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        extra = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n" if body is not None else ""
        try:
            self.writer.write(f"{method} {path} HTTP/1.1\r\n{self.head}{extra}\r\n".encode() + (body or b""))
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            lower = head.lower()
            if b"transfer-encoding: chunked" in lower:
                while True:
                    size = int((await self.reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                    await self.reader.readexactly(size + 2)
                    if size == 0:
                        break
            else:
                i = lower.find(b"content-length:")
                length = int(lower[i + 15 : lower.index(b"\r\n", i)]) if i >= 0 else 0
                await self.reader.readexactly(length)
            if b"connection: close" in lower:
                await self.close()
            return status
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except Exception:  # noqa: BLE001
                pass
        self.reader = self.writer = None


async def load_phase(base_url: str, headers: dict, route: str, job_ids: list[str], clients: int,
                     duration: float, max_requests: int, interval: float = 0.0, client_kind: str = "raw") -> dict:
    """`clients` clients, each sending back to back (interval 0: saturation) or one request every
    `interval` seconds (paced, at a random phase), for `duration` seconds or `max_requests` in all."""
    import httpx

    latencies: list[float] = []
    failures: Counter[str] = Counter()
    loop = asyncio.get_running_loop()
    budget = [max_requests]
    post_body = json.dumps(SHORT_JOB).encode()
    rng = random.Random(0)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=30.0) as hx:
        stop_at = loop.time() + duration

        async def one_client() -> None:
            raw = RawHTTP(base_url, headers) if client_kind == "raw" else None
            next_at = loop.time() + (rng.random() * interval if interval else 0.0)
            try:
                while budget[0] > 0:
                    if interval:
                        await asyncio.sleep(max(0.0, next_at - loop.time()))
                        next_at += interval
                    if loop.time() >= stop_at:
                        break
                    budget[0] -= 1
                    path = f"/v1/jobs/{rng.choice(job_ids)}" if route == "GET" else "/v1/jobs"
                    t0 = time.perf_counter()
                    try:
                        if raw is not None:
                            code = await asyncio.wait_for(
                                raw.request(route, path, None if route == "GET" else post_body), 30.0)
                        elif route == "GET":
                            code = (await hx.get(path)).status_code
                        else:
                            code = (await hx.post(path, content=post_body,
                                                  headers={"Content-Type": "application/json"})).status_code
                        if not 200 <= code < 300:
                            failures[f"HTTP {code}"] += 1
                    except Exception as exc:  # noqa: BLE001 - every failure counts
                        failures[type(exc).__name__] += 1
                    latencies.append(time.perf_counter() - t0)
            finally:
                if raw is not None:
                    await raw.close()

        c0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    rate_over = duration if interval else elapsed  # paced: the offered window, not the tail of the last requests
    return {"n": len(latencies), "elapsed": elapsed, "rps": len(latencies) / rate_over, "latencies": latencies,
            "failures": dict(failures), "client_cpu": cpu / elapsed}


def run_phase(*args, **kwargs) -> dict:
    return asyncio.run(load_phase(*args, **kwargs))


def summarize(phases: list[dict]) -> dict:
    lat = [x for p in phases for x in p["latencies"]]
    failures: Counter[str] = Counter()
    for p in phases:
        failures.update(p["failures"])
    return {"requests": len(lat), "rps": median(p["rps"] for p in phases), "p50": percentile(lat, 50),
            "p99": percentile(lat, 99), "max": max(lat) if lat else float("nan"),
            "failures": sum(failures.values()), "failure_kinds": dict(failures),
            "client_cpu": median(p["client_cpu"] for p in phases)}


def server_stack() -> str:
    """The event loop and HTTP parser uvicorn picks (--loop auto, --http auto) in this environment: uvloop
    and httptools when they are installed (`uvicorn[standard]`), else asyncio and h11 (pure Python)."""
    import importlib.util

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"{loop} + {'httptools' if importlib.util.find_spec('httptools') else 'h11'}"


def load_label(interval: float, clients: int) -> str:
    return "back to back" if interval == 0 else f"{clients / interval:.0f}/s offered"


def table(summary: dict, loads: dict[str, list[float]], clients: int) -> str:
    lines = ["| route | load | app | requests | requests/s | p50 (ms) | p99 (ms) | max (ms) | failures | client CPU |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for route in ("GET", "POST"):
        for mode in loads.get(route, []):
            if (route, mode, "simtrain") not in summary:
                continue
            for app in ("bare", "simtrain"):
                s = summary[(route, mode, app)]
                kinds = ", ".join(f"{k} x{v}" for k, v in s["failure_kinds"].items())
                name = "GET /v1/jobs/{id}" if route == "GET" else "POST /v1/jobs"
                lines.append(f"| {name} | {load_label(mode, clients)} | {app} | {s['requests']:,} | {s['rps']:,.0f} | "
                             f"{s['p50'] * 1e3:.1f} | {s['p99'] * 1e3:.1f} | {s['max'] * 1e3:.0f} | "
                             f"{s['failures']}{f' ({kinds})' if kinds else ''} | {s['client_cpu'] * 100:.0f}% |")
            b, a = summary[(route, mode, "bare")], summary[(route, mode, "simtrain")]
            lines.append(f"| | | simtrain / bare | | {a['rps'] / b['rps']:.2f}x | {a['p50'] / b['p50']:.1f}x | "
                         f"{a['p99'] / b['p99']:.1f}x | | | |")
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per timed phase")
    ap.add_argument("--max-requests", type=int, default=50_000, help="cap per phase")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of untimed load before each phase")
    ap.add_argument("--get-intervals", type=float, nargs="*", default=[1.0, 0.25],
                    help="paced loads: seconds between one client's status reads (default 1 and 0.25: 50/s and "
                         "200/s offered by 50 clients); a back-to-back load always runs too")
    ap.add_argument("--post-intervals", type=float, nargs="*", default=[1.0],
                    help="paced loads: seconds between one client's submissions (default 1: 50/s offered)")
    ap.add_argument("--client", choices=["raw", "httpx"], default="raw",
                    help="raw: a minimal asyncio HTTP/1.1 client (default); httpx: httpx.AsyncClient")
    ap.add_argument("--api-workers", type=int, default=2, help="uvicorn --workers for both apps (default 2)")
    ap.add_argument("--routes", nargs="+", default=["GET", "POST"], choices=["GET", "POST"])
    ap.add_argument("--pg-admin", default=PG_ADMIN_URL)
    ap.add_argument("--redis", default=REDIS_URL)
    ap.add_argument("--note", default="")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--doc", type=Path, default=DOC)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    return args


def client_event_loop() -> str:
    """Install uvloop for the load clients when it is there; the loop's name."""
    try:
        import uvloop

        uvloop.install()
        return "uvloop"
    except ImportError:
        return "asyncio"


def start_jobs(stack: ServiceStack) -> tuple[str, list[str]]:
    """Submit one long job (waits until it trains) and 19 short ones; (the long job's id, all 20 ids)."""
    import httpx

    with httpx.Client(base_url=stack.base_url, headers=stack.headers, timeout=30) as c:
        running = c.post("/v1/jobs", json=LONG_JOB).json()["id"]
        job_ids = [running] + [c.post("/v1/jobs", json=SHORT_JOB).json()["id"] for _ in range(19)]
        deadline = time.monotonic() + 120
        while c.get(f"/v1/jobs/{running}").json()["status"] != "running":
            if time.monotonic() > deadline:
                raise RuntimeError("the training job did not start:\n" + stack.log("worker")[-3000:])
            time.sleep(0.2)
    return running, job_ids


def run_rounds(args, targets, loads, job_ids) -> dict[tuple[str, str, str], list[dict]]:
    """Every (route, load, app) phase once a round, bare and simtrain alternating; the phases' results."""
    phases: dict[tuple[str, str, str], list[dict]] = {}
    for r in range(args.rounds):
        for route in args.routes:
            for mode in loads[route]:
                for app in (("bare", "simtrain") if r % 2 == 0 else ("simtrain", "bare")):
                    url, headers = targets[app]
                    kw = {"interval": mode, "client_kind": args.client}
                    if args.warmup > 0:
                        run_phase(url, headers, route, job_ids, args.clients, args.warmup, args.max_requests, **kw)
                    res = run_phase(url, headers, route, job_ids, args.clients, args.duration, args.max_requests, **kw)
                    phases.setdefault((route, mode, app), []).append(res)
                    print(f"  round {r} {route:4s} {load_label(mode, args.clients):14s} {app:8s} {res['rps']:7.0f} req/s  p50 "
                          f"{percentile(res['latencies'], 50) * 1e3:7.1f} ms  p99 "
                          f"{percentile(res['latencies'], 99) * 1e3:7.1f} ms  failures {res['failures'] or 0}  "
                          f"client CPU {res['client_cpu'] * 100:.0f}%", flush=True)
    return phases


def end_jobs(stack: ServiceStack, running: str) -> str:
    """Cancel the long job; a sentence on how far it trained."""
    import httpx

    with httpx.Client(base_url=stack.base_url, headers=stack.headers, timeout=30) as c:
        job = c.get(f"/v1/jobs/{running}").json()
        trained = f"the long job was {job['status']} at epoch {job['progress']['epoch']} at the end"
        if job["status"] != "running":
            trained += "; after it the worker trained the short jobs submitted by the POST phases"
        c.post(f"/v1/jobs/{running}/cancel")
    return trained


def verdicts(summary: dict, loads: dict[str, list[float]], clients: int) -> list[str]:
    """The targets, met or missed: status reads' p99 per load, and no failed request."""
    out = []
    for mode in loads["GET"]:
        if ("GET", mode, "simtrain") in summary:
            p99 = summary[("GET", mode, "simtrain")]["p99"]
            out.append(f"status reads p99 {p99 * 1e3:.1f} ms {load_label(mode, clients)} "
                       f"({'met' if p99 < GET_P99_TARGET_S else 'MISSED'})")
    failed = sum(s["failures"] for (_, _, app), s in summary.items() if app == "simtrain")
    out.append(f"{failed} failed requests ({'met' if failed == 0 else 'MISSED'})")
    return out


def describe(args, argv, client_loop: str, trained: str, verdict: list[str], load_before: str, minutes: float) -> str:
    """The docs section's text above the table."""
    cmd = command_line("api_load.py", argv)
    client = ("a minimal asyncio HTTP/1.1 client (benchmarks/api_load.py RawHTTP)" if args.client == "raw"
              else "httpx.AsyncClient")
    return (
        f"`{cmd.strip()}` on {today()}; {machine()}; load average {load_before} before, {load_average()} "
        f"after ({minutes:.1f} min).\n\n"
        f"{args.clients} clients ({client} on {client_loop}, one process, one keep-alive connection each, "
        f"loopback); per route a back-to-back load (saturation: throughput, and the latency that queueing "
        f"behind {args.clients} clients gives) and paced loads (each client one request every "
        f"{' or '.join(f'{i:g}' for i in args.get_intervals) or '-'} s for reads, "
        f"{' or '.join(f'{i:g}' for i in args.post_intervals) or '-'} s for submissions, at random phases). "
        f"{args.rounds} rounds of {args.duration:g} s per route, load and app, after {args.warmup:g} s warm-up "
        f"each, bare and simtrain alternating. Both apps run under `uvicorn --workers {args.api_workers}` "
        f"(one per core; {server_stack()}); simtrain on a scratch PostgreSQL database with Redis, while one "
        f"Celery worker (one torch thread, so one core) trains a long job and writes its progress every epoch "
        f"({trained}). Everything, the client included, shares the 2 cores with other work. Target: status "
        f"reads p99 < {GET_P99_TARGET_S * 1e3:.0f} ms, no failures: " + "; ".join(verdict) + ".\n\n"
        + (f"{args.note}\n\n" if args.note else "")
    )


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    client_loop = client_event_loop()
    loads = {"GET": [0.0, *args.get_intervals], "POST": [0.0, *args.post_intervals]}
    load_before, t_start = load_average(), time.perf_counter()
    stack = ServiceStack("postgres", api_workers=args.api_workers, pg_admin_url=args.pg_admin, redis_url=args.redis,
                         env={"SIMTRAIN_MAX_ACTIVE_JOBS_PER_TENANT": "10000000", "OMP_NUM_THREADS": "1"})
    with stack:
        bare = BareServer(stack, args.api_workers).start()
        stack.start_worker()
        running, job_ids = start_jobs(stack)
        print(f"training job {running} is running; {args.clients} clients ({args.client}), {args.duration:g} s "
              f"phases, {args.rounds} rounds, {args.api_workers} uvicorn workers per app ({server_stack()})", flush=True)
        targets = {"bare": (bare.base_url, {}), "simtrain": (stack.base_url, stack.headers)}
        phases = run_rounds(args, targets, loads, job_ids)
        trained = end_jobs(stack, running)
    minutes = (time.perf_counter() - t_start) / 60
    print(trained)

    summary = {key: summarize(v) for key, v in phases.items()}
    tbl = table(summary, {r: loads[r] for r in args.routes}, args.clients)
    verdict = verdicts(summary, loads, args.clients)
    print(f"\n{tbl}\n\ntargets: " + "; ".join(verdict))
    if args.json:
        args.json.write_text(json.dumps({f"{k[0]} {load_label(k[1], args.clients)} {k[2]}": s for k, s in summary.items()},
                                        indent=1))
    if args.no_write:
        return 0
    write_section(SECTION, describe(args, argv, client_loop, trained, verdict, load_before, minutes) + f"{tbl}\n", args.doc)
    print(f"wrote the '{SECTION}' section of {args.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
